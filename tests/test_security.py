"""Security: archives are private (0600), credentials never leak into anything
kstream writes, redacted Secret values cannot be recovered from a snapshot, and
TLS verification stays on unless the kubeconfig turns it off."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cluster, Result, kstream
from tests.faultproxy import FaultProxy, make_server_cert, tally
from tests.seed import configmap, namespace

pytestmark = pytest.mark.cluster

NS = "faults-sec"
PLAIN = {"password": "hunter2-Zq9", "api-key": "AKIA-kstream-test-4471", "short": "ok"}
STRING_DATA = {"conn": "postgres://admin:s3cr3t-pw@db:5432/app"}
ALL_VALUES = {**PLAIN, **STRING_DATA}


@pytest.fixture(scope="module")
def objects(cluster: Cluster) -> Cluster:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    api.create_many(configmap(NS, f"cm-{i}", size=300) for i in range(10))
    data = {k: base64.b64encode(v.encode()).decode() for k, v in PLAIN.items()}
    last_applied = json.dumps({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "creds", "namespace": NS}, "data": data, "stringData": STRING_DATA,
    })  # fmt: skip
    api.create(f"/api/v1/namespaces/{NS}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "creds", "namespace": NS,
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
        "data": data, "stringData": STRING_DATA,
    }, exist_ok=True)  # fmt: skip
    return cluster


def every_byte_written(paths: list[Path]) -> bytes:
    """Everything in these files and directories, with zstd data decompressed
    (so a value cannot hide inside a compressed frame)."""
    import zstandard

    out = bytearray()
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += [f for f in p.rglob("*") if f.is_file()]
        elif p.exists():
            files.append(p)
    for f in files:
        raw = f.read_bytes()
        out += raw
        if raw[:4] in (b"\x28\xb5\x2f\xfd", b"\x50\x2a\x4d\x18"):
            try:
                out += (
                    zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True).read()
                )
            except zstandard.ZstdError:
                pass
    return bytes(out)


def forms(value: str) -> list[bytes]:
    """A value as it could appear: plain, base64, JSON-escaped."""
    v = value.encode()
    return [
        v,
        base64.b64encode(v),
        base64.b64encode(v).rstrip(b"="),
        json.dumps(value)[1:-1].encode(),
    ]


# ------------------------------------------------------------------ file modes


@pytest.mark.parametrize("out", ["snap.zst", "snap.ndjson", "snapdir/"])
def test_outputs_are_private(objects: Cluster, tmp_path: Path, out: str) -> None:
    target = tmp_path / out
    old = os.umask(0o022)
    try:
        r = kstream(
            "dump",
            "-o",
            f"{tmp_path}/{out}",  # keeps the slash of snapdir/
            "-q",
            "-n",
            NS,
            "-r",
            "configmaps,secrets",
            kubeconfig=objects.kubeconfig,
        )
    finally:
        os.umask(old)
    assert r.code == 0, r.err
    p = Path(str(target).rstrip("/"))
    if p.is_dir():
        assert stat.S_IMODE(p.stat().st_mode) & 0o077 == 0
        files = list(p.iterdir())
        assert files
    else:
        files = [p]
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, (f, oct(f.stat().st_mode))
    tally(f"mode-{out}", runs=1)


# ------------------------------------------------------------------ credentials never leak


def _run_env(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    (tmp / "tmpdir").mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "TMPDIR": str(tmp / "tmpdir")}


def test_token_and_key_never_written(objects: Cluster, tmp_path: Path) -> None:
    """Run dump, count and diff with a token identity and a client-certificate
    identity, succeeding and failing, with --debug; search everything written
    (stdout, stderr, outputs, manifests, HOME, TMPDIR) for the credentials."""
    cp = objects.cp
    token = cp.admin_token
    key_kc = cp.add_user("faults-sec-user")
    key_pem = (cp.certs / "users" / "faults-sec-user.key").read_bytes()
    key_lines = [ln for ln in key_pem.splitlines() if ln and not ln.startswith(b"-----")]
    kc_text = objects.kubeconfig.read_bytes()
    bad_token = "fedcba9876543210-wrong-token-value"
    bad_kc = tmp_path / "bad-token-kc"
    cfg = json.loads(kc_text)
    cfg["users"][0]["user"]["token"] = bad_token
    bad_kc.write_text(json.dumps(cfg))
    broken_kc = tmp_path / "broken-kc"
    broken_kc.write_text(f"users:\n- name: u\n  user:\n    token: {token}\n   bad: [\n")
    noctx_kc = tmp_path / "noctx-kc"
    cfg = json.loads(kc_text)
    cfg["current-context"] = "missing"
    noctx_kc.write_text(json.dumps(cfg))
    env = _run_env(tmp_path)
    outs = tmp_path / "outs"
    outs.mkdir()
    runs: list[Result] = []

    def run(*args: str, kc: Path) -> Result:
        r = kstream(*args, kubeconfig=kc, env=env)
        runs.append(r)
        return r

    sel = ("-n", NS, "-r", "configmaps,secrets")
    assert run("dump", "-o", str(outs / "a.zst"), *sel, kc=objects.kubeconfig).code == 0
    assert (
        run("dump", "-o", str(outs / "b.ndjson"), "--debug", *sel, kc=objects.kubeconfig).code == 0
    )
    assert run("dump", "-o", str(outs / "c") + "/", *sel, kc=objects.kubeconfig).code == 0
    assert run("dump", "-o", "-", *sel, kc=objects.kubeconfig).code == 0
    assert run("dump", "-o", str(outs / "k.zst"), "--debug", *sel, kc=key_kc).code == 3  # no rights
    assert run("dump", "-o", str(outs / "x.zst"), "--debug", *sel, kc=bad_kc).code == 4
    assert run("dump", "-o", str(outs / "y.zst"), "--debug", *sel, kc=broken_kc).code == 4
    assert run("dump", "-o", str(outs / "z.zst"), "--debug", *sel, kc=noctx_kc).code == 4
    assert (
        run(
            "dump",
            "-o",
            str(outs / "w.zst"),
            "--debug",
            "--context",
            "nope",
            *sel,
            kc=objects.kubeconfig,
        ).code
        == 4
    )
    run("count", *sel, kc=objects.kubeconfig)
    run("count", "--debug", *sel, kc=bad_kc)
    run("count", str(outs / "a.zst"), kc=objects.kubeconfig)
    run("diff", str(outs / "a.zst"), str(outs / "c"), kc=objects.kubeconfig)
    run("diff", "--live", str(outs / "a.zst"), *sel, kc=objects.kubeconfig)
    run("diff", "--debug", "--live", str(outs / "a.zst"), *sel, kc=bad_kc)
    written = b"".join(r.out + r.err.encode() for r in runs)
    written += every_byte_written([outs, Path(env["HOME"]), Path(env["TMPDIR"])])
    secrets_ = {"admin token": token.encode(), "wrong token": bad_token.encode(),
                "token tail": token.encode()[-16:]}  # fmt: skip
    secrets_.update({f"key line {i}": ln for i, ln in enumerate(key_lines)})
    secrets_["key base64"] = base64.b64encode(key_pem)[:60]
    secrets_["kubeconfig"] = kc_text[:200]
    leaked = [name for name, s in secrets_.items() if s in written]
    tally("credentials-search", runs=len(runs), bad_inputs=5)
    assert leaked == []
    assert list(Path(env["TMPDIR"]).iterdir()) == []  # nothing left behind


# ------------------------------------------------------------------ redaction


@pytest.mark.parametrize("out", ["snap.zst", "snap.ndjson", "snapdir/", "-"])
def test_redacted_values_are_not_in_the_snapshot(
    objects: Cluster, tmp_path: Path, out: str
) -> None:
    target = tmp_path / out
    r = kstream("dump", "-o", "-" if out == "-" else f"{tmp_path}/{out}", "-q", "-n", NS, "-r", "secrets",
                kubeconfig=objects.kubeconfig)  # fmt: skip
    assert r.code == 0, r.err
    written = r.out + every_byte_written([Path(str(target).rstrip("/"))]) if out != "-" else r.out
    for name, value in ALL_VALUES.items():
        for f in forms(value):
            if len(f) < 4:  # "ok" and its forms are too short to search for
                continue
            assert f not in written, (name, f)
    # the object is there, its values replaced
    lines = [ln for ln in (r.out if out == "-" else b"").splitlines() if ln.strip()]
    if out == "-":
        obj = next(json.loads(ln) for ln in lines if b'"creds"' in ln)
        assert set(obj["data"]) == set(ALL_VALUES)
        assert all(
            v != base64.b64encode(ALL_VALUES[k].encode()).decode() for k, v in obj["data"].items()
        )
        inner = json.loads(
            obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        )
        assert inner["data"] != {k: base64.b64encode(v.encode()).decode() for k, v in PLAIN.items()}
    tally(f"redaction-{out}", runs=1, bad_inputs=0)


def test_hmac_redaction_resists_guessing(objects: Cluster, tmp_path: Path) -> None:
    """With --secret-key-file, a digest cannot be confirmed by hashing a guess."""
    key = tmp_path / "key"
    key.write_bytes(os.urandom(32).hex().encode())
    r = kstream("dump", "-o", "-", "-q", "-n", NS, "-r", "secrets", "--secret-key-file", str(key),
                kubeconfig=objects.kubeconfig)  # fmt: skip
    assert r.code == 0, r.err
    obj = next(json.loads(ln) for ln in r.out.splitlines() if b'"creds"' in ln)
    written = r.out
    for value in ALL_VALUES.values():
        v = value.encode()
        for guess in (
            hashlib.sha256(v).hexdigest(),
            hashlib.sha256(base64.b64encode(v)).hexdigest(),
        ):
            assert guess.encode() not in written
    assert set(obj["data"]) == set(ALL_VALUES)
    tally("redaction-hmac", runs=1)


# ------------------------------------------------------------------ TLS verification


@pytest.fixture
def impostor(objects: Cluster, tmp_path: Path) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """Two proxies to the real server: one with a self-signed certificate, one
    with a CA-signed certificate for another name."""
    d = tmp_path / "impostor"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "k"),
                    "-subj", "/CN=impostor", "-days", "1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-out", str(d / "c")], check=True, capture_output=True)  # fmt: skip
    wrong_name = tmp_path / "wrong-name"
    wrong_name.mkdir()
    crt, key = make_server_cert(objects.cp, wrong_name)
    # re-issue for another name only
    ext = wrong_name / "proxy.ext"
    ext.write_text(
        ext.read_text().replace(
            "subjectAltName=IP:127.0.0.1,DNS:localhost", "subjectAltName=DNS:other.example"
        )
    )
    subprocess.run(["openssl", "x509", "-req", "-in", str(wrong_name / "proxy.csr"), "-CA", str(objects.cp.ca_file),
                    "-CAkey", str(objects.cp.certs / "ca.key"), "-CAserial", str(wrong_name / "ca.srl"),
                    "-days", "1", "-extfile", str(ext), "-out", str(crt)], check=True, capture_output=True)  # fmt: skip
    with FaultProxy(objects.cp, tmp_path, cert=(d / "c", d / "k")) as a, \
            FaultProxy(objects.cp, tmp_path, cert=(crt, key)) as b:  # fmt: skip
        yield a, b


def test_tls_verification_stays_on(
    objects: Cluster, impostor: tuple[FaultProxy, FaultProxy], tmp_path: Path
) -> None:
    self_signed, wrong_name = impostor
    sel = ("-q", "-n", NS, "-r", "configmaps")
    r = kstream(
        "dump",
        "-o",
        str(tmp_path / "a.zst"),
        *sel,
        kubeconfig=self_signed.kubeconfig(tmp_path / "kc1"),
    )
    assert r.code == 5 and "verify" in r.err and "Traceback" not in r.err, r.err
    r = kstream(
        "dump",
        "-o",
        str(tmp_path / "b.zst"),
        *sel,
        kubeconfig=wrong_name.kubeconfig(tmp_path / "kc2"),
    )
    assert r.code == 5 and "TLS" in r.err and "Traceback" not in r.err, r.err
    assert not (tmp_path / "a.zst").exists() and not (tmp_path / "b.zst").exists()
    # no request got through to be answered with the token
    assert self_signed.requests() == [] and wrong_name.requests() == []
    # the kubeconfig may turn verification off; then it works
    kc = tmp_path / "kc3"
    cfg = json.loads(self_signed.kubeconfig(kc).read_text())
    cluster = cfg["clusters"][0]["cluster"]
    cluster.pop("certificate-authority-data")
    cluster["insecure-skip-tls-verify"] = True
    kc.write_text(json.dumps(cfg))
    r = kstream("dump", "-o", str(tmp_path / "c.zst"), *sel, kubeconfig=kc)
    assert r.code == 0, r.err
    tally("tls", runs=3, bad_inputs=2)


def test_no_ca_in_kubeconfig_uses_system_store(objects: Cluster, tmp_path: Path) -> None:
    """A kubeconfig without CA data does not mean 'trust anything': the test CA
    is not in the system store, so the connection is refused."""
    cfg = json.loads(objects.kubeconfig.read_text())
    cfg["clusters"][0]["cluster"].pop("certificate-authority-data")
    kc = tmp_path / "kc"
    kc.write_text(json.dumps(cfg))
    r = kstream(
        "dump", "-o", str(tmp_path / "a.zst"), "-q", "-n", NS, "-r", "configmaps", kubeconfig=kc
    )
    assert r.code == 5 and "TLS" in r.err, r.err
    tally("tls-no-ca", runs=1, bad_inputs=1)
