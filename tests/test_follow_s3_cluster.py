"""`kstream dump --follow -o s3://BUCKET/PREFIX/` against the real control plane
and a real S3 server (SeaweedFS, tests/s3server; its bucket versioned): a
recorder run with `--resume-or-start` is killed (-9) under churn and restarted
with the same arguments, then stopped; the journal the prefix holds (downloaded,
read with the local readers) equals the server's objects, a GAP covers the time
it was down, every key has one version, nothing is left in the stage. And the
one-line errors of a journal in object storage: no bucket, no permission, a
prefix holding a journal, a stage that cannot be written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kstream.journal.format import BASE_NAME, META_NAME, SEGMENT_DIR, list_segments, parse_time
from tests.conftest import VENV_BIN, Cluster, kstream, one_line
from tests.s3bucket import Bucket, s3_env, serve_bucket
from tests.s3server import ADMIN, READER, WRITER, S3Server
from tests.seed import namespace
from tests.test_follow_cluster import (
    Churn,
    fold,
    gadgets,  # noqa: F401  (the fixture)
    journal_events,
    kinds_of,
    server_state,
    wait_until,
    without_managed,
)

pytestmark = pytest.mark.cluster

BUCKET = "kstream-follow"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bucket]:
    with serve_bucket(S3Server(tmp_path_factory.mktemp("seaweedfs")), BUCKET) as b:
        yield b


def popen(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    e = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "NO_COLOR")}
    e.update(env)
    with open(log, "ab") as f:
        return subprocess.Popen([str(VENV_BIN / "kstream"), *args], stdout=f, stderr=f, env=e)


def test_recorder_killed_under_churn_and_restarted(
    gadgets: Cluster,  # noqa: F811
    store: Bucket,
    tmp_path: Path,
) -> None:
    cp = gadgets.cp
    ns = "follow-s3"
    gadgets.api.create(*namespace(ns), exist_ok=True)
    stage = tmp_path / "stage"
    log = tmp_path / "kstream.log"
    url = f"s3://{BUCKET}/rec/"
    env = store.server.env(ADMIN) | {"KUBECONFIG": str(cp.kubeconfig)}
    args = [
        "dump", "--follow", "-o", url, "--resume-or-start", "--stage", str(stage),
        "-n", ns, "-r", "configmaps,secrets,gadgets.follow.kstream.dev",
        "--rotate-interval", "2s", "-q",
    ]  # fmt: skip
    churn = Churn(cp, ns)
    churn.start()
    try:
        time.sleep(0.5)
        p = popen(args, env, log)
        wait_until(
            lambda: sum(k.startswith("rec/segments/") for k in store.versions("rec/")) >= 2,
            timeout=120,
            what="two segments uploaded",
        )
        time.sleep(1.5)
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        killed = time.time()
        assert list_segments(stage)  # the open segment stays in the stage
        time.sleep(3)  # down while the objects change
        restarted = time.time()
        before = len(store.versions("rec/"))
        p = popen(args, env, log)  # the same arguments: resumes
        wait_until(lambda: len(store.versions("rec/")) >= before + 2, timeout=120, what="uploads")
        churn.stop.set()
        churn.join(10)
        time.sleep(3)
        p.send_signal(signal.SIGTERM)
        assert p.wait(60) == 0, log.read_text()
    finally:
        churn.stop.set()
    assert not churn.errors, churn.errors[:3]
    text = log.read_text()
    assert "Traceback" not in text
    versions = store.versions("rec/")
    assert set(versions.values()) == {1}, versions  # every key written once
    assert not stage.exists()  # nothing left in the stage after a clean stop
    j = store.download("rec/", tmp_path / "download")
    segs = list_segments(j)
    assert list(segs) == list(range(1, len(segs) + 1))
    assert {p.name for p in j.iterdir()} == {META_NAME, "base.ndjson.zst", SEGMENT_DIR}
    server = server_state(cp, ns)
    folded = fold(j, kinds_of(ns))
    assert folded.keys() == server.keys()  # nothing lost
    for key in server:
        assert without_managed(folded[key]) == server[key], key
    # a GAP of each unit covers the time the recorder was down
    gaps = [e for e in journal_events(j) if e.type == "GAP"]
    covered = set()
    for g in gaps:
        assert g.object is not None
        since = parse_time(json.loads(g.object)["since"]).timestamp()
        if since <= killed and parse_time(g.time).timestamp() >= restarted:
            covered.add(g.resource)
    assert len(covered) == 3, gaps


def test_errors_of_a_journal_in_object_storage(
    cluster: Cluster, store: Bucket, tmp_path: Path
) -> None:
    kc = cluster.kubeconfig
    sel = ("-n", "default", "-r", "configmaps")
    admin = store.server.env(ADMIN)
    r = kstream("dump", "--follow", "-o", "s3://no-such-bucket/j/", *sel, kubeconfig=kc, env=admin)
    one_line(r, 7, "no such bucket: no-such-bucket")
    r = kstream("dump", "--follow", "-o", f"s3://{BUCKET}/j", *sel, kubeconfig=kc, env=admin)
    one_line(r, 2, "s3://BUCKET/PREFIX/ (with the trailing slash)")
    r = kstream("dump", "--follow", "-o", f"s3://{BUCKET}/j/", "--force", *sel, kubeconfig=kc, env=admin)  # fmt: skip
    one_line(r, 2, "never replaced")
    # may not list the bucket
    writer = store.server.env(WRITER)
    r = kstream("dump", "--follow", "-o", f"s3://{BUCKET}/j/", *sel, kubeconfig=kc, env=writer)
    one_line(r, 7, "permission denied")
    # may list, but not write: the base's upload is refused, nothing is left behind
    stage = tmp_path / "stage"
    reader = store.server.env(READER)
    r = kstream("dump", "--follow", "-o", f"s3://{BUCKET}/ro/", "--stage", str(stage), *sel, "-q", kubeconfig=kc, env=reader)  # fmt: skip
    assert r.code == 7, r.err
    assert "permission denied: these credentials may not write it" in r.err
    assert store.versions("ro/") == {}
    # the stage is not writable
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = kstream("dump", "--follow", "-o", f"s3://{BUCKET}/st/", "--stage", str(blocker / "s"), *sel, kubeconfig=kc, env=admin)  # fmt: skip
    one_line(r, 7, "--stage", "cannot make the staging directory")
    # a prefix holding a journal, without --resume
    r = kstream("dump", "--follow", "-o", f"s3://{BUCKET}/one/", "--follow-for", "1s", "--stage", str(tmp_path / "s1"), *sel, "-q", kubeconfig=kc, env=admin)  # fmt: skip
    assert r.code == 0, r.err
    assert f"one/{META_NAME}" in store.versions("one/")
    r = kstream("dump", "--follow", "-o", f"s3://{BUCKET}/one/", *sel, kubeconfig=kc, env=admin)
    one_line(r, 2, "holds a kstream journal: carry on with --resume")
    # --resume of a prefix without a journal
    r = kstream("dump", "--follow", "--resume", f"s3://{BUCKET}/none/", "--stage", str(tmp_path / "s2"), kubeconfig=kc, env=admin)  # fmt: skip
    one_line(r, 2, "holds no journal")
    # and --resume of the journal: from the bucket alone (a new stage), then readable
    r = kstream("dump", "--follow", "--resume", f"s3://{BUCKET}/one/", "--follow-for", "1s", "--stage", str(tmp_path / "s3"), "-q", kubeconfig=kc, env=admin)  # fmt: skip
    assert r.code == 0, r.err
    assert set(store.versions("one/").values()) == {1}


def test_a_second_writer_is_refused_on_seaweedfs(store: Bucket, tmp_path: Path) -> None:
    from tests.test_journal_s3_crash import second_writer_refused

    second_writer_refused(store.server.env(ADMIN), store.client, BUCKET, tmp_path)


def test_resume_or_start_on_a_directory(cluster: Cluster, tmp_path: Path) -> None:
    """The first run starts the journal, the second (the same arguments) resumes
    it (without the flag: refused, exit 2), recording the gap between them."""
    j = tmp_path / "j"
    args = ("dump", "--follow", "-o", f"{j}/", "-n", "default", "-r", "configmaps", "-q")
    r = kstream(*args, "--resume-or-start", "--follow-for", "1s", kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err
    created = json.loads((j / META_NAME).read_text())["created"]
    one_line(kstream(*args, kubeconfig=cluster.kubeconfig), 2, "carry on with --resume")
    r = kstream(*args, "--resume-or-start", "--follow-for", "1s", kubeconfig=cluster.kubeconfig)
    assert r.code == 0, r.err
    assert json.loads((j / META_NAME).read_text())["created"] == created  # the same journal
    assert [e.type for e in journal_events(j)] == ["GAP"]  # the time between the runs


def test_rebase_and_retention_in_object_storage(cluster: Cluster, store: Bucket, tmp_path: Path) -> None:  # fmt: skip
    """`dump --follow -o s3://.../ --rebase-every 3s --retain 7s` under churn
    (SeaweedFS, versioned): bases uploaded once each, retention deletes the old
    keys (a delete marker beside their one version); every retained instant read
    from the bucket equals the fold from base 0 of the same journal (every
    version of base.ndjson.zst and of each segment, the deleted ones too,
    downloaded after the run), and an earlier instant is refused naming the
    journal's start. SeaweedFS reports no Object Lock on this bucket: the
    deletes are done."""
    import re

    from kstream.journal.reader import open_journal
    from tests.seed import configmap
    from tests.test_journal_rebase_cluster import churn, counts

    api = cluster.api
    ns = "rebase-s3"
    api.create(*namespace(ns), exist_ok=True)
    for i in range(5):
        api.create(*configmap(ns, f"cm-{i}"), exist_ok=True)
    url = f"s3://{BUCKET}/rb/"
    log = tmp_path / "follow.log"
    env = store.server.env(ADMIN) | {"KUBECONFIG": str(cluster.kubeconfig)}
    args = [
        "dump", "--follow", "-o", url, "--stage", str(tmp_path / "stage"), "-n", ns,
        "-r", "configmaps", "--rotate-interval", "1s", "--rebase-every", "3s", "--retain", "7s",
    ]  # fmt: skip
    p = popen(args, env, log)
    instants: list[str] = []
    try:
        wait_until(lambda: f"rb/{META_NAME}" in store.versions("rb/"), 60, "journal.json")
        churn(api, ns, instants)
        time.sleep(2.5)  # the last changes sealed and uploaded
    finally:
        p.send_signal(signal.SIGINT)
        code = p.wait(timeout=60)
    said = log.read_text()
    assert code == 0, said
    assert "Traceback" not in said and "Object Lock" not in said, said
    assert "retention removed" in said, said
    bases = int(re.findall(r"(\d+) new bases? written", said)[-1])
    assert 4 <= bases <= 10, said  # one per 3 s period of a ~25 s run
    # every key written once; the deleted ones: that version and a delete marker
    r = store.client.list_object_versions(Bucket=BUCKET, Prefix="rb/")
    versions = [(v["Key"], v["VersionId"]) for v in r.get("Versions") or []]
    markers = {d["Key"] for d in r.get("DeleteMarkers") or []}
    keys = [k for k, _ in versions]
    assert len(keys) == len(set(keys)), keys
    assert f"rb/{BASE_NAME}" in markers and markers <= set(keys)
    assert sum(k.startswith("rb/bases/") for k in keys) == bases
    # the copy folded from base 0: base.ndjson.zst and every segment, deleted or not
    copy = tmp_path / "copy"
    for key, vid in versions:
        name = key[len("rb/") :]
        if name.startswith("bases/"):
            continue
        dest = copy / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        body = store.client.get_object(Bucket=BUCKET, Key=key, VersionId=vid)["Body"].read()
        dest.write_bytes(body)
    assert (copy / BASE_NAME).exists() and not (copy / "bases").exists()
    with s3_env(store.server.env(ADMIN)):
        start = open_journal(url).start
    kept = [t for t in instants if t >= start]
    gone = [t for t in instants if t < start]
    assert len(kept) >= 3 and gone, (start, instants)
    s3 = store.server.env(ADMIN)
    for t in [*kept, start]:
        assert counts(f"{url}@{t}", s3) == counts(f"{copy}/@{t}"), t
        d = kstream("diff", f"{url}@{t}", f"{copy}/@{t}", env=s3)
        assert d.code == 0, (t, d.out, d.err)  # object by object
    assert counts(url, s3) == counts(f"{copy}/")
    one_line(kstream("count", f"{url}@{gone[0]}", env=s3), 2, "before the journal starts", start)
    assert kstream("count", f"{copy}/@{gone[-1]}").code == 0  # base 0's fold reads it still
    api.call("DELETE", f"/api/v1/namespaces/{ns}", ok=(200, 202, 404))


def test_object_lock_on_seaweedfs_deletes_nothing(store: Bucket, tmp_path: Path) -> None:
    """SeaweedFS (the pinned version) implements S3 Object Lock: on a bucket made
    with it, GetObjectLockConfiguration says Enabled, and a re-basing writer (the
    fake server's, tests/crashjournal.py) uploads its bases, deletes nothing and
    says so once; on the versioned bucket without it the answer is the error
    taken as "not enabled"; credentials that may not ask get None (retention
    then notes it and deletes: a delete under Object Lock only adds a marker)."""
    from kstream.store import objstore
    from tests.test_journal_s3_crash import run

    locked = "kstream-locked"
    store.client.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    admin = store.server.env(ADMIN)
    with s3_env(admin):
        assert objstore.object_lock_enabled(objstore.parse(f"s3://{locked}/j/"))
        assert objstore.object_lock_enabled(objstore.parse(f"s3://{BUCKET}/j/")) is False
    with s3_env(store.server.env(WRITER)):  # may not read the bucket's configuration
        assert objstore.object_lock_enabled(objstore.parse(f"s3://{locked}/j/")) is None
    said: list[str] = []
    url = f"s3://{locked}/j/"
    assert run(store, "s3new+rebase", tmp_path / "stage", url, said=said) == 0  # its server's env
    r = store.client.list_object_versions(Bucket=locked, Prefix="j/")
    keys = [v["Key"] for v in r.get("Versions") or []]
    assert not r.get("DeleteMarkers") and len(keys) == len(set(keys)), r
    assert f"j/{BASE_NAME}" in keys and any(k.startswith("j/bases/") for k in keys)
    notes = [ln for ln in said if "Object Lock" in ln]
    assert len(notes) == 1 and "left to the bucket's lifecycle rules" in notes[0], said
    with s3_env(admin):
        assert kstream_count_ok(url)


def kstream_count_ok(url: str) -> bool:
    from tests.test_journal_crash_unit import cli

    code, err = cli("count", url, "--events")
    assert code == 0, err
    return True
