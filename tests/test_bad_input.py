"""Bad input: broken kubeconfigs and credentials, wrong CA, unknown names,
outputs that cannot be written, a full disk, Ctrl-C and SIGTERM, and snapshots
that are not what they claim to be (count, diff and the reader).

Each case: one clear line on stderr, its exit code, no traceback, and a good
snapshot already at the output name is never replaced by a bad one."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kstream.errors import SnapshotError
from kstream.exitcodes import ExitCode
from kstream.store.format import FOOTER_SIZE
from kstream.store.snapshot import open_snapshot
from tests.conftest import VENV_BIN, Cluster, Result, kstream
from tests.faultproxy import Fault, FaultProxy, tally
from tests.seed import configmap, namespace, secret

pytestmark = pytest.mark.cluster

NS = "faults-bad"
N_CM = 60


def lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


def clear_error(r: Result, code: int, *words: str) -> None:
    """Exit code, exactly one line on stderr, no traceback, the words in it."""
    assert r.code == code, (r.code, r.err)
    assert "Traceback" not in r.err
    assert len(lines(r.err)) == 1, r.err
    for w in words:
        assert w.lower() in r.err.lower(), (w, r.err)


@pytest.fixture(scope="module")
def objects(cluster: Cluster) -> Cluster:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    api.create_many(_random_cm(i) for i in range(N_CM))
    api.create_many(secret(NS, f"s-{i:02d}") for i in range(5))
    return cluster


def _random_cm(i: int) -> tuple[str, dict]:
    """A ConfigMap of 1.5 kB that does not compress (disk-full tests need bytes)."""
    path, obj = configmap(NS, f"cm-{i:02d}")
    obj["data"]["payload"] = random.Random(i).randbytes(750).hex()
    return path, obj


@pytest.fixture(scope="module")
def good(objects: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A good archive of the namespace, made once."""
    out = tmp_path_factory.mktemp("good") / "good.zst"
    r = kstream(
        "dump",
        "-o",
        str(out),
        "-q",
        "-n",
        NS,
        "-r",
        "configmaps,secrets",
        kubeconfig=objects.kubeconfig,
    )
    assert r.code == 0, r.err
    return out


def digest(p: Path) -> str:
    if p.is_dir():
        return hashlib.sha256(b"".join(f.read_bytes() for f in sorted(p.iterdir()))).hexdigest()
    return hashlib.sha256(p.read_bytes()).hexdigest()


def dump_args(out: Path, *extra: str) -> tuple[str, ...]:
    return ("dump", "-o", str(out), "-q", "-n", NS, "-r", "configmaps,secrets", *extra)


def leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if "kstream-tmp" in p.name)


# ------------------------------------------------------------------ kubeconfig and credentials


def _kc(
    cluster: Cluster,
    tmp: Path,
    mutate: Callable[[dict], None] | None = None,
    text: str | None = None,
) -> Path:
    p = tmp / "kubeconfig"
    if text is not None:
        p.write_text(text)
        return p
    cfg = json.loads(cluster.kubeconfig.read_text())
    if mutate:
        mutate(cfg)
    p.write_text(json.dumps(cfg))
    return p


def _set(path: str, value: object) -> Callable[[dict], None]:
    def f(cfg: dict) -> None:
        node = cfg
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value

    return f


MALFORMED: dict[str, tuple[str | None, Callable[[dict], None] | None]] = {
    "not-yaml": ("clusters: [[[ {{{ :\n\t- :", None),
    "binary": ("\x00\x01\x02\xff\xfe garbage \x00", None),
    "a-list": ("- a\n- b\n", None),
    "empty": ("", None),
    "no-clusters": (None, _set("clusters", [])),
    "no-users-entry": (None, _set("users", [])),
    "current-context-missing": (None, _set("current-context", "nowhere")),
    "bad-ca-base64": (
        None,
        _set("clusters.0.cluster.certificate-authority-data", "!!not base64!!"),
    ),
    "ca-file-missing": (
        None,
        lambda c: (
            c["clusters"][0]["cluster"].pop("certificate-authority-data"),
            c["clusters"][0]["cluster"].update({"certificate-authority": "/nonexistent/ca.crt"}),
        ),
    ),
    "no-server": (None, lambda c: c["clusters"][0]["cluster"].pop("server")),
    "server-not-a-url": (None, _set("clusters.0.cluster.server", "::not a url::")),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_kubeconfig(objects: Cluster, tmp_path: Path, case: str, good: Path) -> None:
    text, mutate = MALFORMED[case]
    kc = _kc(objects, tmp_path, mutate, text)
    target = tmp_path / "out.zst"
    shutil.copy(good, target)
    before = digest(target)
    r = kstream(*dump_args(target, "--force"), kubeconfig=kc, timeout=60)
    tally(f"kubeconfig-{case}", bad_inputs=1)
    if case == "no-users-entry":  # no credentials: anonymous, forbidden to discover (403)
        clear_error(r, 4, "forbidden")
    else:
        clear_error(r, 4, "kubeconfig")
        assert not r.err.rstrip().endswith(("Error", "Exception")), r.err  # says what is wrong
    assert objects.cp.admin_token not in r.err
    assert digest(target) == before
    assert leftovers(tmp_path) == []


def test_missing_and_directory_kubeconfig(tmp_path: Path) -> None:
    r = kstream("dump", "-o", str(tmp_path / "x.zst"), "--kubeconfig", str(tmp_path / "nope"))
    clear_error(r, 4, "not found")
    r = kstream("dump", "-o", str(tmp_path / "x.zst"), "--kubeconfig", str(tmp_path))
    clear_error(r, 4, "directory")
    tally("kubeconfig-missing-dir", bad_inputs=2)


def test_unknown_context(objects: Cluster, tmp_path: Path) -> None:
    r = kstream(
        *dump_args(tmp_path / "x.zst", "--context", "no-such-context"),
        kubeconfig=objects.kubeconfig,
    )
    clear_error(r, 4, "no-such-context", "kstream-local")
    assert not (tmp_path / "x.zst").exists()
    tally("unknown-context", bad_inputs=1)


def test_invalid_token_is_401(objects: Cluster, tmp_path: Path, good: Path) -> None:
    kc = _kc(objects, tmp_path, _set("users.0.user.token", "0123456789abcdef-not-a-real-token"))
    target = tmp_path / "out.zst"
    shutil.copy(good, target)
    r = kstream(*dump_args(target, "--force"), kubeconfig=kc)
    clear_error(r, 4, "401")
    assert "0123456789abcdef" not in r.err
    assert digest(target) == digest(good)
    tally("token-invalid", bad_inputs=1)


def _jwt(key: Path, claims: dict) -> str:
    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)], input=f"{head}.{body}".encode(),
                         capture_output=True, check=True).stdout  # fmt: skip
    return f"{head}.{body}.{b64(sig)}"


def test_expired_token_is_401(objects: Cluster, tmp_path: Path) -> None:
    """A service-account token signed with the server's own key, expired an
    hour ago: rejected (401), one line, exit 4."""
    now = int(time.time())
    iss = "https://kubernetes.default.svc.cluster.local"
    token = _jwt(objects.cp.certs / "sa.key", {
        "iss": iss, "aud": [iss], "sub": "system:serviceaccount:default:default",
        "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "default", "uid": "0"}},
    })  # fmt: skip
    kc = _kc(objects, tmp_path, _set("users.0.user.token", token))
    r = kstream(*dump_args(tmp_path / "x.zst"), kubeconfig=kc)
    clear_error(r, 4, "401")
    assert token not in r.err and token[-20:] not in r.err
    assert not (tmp_path / "x.zst").exists()
    tally("token-expired", bad_inputs=1)


def test_wrong_ca_is_a_tls_error(objects: Cluster, tmp_path: Path, good: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "k"),
                    "-subj", "/CN=other-ca", "-days", "1", "-out", str(tmp_path / "ca.crt")],
                   check=True, capture_output=True)  # fmt: skip
    other = base64.b64encode((tmp_path / "ca.crt").read_bytes()).decode()
    kc = _kc(objects, tmp_path, _set("clusters.0.cluster.certificate-authority-data", other))
    target = tmp_path / "out.zst"
    shutil.copy(good, target)
    r = kstream(*dump_args(target, "--force"), kubeconfig=kc)
    clear_error(r, 5, "TLS", "verify")
    assert digest(target) == digest(good)
    tally("wrong-ca", bad_inputs=1)


def test_unreachable_server(objects: Cluster, tmp_path: Path) -> None:
    from tests.controlplane import free_port

    kc = _kc(
        objects, tmp_path, _set("clusters.0.cluster.server", f"https://127.0.0.1:{free_port()}")
    )
    r = kstream(*dump_args(tmp_path / "x.zst"), kubeconfig=kc, timeout=120)
    clear_error(r, 5, "connect", "refused")
    tally("unreachable", bad_inputs=1)


# ------------------------------------------------------------------ names and outputs


@pytest.mark.parametrize("name", ["nosuchthing", "configmaps.wrong.group", "pods,bogus"])
def test_unknown_resource(objects: Cluster, tmp_path: Path, name: str) -> None:
    r = kstream("dump", "-o", str(tmp_path / "x.zst"), "-r", name, kubeconfig=objects.kubeconfig)
    clear_error(r, 2)
    assert not (tmp_path / "x.zst").exists()
    tally(f"unknown-resource-{name}", bad_inputs=1)


@pytest.mark.parametrize(
    "where", ["missing-dir", "parent-is-file", "proc", "exists-no-force", "dir-over-file"]
)
def test_unwritable_output(objects: Cluster, tmp_path: Path, good: Path, where: str) -> None:
    target = {
        "missing-dir": tmp_path / "no" / "such" / "out.zst",
        "parent-is-file": tmp_path / "afile" / "out.zst",
        "proc": Path("/proc/kstream-out.zst"),
        "exists-no-force": tmp_path / "out.zst",
        "dir-over-file": tmp_path / "out.zst",
    }[where]
    (tmp_path / "afile").write_text("x")
    if where in ("exists-no-force", "dir-over-file"):
        shutil.copy(good, target)
    before = digest(target) if target.exists() else None
    if where == "dir-over-file":  # a directory dump where a file is, even with --force
        r = kstream("dump", "-o", f"{target}/", "-q", "-n", NS, "-r", "configmaps", "--force",
                    kubeconfig=objects.kubeconfig)  # fmt: skip
    else:
        r = kstream(*dump_args(target), kubeconfig=objects.kubeconfig)
    clear_error(r, 7)
    if before is not None:
        assert digest(target) == before
    assert leftovers(tmp_path) == []
    tally(f"output-{where}", bad_inputs=1)


def _fsize_limit(n: int) -> Callable[[], None]:
    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))

    return pre


@pytest.mark.parametrize("fmt", ["out.ndjson", "out.zst", "outdir/"])
def test_disk_full(objects: Cluster, tmp_path: Path, good: Path, fmt: str) -> None:
    """Writes fail with EFBIG past 20 kB (RLIMIT_FSIZE): exit 7, one line, the
    good snapshot at the name untouched, no temporary files left."""
    target = tmp_path / fmt.rstrip("/")
    if fmt.endswith("/"):
        target.mkdir()  # a kstream snapshot: --force may replace only that
        (target / "keep.ndjson").write_text('{"kept":true}\n')
        (target / "manifest.json").write_text(
            json.dumps(
                {"format": "kstream-archive", "version": 1, "resources": [{"file": "keep.ndjson"}]}
            )
        )
    else:
        shutil.copy(good, target)
    before = digest(target)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["KUBECONFIG"] = str(objects.kubeconfig)
    # the ConfigMaps hold random data: even the archive exceeds the limit
    p = subprocess.run(
        [str(VENV_BIN / "kstream"), "dump", "-o", str(tmp_path / fmt), "-q", "--force", "-n", NS,
         "-r", "configmaps,secrets", "--level", "1"],
        capture_output=True, env=env, timeout=120, preexec_fn=_fsize_limit(20_000),
    )  # fmt: skip
    r = Result(p.returncode, p.stdout, p.stderr.decode(errors="replace"))
    clear_error(r, 7)
    assert digest(target) == before
    assert leftovers(tmp_path) == []
    tally(f"disk-full-{fmt}", bad_inputs=1)


# ------------------------------------------------------------------ Ctrl-C and SIGTERM


@pytest.fixture
def proxy(objects: Cluster, proxy: FaultProxy) -> FaultProxy:
    """conftest's proxy, once this module's objects exist."""
    return proxy


def stalled_dump(
    proxy: FaultProxy, tmp_path: Path, out: str, *args: str, **popen: Any
) -> subprocess.Popen[bytes]:
    """`kstream dump -o OUT -q` of this module's objects through the proxy, its
    Secrets stream stalled after 500 bytes (for 60 s), as a child process."""
    proxy.add(Fault("stall", match="/secrets", after_bytes=500, stall_for=60))
    env = {
        "KUBECONFIG": str(proxy.kubeconfig(tmp_path / "kc")),
        "PATH": "/usr/bin:/bin",
        "HOME": "/root",
    }
    argv = [str(VENV_BIN / "kstream"), "dump", "-o", out, *args, "-q", "-n", NS,
            "-r", "configmaps,secrets", "--timeout", "60"]  # fmt: skip
    return subprocess.Popen(argv, env=env, **popen)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("fmt", ["snap.zst", "snap.ndjson", "snapdir"])
def test_interrupted_dump(
    proxy: FaultProxy, tmp_path: Path, good: Path, sig: int, code: int, fmt: str
) -> None:
    """The Secrets stream stalls; kstream gets the signal while it waits. The
    good snapshot at the name stays, what was read goes to NAME.partial with
    status interrupted, the exit code says which signal."""
    target = tmp_path / fmt
    if fmt == "snapdir":
        r0 = kstream("dump", "-o", str(target) + "/", "-q", "-n", NS, "-r", "configmaps,secrets",
                     kubeconfig=proxy.cp.kubeconfig)  # fmt: skip
        assert r0.code == 0, r0.err
    else:
        shutil.copy(good, target)
    before = digest(target)
    out = str(target) + ("/" if fmt == "snapdir" else "")
    p = stalled_dump(
        proxy, tmp_path, out, "--force", stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        proxy.wait_for(lambda q: q.action == "stall" and q.body_bytes > 0, timeout=60)
        proxy.wait_for(lambda q: "/configmaps" in q.path and q.marker, timeout=60)
        time.sleep(0.5)
        p.send_signal(sig)
        _, err_b = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    err = err_b.decode()
    assert p.returncode == code, err
    assert "Traceback" not in err
    assert "interrupted" in err.lower() or "terminated" in err.lower()
    assert len(lines(err)) <= 2, err
    assert digest(target) == before
    partial = tmp_path / (fmt + ".partial")
    assert partial.exists(), sorted(x.name for x in tmp_path.iterdir())
    assert leftovers(tmp_path) == []
    if fmt == "snap.ndjson":
        names = [json.loads(ln)["metadata"]["name"] for ln in partial.read_text().splitlines()]
        assert len(names) == len(set(names))
        tally(
            f"signal-{sig}-{fmt}",
            faults=1,
            runs=1,
            objects=len(names),
            duplicates=len(names) - len(set(names)),
        )
        return
    snap = open_snapshot(str(partial))
    assert snap.manifest is not None
    assert snap.manifest.status == "interrupted"
    assert not snap.complete
    read = {e.resource for e in snap.entries}
    not_read = {e.resource for e in snap.manifest.not_read}
    assert "secrets" in not_read and "secrets" not in read
    assert read | not_read == {"configmaps", "secrets"}
    names = [json.loads(ln)["metadata"]["name"] for ln in snap.lines()]
    assert len(names) == len(set(names))
    if "configmaps" in read:
        assert {n for n in names if n.startswith("cm-")} == {f"cm-{i:02d}" for i in range(N_CM)}
    tally(
        f"signal-{sig}-{fmt}",
        faults=1,
        runs=1,
        objects=len(names),
        duplicates=len(names) - len(set(names)),
    )


@pytest.mark.parametrize("fmt", ["snap.zst", "snap.ndjson", "snapdir"])
def test_killed_dump_staging_removed_by_the_next_dump(
    proxy: FaultProxy, tmp_path: Path, fmt: str
) -> None:
    """kill -9 while the Secrets stream stalls: the hidden staging directory
    stays, nothing else. The next dump of the same name removes it (once it is
    older than the grace period: made so here), says so in one note line,
    writes a complete snapshot and leaves nothing hidden."""
    target = tmp_path / fmt
    out = str(target) + ("/" if fmt == "snapdir" else "")
    p = stalled_dump(proxy, tmp_path, out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proxy.wait_for(lambda q: q.action == "stall" and q.body_bytes > 0, timeout=60)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    assert p.returncode == -signal.SIGKILL
    left = leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(f".{fmt}."), left
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith(".")) == left
    assert not [x for x in tmp_path.iterdir() if x.name.startswith(fmt)]  # no NAME, no .partial
    old = time.time() - 3600
    os.utime(tmp_path / left[0], (old, old))
    r = kstream("dump", "-o", out, "-n", NS, "-r", "configmaps,secrets",
                kubeconfig=proxy.cp.kubeconfig)  # fmt: skip
    assert r.code == 0, r.err
    notes = [ln for ln in r.err.splitlines() if ln.startswith("note: removed")]
    assert len(notes) == 1 and "1 staging directory of killed runs" in notes[0], r.err
    assert f"beside {target}" in notes[0]
    assert leftovers(tmp_path) == []
    names = [json.loads(ln)["metadata"]["name"] for ln in open_snapshot(out).lines()]
    assert {n for n in names if n.startswith("cm-")} == {f"cm-{i:02d}" for i in range(N_CM)}


# ------------------------------------------------------------------ bad snapshots: reader, count, diff


def _flip(data: bytes, at: int) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x5A
    return bytes(b)


def _frames(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, length, magic) of each frame, from the archive's own manifest."""
    (moff,) = struct.unpack("<Q", data[-8:])
    manifest = json.loads(data[moff + 8 : len(data) - FOOTER_SIZE])
    return [(e["offset"], e["length"], 0) for e in manifest["resources"]] + [
        (moff, len(data) - moff, 1)
    ]


def bad_snapshots(good: Path, d: Path) -> dict[str, Path]:
    data = good.read_bytes()
    out: dict[str, Path] = {}

    def put(name: str, content: bytes) -> None:
        p = d / f"{name}.zst"
        p.write_bytes(content)
        out[name] = p

    put("empty", b"")
    put("truncated-half", data[: len(data) // 2])
    put("truncated-footer", data[:-5])
    put("truncated-one-byte", data[:-1])
    put("not-an-archive", b"PK\x03\x04 this is a zip file, not a snapshot\n" * 10)
    put("text", b"hello world\n")
    put("json-not-objects", b"[1, 2, 3]\n")
    put("ndjson-cut", b'{"kind":"ConfigMap","metadata":{"name":"a"}}\n{"kind":"ConfigMap","metad')
    head_len = 8 + struct.unpack("<I", data[4:8])[0]
    header = json.loads(data[8:head_len])
    header["version"] = 99
    hb = json.dumps(header).encode()
    put("unknown-version", struct.pack("<II", 0x184D2A50, len(hb)) + hb + data[head_len:])
    frames = _frames(data)
    rnd = random.Random(42)
    for i in range(6):  # flipped bytes inside the object data
        off, length, _ = frames[i % (len(frames) - 1)]
        put(f"flipped-data-{i}", _flip(data, off + rnd.randrange(length)))
    put("flipped-manifest-offset", _flip(data, len(data) - 3))
    put("flipped-header", _flip(data, 8 + head_len // 2))
    moff = frames[-1][0]
    put("flipped-manifest", _flip(data, moff + 8 + (len(data) - FOOTER_SIZE - moff - 8) // 2))
    return out


def test_reader_rejects_bad_snapshots(good: Path, tmp_path: Path) -> None:
    bad = bad_snapshots(good, tmp_path)
    for name, p in bad.items():
        with pytest.raises(SnapshotError) as ei:
            snap = open_snapshot(str(p))
            for _ in snap.lines():
                pass
        msg = str(ei.value)
        assert "\n" not in msg and str(p) in msg, (name, msg)
    tally("reader-bad-snapshots", bad_inputs=len(bad))


def test_reader_detects_every_flipped_data_byte(good: Path, tmp_path: Path) -> None:
    """60 single-byte flips spread over the object frames: each one is caught
    (zstd checksum, or the manifest's sha256 and count)."""
    data = good.read_bytes()
    frames = _frames(data)[:-1]
    rnd = random.Random(7)
    caught = 0
    for i in range(60):
        off, length, _ = frames[i % len(frames)]
        p = tmp_path / "f.zst"
        p.write_bytes(_flip(data, off + rnd.randrange(length)))
        try:
            for _ in open_snapshot(str(p)).lines():
                pass
        except SnapshotError:
            caught += 1
    tally("reader-flipped-data", bad_inputs=60)
    assert caught == 60


@pytest.fixture(scope="module")
def bad_files(good: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return bad_snapshots(good, tmp_path_factory.mktemp("bad-snapshots"))


BAD_CASES = ["empty", "truncated-half", "truncated-footer", "truncated-one-byte", "not-an-archive", "text",
             "json-not-objects", "ndjson-cut", "unknown-version", "flipped-data-0", "flipped-data-1",
             "flipped-manifest-offset", "flipped-header", "flipped-manifest"]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES)
def test_count_rejects_bad_snapshots(bad_files: dict[str, Path], case: str) -> None:
    """Plain `count ARCHIVE` answers from the manifest (checked by the footer's
    digest) without reading the objects, by design: damaged object data is
    caught by `--verify`, which reads and checks every resource."""
    p = bad_files[case]
    args = ("count", str(p), "--verify") if case.startswith("flipped-data") else ("count", str(p))
    r = kstream(*args)
    tally(f"count-{case}", bad_inputs=1)
    clear_error(r, 6, str(p))


@pytest.mark.parametrize("case", BAD_CASES)
def test_diff_rejects_bad_snapshots(bad_files: dict[str, Path], good: Path, case: str) -> None:
    p = bad_files[case]
    for args in ((str(good), str(p)), (str(p), str(good))):
        r = kstream("diff", *args)
        clear_error(r, 6, str(p))
    tally(f"diff-{case}", bad_inputs=2)


def test_count_and_diff_missing_file(good: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.zst")
    clear_error(kstream("count", missing), 6, "nope.zst")
    clear_error(kstream("diff", str(good), missing), 6, "nope.zst")
    tally("count-diff-missing", bad_inputs=2)


def test_credentials_rejected_mid_dump(proxy: FaultProxy, tmp_path: Path, good: Path) -> None:
    """The token is revoked while the dump runs (401 on the second resource):
    exit 4, one line, the good snapshot at the name untouched, nothing left."""
    target = tmp_path / "out.zst"
    shutil.copy(good, target)
    proxy.add(Fault("status", match="/secrets", status=401, headers={"Content-Type": "application/json"},
                    body=b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"Unauthorized",'
                         b'"reason":"Unauthorized","code":401}'))  # fmt: skip
    r = kstream(*dump_args(target, "--force"), kubeconfig=proxy.kubeconfig(tmp_path / "kc"))
    clear_error(r, 4, "401")
    assert digest(target) == digest(good)
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.zst.partial").exists()
    tally("401-mid-dump", faults=1, runs=1, bad_inputs=1)


def test_flipped_manifest_value_is_detected(good: Path, tmp_path: Path) -> None:
    """A flipped digit inside the manifest (a resourceVersion) would change what
    the archive claims: the footer's digest of header and manifest catches it."""
    data = good.read_bytes()
    (moff,) = struct.unpack("<Q", data[-8:])
    manifest = data[moff:]
    i = manifest.index(b'"resourceVersion": "') + len(b'"resourceVersion": "')
    p = tmp_path / "m.zst"
    b = bytearray(data)
    b[moff + i] = ord("9") if b[moff + i] != ord("9") else ord("8")
    p.write_bytes(bytes(b))
    tally("flipped-manifest-value", bad_inputs=1)
    with pytest.raises(SnapshotError):
        snap = open_snapshot(str(p))
        for _ in snap.lines():
            pass


@pytest.mark.parametrize(("sig", "codes"), [(signal.SIGINT, (130,)), (signal.SIGTERM, (143,))])
def test_signal_during_discovery(
    proxy: FaultProxy, tmp_path: Path, good: Path, sig: int, codes: tuple[int, ...]
) -> None:
    """A signal before any object is read (discovery stalls): the right exit
    status, no output at all, the good snapshot untouched."""
    target = tmp_path / "out.zst"
    shutil.copy(good, target)
    proxy.add(Fault("stall", match=lambda m, p, q: p == "/apis", after_bytes=0, stall_for=60))
    env = {
        "KUBECONFIG": str(proxy.kubeconfig(tmp_path / "kc")),
        "PATH": "/usr/bin:/bin",
        "HOME": "/root",
    }
    p = subprocess.Popen([str(VENV_BIN / "kstream"), *dump_args(target, "--force", "--timeout", "30")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        proxy.wait_for(lambda q: q.action == "stall", timeout=60)
        time.sleep(0.3)
        p.send_signal(sig)
        _, err_b = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    err = err_b.decode()
    assert p.returncode in codes, (p.returncode, err)
    assert "Traceback" not in err and len(lines(err)) == 1, err
    assert digest(target) == digest(good)
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith("out")) == ["out.zst"]
    assert leftovers(tmp_path) == []
    tally(f"signal-discovery-{sig}", faults=1, runs=1, bad_inputs=1)


def test_stdout_full_or_closed(objects: Cluster) -> None:
    """-o - into /dev/full (ENOSPC): exit 7, one line; into a pipe closed early:
    exit 141 and no error line (tests/test_stdout_closed.py: every command)."""
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["KUBECONFIG"] = str(objects.kubeconfig)
    args = [
        str(VENV_BIN / "kstream"),
        "dump",
        "-o",
        "-",
        "-q",
        "-n",
        NS,
        "-r",
        "configmaps,secrets",
    ]
    with open("/dev/full", "wb") as full:
        p = subprocess.run(args, stdout=full, stderr=subprocess.PIPE, env=env, timeout=120)
    clear_error(Result(p.returncode, b"", p.stderr.decode()), 7, "space")
    q = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert q.stdout is not None and q.stdout.read(100)
        q.stdout.close()
        err = q.stderr.read().decode() if q.stderr else ""
        q.wait(60)
    finally:
        if q.poll() is None:
            q.kill()
            q.wait(10)
    assert (q.returncode, err) == (ExitCode.STDOUT_CLOSED, "")
    tally("stdout-full-closed", bad_inputs=2)


def test_interrupted_dump_to_stdout(proxy: FaultProxy, tmp_path: Path) -> None:
    """Ctrl-C while dumping to stdout (a consumer that does not read: the pipe
    is full): exit 130 and a line saying the output is incomplete."""
    proxy.add(Fault("stall", match="/secrets", after_bytes=500, stall_for=60))
    env = {
        "KUBECONFIG": str(proxy.kubeconfig(tmp_path / "kc")),
        "PATH": "/usr/bin:/bin",
        "HOME": "/root",
        "TMPDIR": str(tmp_path),
    }
    p = subprocess.Popen(
        [str(VENV_BIN / "kstream"), "dump", "-o", "-", "-q", "-n", NS, "-r", "configmaps,secrets"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proxy.wait_for(lambda q: q.action == "stall" and q.body_bytes > 0, timeout=60)
        proxy.wait_for(lambda q: "/configmaps" in q.path and q.marker, timeout=60)
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err_b = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    err = err_b.decode()
    assert p.returncode == 130, err
    assert "Traceback" not in err and "incomplete" in err and len(lines(err)) <= 2, err
    # kstream was blocked writing into the full pipe when the signal came: the
    # last line may be cut (the note says the output is incomplete); every
    # complete line is an object, each once
    complete = out[: out.rfind(b"\n") + 1]
    names = [json.loads(ln)["metadata"]["name"] for ln in complete.splitlines()]
    assert len(names) == len(set(names))
    assert leftovers(tmp_path) == [] and not [
        x for x in tmp_path.iterdir() if x.name.startswith("kstream-")
    ]
    tally("signal-stdout", faults=1, runs=1, objects=len(names), bad_inputs=1)
