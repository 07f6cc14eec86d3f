"""Journals in object storage (`s3://BUCKET/PREFIX/`): every journal reader (count,
count --events, diff on either side, log, serve with kubectl, export), at the base
instant, a mid instant and the end, answers from the bucket what it answers from
the local copy; a gap is refused alike; errors are one line with their exit code;
`count J/@T` reads manifests and the frames it needs, not the whole journal.

The journal is real: `kstream dump --follow` against the control plane while
objects change, stopped, changed, and resumed (a real gap), then its files put
under a prefix of each S3 server (SeaweedFS and moto, tests/s3server) as the
writer to object storage lays them out (docs/objectstorage.md); and one that
`dump --follow -o s3://` wrote itself, read from the bucket and from a copy."""

from __future__ import annotations

import base64
import filecmp
import json
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kstream.journal.format import CHANGE_TYPES, format_time, now_time
from kstream.journal.reader import open_journal
from tests.conftest import KUBECTL, VENV_BIN, Cluster, kstream, one_line
from tests.s3bucket import download
from tests.s3server import WRITER
from tests.seed import configmap, namespace, secret
from tests.test_objstore import BUCKET, S3, _fresh_proxy, needs_identities, s3

__all__ = ["_fresh_proxy", "s3"]  # the fixtures of tests/test_objstore.py, used here

pytestmark = pytest.mark.cluster

NS = "journal-s3"
SELECT = ("-n", NS, "-r", "configmaps,secrets")
PREFIX = "journals/one"


def changes_in(j: Path) -> int:
    if not (j / "segments").exists():
        return 0
    return sum(1 for e in open_journal(str(j)).events() if e.type in CHANGE_TYPES)


def wait_for(pred: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def follow(cluster: Cluster, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {"KUBECONFIG": str(cluster.kubeconfig), "PATH": "/usr/bin:/bin"}
    with open(log, "ab") as f:
        return subprocess.Popen(
            [str(VENV_BIN / "kstream"), "dump", "--follow", *args], stdout=f, stderr=f, env=env
        )


def stop(p: subprocess.Popen[bytes], log: Path) -> None:
    p.send_signal(signal.SIGINT)
    assert p.wait(timeout=60) == 0, log.read_text()


@dataclass
class Recorded:
    journal: Path
    started: str  # the base's instant
    t1: str  # after batch 1
    in_gap: str  # while no follower ran
    after: str  # after the resume's changes


@pytest.fixture(scope="module")
def recorded(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    cms = f"/api/v1/namespaces/{NS}/configmaps"
    for i in range(4):
        api.create(*configmap(NS, f"cm-{i}"), exist_ok=True)
    api.create(*secret(NS, "s-0"), exist_ok=True)
    d = tmp_path_factory.mktemp("journal-s3")
    j = d / "journal"
    log = d / "follow.log"
    p = follow(cluster, log, "-o", str(j), "--rotate-interval", "2s", *SELECT)
    try:
        wait_for(lambda: (j / "base.ndjson.zst").exists(), "the base snapshot")
        api.call("PATCH", f"{cms}/cm-0", {"data": {"k": "one"}})
        api.call("DELETE", f"{cms}/cm-1")
        api.create(*configmap(NS, "cm-new"))
        api.call("PATCH", f"/api/v1/namespaces/{NS}/secrets/s-0", {"stringData": {"p": "x"}})
        wait_for(lambda: changes_in(j) >= 4, "batch 1 in the journal")
        time.sleep(0.05)
        t1 = now_time()
        time.sleep(2.5)  # a segment boundary between t1 and batch 2
        # a large change (incompressible): the segments after t1 hold more frame
        # bytes than a few KB, so reading them whole would show
        big = base64.b64encode(random.Random(25).randbytes(30_000)).decode()
        api.call("PATCH", f"{cms}/cm-0", {"data": {"k": "two", "big": big}})
        api.call("DELETE", f"{cms}/cm-new")
        wait_for(lambda: changes_in(j) >= 6, "batch 2 in the journal")
        time.sleep(2.5)
    finally:
        stop(p, log)
    # while nothing follows: a change, then the resume opens a gap since the end
    time.sleep(0.5)
    in_gap = now_time()
    api.create(*configmap(NS, "cm-1"))
    time.sleep(0.5)
    p = follow(cluster, log, "--resume", str(j), "--rotate-interval", "2s")
    try:
        wait_for(lambda: changes_in(j) >= 7, "the resume's resync in the journal", 90)
        api.call("PATCH", f"{cms}/cm-2", {"data": {"k": "three"}})
        wait_for(lambda: changes_in(j) >= 8, "batch 3 in the journal")
        time.sleep(0.5)
    finally:
        stop(p, log)
    after = now_time()
    journal = open_journal(str(j))
    assert all(s.sealed for s in journal.segments)
    assert len(journal.segments) >= 4, [s.path for s in journal.segments]
    gaps, _ = journal.gaps()
    assert any(g.since < in_gap < g.until for g in gaps), (in_gap, gaps)
    try:
        yield Recorded(j, journal.started, t1, in_gap, after)
    finally:
        for name in ("cm-0", "cm-1", "cm-2", "cm-3", "cm-new"):
            api.call("DELETE", f"{cms}/{name}", ok=(200, 202, 404))
        api.call("DELETE", f"/api/v1/namespaces/{NS}/secrets/s-0", ok=(200, 202, 404))


def upload(s3: S3, j: Path, prefix: str) -> str:
    """The journal's files under `prefix/`, as the writer lays them out."""
    for f in sorted(j.rglob("*")):
        rel = f.relative_to(j).as_posix()
        wanted = rel in ("journal.json", "base.ndjson.zst") or rel.startswith(
            ("segments/", "bases/")
        )
        if f.is_file() and wanted:
            s3.client.put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=f.read_bytes())
    return f"s3://{BUCKET}/{prefix}/"


@pytest.fixture(scope="module")
def remote(s3: S3, recorded: Recorded) -> str:
    return upload(s3, recorded.journal, PREFIX)


def run(s3: S3, *args: str) -> Any:
    return kstream(*args, env=s3.env())


def same(s3: S3, local: str, url: str, *args: str, code: int = 0) -> None:
    """`kstream ARGS` names `local` and `url` alike: the same exit code and the
    same stdout (the name of the source put back)."""
    a = run(s3, *[x.replace("{}", local) for x in args])
    b = run(s3, *[x.replace("{}", url) for x in args])
    assert a.code == code, (args, a.err)
    assert b.code == code, (args, b.err)
    assert b.text.replace(url.rstrip("/"), local.rstrip("/")) == a.text, (args, a.text, b.text)


def instants(r: Recorded) -> list[str]:
    return [f"@{r.started}", f"@{r.t1}", f"@{r.after}", ""]


# --------------------------------------------------------------------------- readers


def test_count_equals_the_local_copy(s3: S3, recorded: Recorded, remote: str) -> None:
    local = str(recorded.journal) + "/"
    for at in instants(recorded):
        same(s3, local, remote, "count", "{}" + at, "-o", "json")
        same(s3, local, remote, "count", "{}" + at, "--by", "namespace")
    # s3://BUCKET/PREFIX@T (no slash) too, and @~T
    same(s3, str(recorded.journal), remote.rstrip("/"), "count", "{}@" + recorded.t1, "-o", "json")
    same(s3, local, remote, "count", "{}@~" + recorded.in_gap, "-o", "json")
    # the state moved between the instants (the comparisons are not of equal things)
    a = run(s3, "count", f"{remote}@{recorded.started}", "-o", "json")
    b = run(s3, "count", f"{remote}@{recorded.t1}", "-o", "json")
    assert json.loads(a.text)["rows"] != json.loads(b.text)["rows"]


def test_count_events_and_log_equal_the_local_copy(s3: S3, recorded: Recorded, remote: str) -> None:
    local = str(recorded.journal) + "/"
    same(s3, local, remote, "count", "{}", "--events", "-o", "json")
    same(s3, local, remote, "count", "{}", "--events", "--by", "kind", "--until", recorded.t1)
    same(s3, local, remote, "log", "{}", "-o", "ndjson")
    same(s3, local, remote, "log", "{}", "-r", "cm", "cm-0", "--since", recorded.t1)
    r = run(s3, "log", remote, "-o", "ndjson")
    names = {json.loads(x)["name"] for x in r.text.splitlines()}
    assert {"cm-0", "cm-1", "cm-new", "cm-2"} <= names, names


def test_diff_either_side(s3: S3, recorded: Recorded, remote: str) -> None:
    local = str(recorded.journal) + "/"
    t0, t1, end = (f"@{recorded.started}", f"@{recorded.t1}", f"@{recorded.after}")
    expect = run(s3, "diff", local + t0, local + t1, "-o", "ndjson")
    assert expect.code == 1, expect.err
    changed = sorted((c["change"], c["name"]) for c in map(json.loads, expect.text.splitlines()))
    assert changed == [
        ("added", "cm-new"),
        ("modified", "cm-0"),
        ("modified", "s-0"),
        ("removed", "cm-1"),
    ], changed
    for old, new in ((remote, local), (local, remote), (remote, remote)):
        r = run(s3, "diff", old + t0, new + t1, "-o", "ndjson")
        assert r.code == 1, r.err
        assert r.text == expect.text
    assert run(s3, "diff", remote + end, local).code == 0
    assert run(s3, "diff", local + t1, remote + t1).code == 0


def test_export_equals_the_local_copy(
    s3: S3, recorded: Recorded, remote: str, tmp_path: Path
) -> None:
    local = str(recorded.journal) + "/"
    for i, at in enumerate(instants(recorded)):
        a, b = tmp_path / f"local{i}", tmp_path / f"remote{i}"
        ra = run(s3, "export", local + at, "-o", str(a))
        rb = run(s3, "export", remote + at, "-o", str(b))
        assert (ra.code, rb.code) == (3, 3), (ra.err, rb.err)  # a Secret withheld
        files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
        assert any("cm-0" in f for f in files), files
        _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
        assert (mismatch, errors) == ([], []), (at, mismatch, errors)


def test_serve_with_kubectl(s3: S3, recorded: Recorded, remote: str, tmp_path: Path) -> None:
    """One server, the remote journal and its local copy at the same instant:
    kubectl gets the same objects from both contexts."""
    import os

    kubeconfig = tmp_path / "kubeconfig"
    t1 = recorded.t1
    env = {**os.environ, **s3.env(), "HOME": "/root"}
    proc = subprocess.Popen(
        [str(VENV_BIN / "kstream"), "serve", f"remote={remote}@{t1}",
         f"local={recorded.journal}/@{t1}", "--port", "0", "--kubeconfig-out", str(kubeconfig)],
        stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    banner = []
    try:
        for raw in proc.stderr:
            banner.append(raw.decode())
            if "Ctrl-C" in banner[-1]:
                break
        else:
            pytest.fail("".join(banner))

        def get(context: str) -> list[dict[str, Any]]:
            p = subprocess.run(
                [KUBECTL, "--kubeconfig", str(kubeconfig), "--context", context,
                 "get", "cm,secrets", "-n", NS, "-o", "json"],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            assert p.returncode == 0, p.stderr
            return list(json.loads(p.stdout)["items"])

        mine, theirs = get("remote"), get("local")
        assert mine == theirs
        names = {o["metadata"]["name"] for o in mine}
        assert {"cm-0", "cm-new", "s-0"} <= names and "cm-1" not in names, names
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


# --------------------------------------------------------------------------- refusals


def test_an_instant_inside_the_gap_is_refused_alike(
    s3: S3, recorded: Recorded, remote: str
) -> None:
    local = str(recorded.journal) + "/"
    a = run(s3, "count", f"{local}@{recorded.in_gap}")
    b = run(s3, "count", f"{remote}@{recorded.in_gap}")
    one_line(a, 2, "inside a gap")
    one_line(b, 2, "inside a gap", remote.rstrip("/"))
    assert b.err.replace(remote.rstrip("/"), local.rstrip("/")) == a.err
    before = run(s3, "count", f"{remote}@2001-01-01T00:00:00Z")
    one_line(before, 2, "before the journal begins", f"{remote.rstrip('/')}/@{recorded.started}")


def test_errors_are_one_line(s3: S3, recorded: Recorded, remote: str) -> None:
    t = f"@{recorded.t1}"
    r = run(s3, "count", f"s3://{BUCKET}/journals/nothing-here/")
    one_line(r, 6, "neither a kstream snapshot directory", "nor a journal")
    r = run(s3, "count", f"s3://{BUCKET}/journals/nothing-here/{t}")
    one_line(r, 6, f"no journal under s3://{BUCKET}/journals/nothing-here/ (no journal.json)")
    r = run(s3, "diff", f"{remote}{t}", f"s3://{BUCKET}/journals/nothing-here@{recorded.t1}")
    one_line(r, 6, "no journal under")
    r = run(s3, "count", f"s3://no-such-bucket-j/journal/{t}")
    one_line(r, 6, "no such bucket", "no-such-bucket-j")
    r = run(s3, "log", f"s3://{BUCKET}/journals/nothing-here/")
    one_line(r, 2, "reads a journal", "is not one")
    r = run(s3, "log", remote + t)
    one_line(r, 2, "--since/--until")
    # a journal whose segment went missing: named, exit 6
    upload(s3, recorded.journal, "journals/holed")
    seg = sorted(s3.keys("journals/holed/segments/"))[1]
    s3.client.delete_object(Bucket=BUCKET, Key=seg)
    r = run(s3, "count", f"s3://{BUCKET}/journals/holed/")
    one_line(r, 6, "segment", "is missing")


def test_no_permission(s3: S3, recorded: Recorded, remote: str) -> None:
    needs_identities(s3)
    r = kstream("count", f"{remote}@{recorded.t1}", env=s3.env(WRITER))
    one_line(r, 6, "permission denied")
    r = kstream("log", remote, env=s3.env(WRITER))
    one_line(r, 6, "permission denied")


# --------------------------------------------------------------------------- reads


def test_count_at_an_instant_reads_manifests_and_the_frames_it_needs(
    s3: S3, recorded: Recorded, remote: str
) -> None:
    """`count J/@t1`: journal.json, the base, each segment's header, manifest and
    footer; the frames of the segments before t1 only, each segment's frames in
    one GET; nothing else (no whole segment after t1, no object twice)."""
    from datetime import timedelta

    from kstream.journal.format import parse_time

    journal = open_journal(str(recorded.journal))
    root = f"/{BUCKET}/{PREFIX}/"
    sizes = {root + p.relative_to(recorded.journal).as_posix(): p.stat().st_size
             for p in recorded.journal.rglob("*") if p.is_file()}  # fmt: skip
    # the reader's rule: segments from the first one that begins more than a
    # second (SKEW) after the instant are not read
    stop = format_time(parse_time(recorded.t1) + timedelta(seconds=1))
    later: list[Any] = []
    for seg in journal.segments:
        assert seg.manifest is not None
        if later or (seg.manifest.first and seg.manifest.first > stop):
            later.append(seg)
    needed = [s for s in journal.segments if s not in later]
    assert needed and later, [s.manifest for s in journal.segments]
    s3.proxy.reset()
    r = run(s3, "count", f"{remote}@{recorded.t1}", "-o", "json")
    assert r.code == 0, r.err
    gets = [q for q in s3.proxy.requests if q.method == "GET" and "list-type" not in q.path]
    per_key: dict[str, list[Any]] = {}
    for q in gets:
        per_key.setdefault(q.path.split("?")[0], []).append(q)
    assert set(per_key) <= set(sizes), set(per_key) - set(sizes)
    assert all(q.range.startswith("bytes=") for q in gets if "/segments/" in q.path), gets
    frames = 0
    for seg in journal.segments:
        key = root + "segments/" + Path(seg.path).name
        got = per_key.get(key, [])
        region = seg.manifest_offset - seg.header_end  # its frames
        fetched = sum(q.body_bytes for q in got)
        if seg in later:  # its header, manifest and footer: a block at each end
            assert len(got) <= 2, got
            assert fetched <= sizes[key] - region + 8192, (seg.path, got)
        else:  # and its frames, in one GET
            assert len(got) <= 3, got
            assert fetched <= sizes[key] + 8192, (seg.path, got)
            frames += region
    # everything: journal.json, the base, the segments' structure and the frames
    # before the instant (with a block at each end of a segment as slack)
    structure = sum(sizes[root + "segments/" + Path(s.path).name]
                    - (s.manifest_offset - s.header_end) for s in journal.segments)  # fmt: skip
    budget = sizes[root + "base.ndjson.zst"] + sizes[root + "journal.json"]
    budget += structure + frames + 8192 * len(journal.segments)
    assert s3.proxy.fetched() <= budget, (s3.proxy.fetched(), budget)
    # requests: a HEAD of journal.json (is it a journal?) and of the base, one
    # LIST, a GET of journal.json, the base's head and tail and one a resource,
    # two a segment, one for the frames of each segment read
    from kstream.store.snapshot import open_snapshot

    units = len(open_snapshot(str(recorded.journal / "base.ndjson.zst")).entries)
    heads = [q for q in s3.proxy.requests if q.method == "HEAD"]
    lists = [q for q in s3.proxy.requests if "list-type" in q.path]
    assert len(heads) == 2 and len(lists) == 1, s3.proxy.requests
    assert len(gets) <= 1 + 2 + units + 2 * len(journal.segments) + len(needed), gets
    later_frames = sum(s.manifest_offset - s.header_end for s in later)
    assert later_frames > 30_000  # what was left unread, so the bound says something


# --------------------------------------------------------------------------- written there


def test_a_journal_dump_follow_wrote_to_s3(
    s3: S3, cluster: Cluster, recorded: Recorded, tmp_path: Path
) -> None:
    """`dump --follow -o s3://B/P/` (the writer, staged locally), read straight
    from the bucket: the same state, events and log as its files downloaded."""
    import os

    url = f"s3://{BUCKET}/written/"
    env = {**os.environ, **s3.env(direct=True), "KUBECONFIG": str(cluster.kubeconfig)}
    log = tmp_path / "follow.log"
    args = ["dump", "--follow", "-o", url, "--stage", str(tmp_path / "stage"),
            "--rotate-interval", "2s", "--follow-for", "8s", "-q", *SELECT]  # fmt: skip
    with open(log, "wb") as f:
        p = subprocess.Popen([str(VENV_BIN / "kstream"), *args], stdout=f, stderr=f, env=env)
    try:
        wait_for(lambda: "written/base.ndjson.zst" in s3.keys("written/"), "the base uploaded")
        cms = f"/api/v1/namespaces/{NS}/configmaps"
        # a value of its own each run (a PATCH that changes nothing makes no event)
        cluster.api.call("PATCH", f"{cms}/cm-3", {"data": {"k": f"written {time.time()}"}})
    finally:
        assert p.wait(timeout=120) == 0, log.read_text()
    copy = download(s3.client, BUCKET, "written/", tmp_path / "copy")
    assert any(k.startswith("written/segments/") for k in s3.keys("written/")), (
        s3.keys("written/"),
        log.read_text(),
    )
    local = str(copy) + "/"
    same(s3, local, url, "count", "{}", "-o", "json")
    same(s3, local, url, "count", "{}", "--events", "-o", "json")
    same(s3, local, url, "log", "{}", "-o", "ndjson")
    r = run(s3, "log", url, "-r", "cm", "cm-3", "-o", "ndjson")
    assert any(json.loads(x)["type"] == "MODIFIED" for x in r.text.splitlines()), r.text
