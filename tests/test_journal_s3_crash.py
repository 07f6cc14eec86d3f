"""A journal in object storage (kstream/journal/remote.py), crashed at every step:
the local journal's disk steps in the stage and each upload (`upload NAME`, a
crash point of kstream/journal/durable.py), against moto's S3 server (from
tests/s3server) with a versioned bucket, the writer of tests/crashjournal.py
(`s3new`, `s3resume`) against its fake API server.

After each crash and the resume: the prefix, downloaded to a local directory
and read with the local journal readers, holds exactly the server's change
events, its segments are numbered without a hole, every key has exactly one
version (create-only uploads: nothing written twice), no multipart upload is
left open, and nothing is left in the stage. A resume on a new machine (an
empty stage) continues from the bucket alone. A second writer on the same
prefix fails at its first upload and replaces nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kstream.journal.durable import CRASH_EXIT
from kstream.journal.format import BASE_NAME, META_NAME, SEGMENT_DIR, list_segments, position_key
from tests import crashjournal as cj
from tests.s3bucket import Bucket, s3_env, serve_bucket
from tests.s3server import MotoServer
from tests.test_journal_crash_unit import changes_of, check_rebased, cli, expected, journal_events

pytestmark = pytest.mark.cluster  # a local S3 server (moto), as tests/test_objstore.py

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "kstream-journal"
MAX_STEPS = 200


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bucket]:
    with serve_bucket(MotoServer(tmp_path_factory.mktemp("moto")), BUCKET) as b:
        yield b


def run(bucket: Bucket, what: str, stage: Path, url: str, crash: int = 0, trace: Path | None = None, said: list[str] | None = None) -> int:  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT), **bucket.env)
    for k in ("KSTREAM_CRASH_AT", "KSTREAM_CRASH_TRACE", "KSTREAM_STOP_AT"):
        env.pop(k, None)
    if crash:
        env["KSTREAM_CRASH_AT"] = str(crash)
    if trace is not None:
        env["KSTREAM_CRASH_TRACE"] = str(trace)
    r = subprocess.run(
        [sys.executable, "-m", "tests.crashjournal", what, str(stage), url],
        env=env, cwd=ROOT, capture_output=True, timeout=120,
    )  # fmt: skip
    assert r.returncode in (0, CRASH_EXIT, cj.NO_JOURNAL), r.stderr.decode()[-2000:]
    if said is not None:
        said += r.stderr.decode().splitlines()
    return r.returncode


def check_bucket(bucket: Bucket, prefix: str, stage: Path, tmp: Path) -> None:
    """The journal the prefix holds is complete and written once."""
    versions = bucket.versions(prefix)
    assert versions and set(versions.values()) == {1}, versions  # one version of every key
    assert bucket.uploads(prefix) == []
    j = bucket.download(prefix, tmp / "download")
    evs = journal_events(j)
    assert changes_of(evs) == expected()  # nothing lost, nothing twice
    times = [e.time for e in evs]
    assert times == sorted(times)
    segs = list_segments(j)
    assert list(segs) == list(range(1, len(segs) + 1))  # numbered without a hole
    assert {p.name for p in j.iterdir()} == {META_NAME, BASE_NAME, SEGMENT_DIR}
    assert not stage.exists()  # nothing left in the stage
    code, err = cli("count", f"{j}/", "--events")
    assert code == 0, err
    shutil.rmtree(j)


def test_crash_at_every_step_of_a_new_s3_journal(bucket: Bucket, tmp_path: Path) -> None:
    """Lock, base, its upload, journal.json's upload (the commit point), each
    segment sealed, uploaded and removed from the stage: a crash before each
    step, then the resume with the same stage (a restarted process), or a new
    run where the resume says there is no journal."""
    steps = 0
    uploads = 0
    for n in range(1, MAX_STEPS):
        stage = tmp_path / f"c{n}" / "stage"
        url = f"s3://{BUCKET}/new{n}/"
        trace = tmp_path / f"c{n}" / "trace"
        stage.parent.mkdir()
        code = run(bucket, "s3new", stage, url, crash=n, trace=trace)
        if code == 0:
            check_bucket(bucket, f"new{n}/", stage, stage.parent)
            break
        assert code == CRASH_EXIT
        steps = n
        last = trace.read_text().splitlines()[-1]
        uploads += " upload " in last
        if run(bucket, "s3resume", stage, url) == cj.NO_JOURNAL:
            assert bucket.versions(f"new{n}/") == {}
            assert run(bucket, "s3new", stage, url) == 0
        check_bucket(bucket, f"new{n}/", stage, stage.parent)
    assert steps >= 30
    assert uploads >= 5  # base, journal.json, every segment: crashed before each


def test_crash_at_every_step_of_an_s3_resume(bucket: Bucket, tmp_path: Path) -> None:
    """A run killed mid-segment (an open segment in the stage, sealed ones
    uploaded); the resume crashed before each of its steps (the tail sealed,
    uploaded, the follow on), then resumed again with the same stage."""
    trace = tmp_path / "trace"
    assert run(bucket, "s3new", tmp_path / "s0", f"s3://{BUCKET}/r0/", trace=trace) == 0
    names = trace.read_text().splitlines()
    frames = [i for i, ln in enumerate(names, 1) if " end frame " in ln]
    cut = frames[len(frames) // 2 + 1]

    def staged(stage: Path, prefix: str) -> bool:
        return bool(list_segments(stage))  # an open segment staged

    resumed = crash_every_resume_step(
        bucket, tmp_path, "res", ("s3new", "s3resume"), cut, staged, check_bucket
    )
    assert resumed >= 8


def crash_every_resume_step(
    bucket: Bucket,
    tmp_path: Path,
    key: str,
    modes: tuple[str, str],
    cut: int,
    cut_left: Callable[[Path, str], bool],
    check: Callable[[Bucket, str, Path, Path], None],
) -> int:
    """For m = 1, 2, ...: a new journal under KEY{m}/ killed at step `cut` (what
    it left: `cut_left(stage, prefix)`), its resume killed before step m, then
    resumed again with the same stage; `check` of the prefix after each (and
    after the resume that ran to its end). The last step a resume crashed at."""
    new, resume = modes
    resumed = 0
    for m in range(1, MAX_STEPS):
        stage = tmp_path / f"r{m}" / "stage"
        prefix = f"{key}{m}/"
        url = f"s3://{BUCKET}/{prefix}"
        stage.parent.mkdir()
        assert run(bucket, new, stage, url, crash=cut) == CRASH_EXIT
        assert cut_left(stage, prefix)
        code = run(bucket, resume, stage, url, crash=m)
        if code == 0:
            check(bucket, prefix, stage, stage.parent)
            break
        assert code == CRASH_EXIT
        resumed = m
        assert run(bucket, resume, stage, url) == 0
        check(bucket, prefix, stage, stage.parent)
    return resumed


def test_resume_on_a_new_machine_from_the_bucket_alone(bucket: Bucket, tmp_path: Path) -> None:
    """The stage lost with the killed run (a new pod): the resume starts from
    the positions the bucket holds; the server replays the changes since (the
    fake one always can), so the journal is complete again."""
    url = f"s3://{BUCKET}/lost/"
    trace = tmp_path / "trace"
    assert run(bucket, "s3new", tmp_path / "probe", f"s3://{BUCKET}/probe/", trace=trace) == 0
    lines = trace.read_text().splitlines()
    second = next(i for i, ln in enumerate(lines, 1) if "upload segments/000002" in ln)
    old = tmp_path / "old-stage"
    assert run(bucket, "s3new", old, url, crash=second + 2) == CRASH_EXIT
    shutil.rmtree(old)  # the stage is gone with the pod
    new = tmp_path / "new-stage"
    assert run(bucket, "s3resume", new, url) == 0
    check_bucket(bucket, "lost/", new, tmp_path)


def test_a_second_writer_fails_at_its_first_upload(bucket: Bucket, tmp_path: Path) -> None:
    """Two stages writing the same prefix: the second one's upload of a key the
    first wrote is refused (the HEAD before it, and the conditional write
    itself), with one line naming the key; the first one's object is kept."""
    second_writer_refused(bucket.env, bucket.client, BUCKET, tmp_path)


def second_writer_refused(env: dict[str, str], client: Any, name: str, tmp_path: Path) -> None:
    """(Also run on SeaweedFS by tests/test_follow_s3_cluster.py.)"""
    from kstream.errors import AlreadyExists, OutputError
    from kstream.journal.remote import Uploader, prefix_of
    from kstream.store import objstore

    seg = f"{SEGMENT_DIR}/000001.events.zst"
    with s3_env(env):
        prefix = prefix_of(f"s3://{name}/two/")
        a, b = tmp_path / "a", tmp_path / "b"
        for d, data in ((a, b"first"), (b, b"second")):
            (d / SEGMENT_DIR).mkdir(parents=True)
            (d / seg).write_bytes(data)
        Uploader(prefix, a).upload(a / seg, seg)
        # the same bytes again: taken as uploaded (a crash after the upload)
        Uploader(prefix, a).upload(a / seg, seg)
        with pytest.raises(OutputError) as e:
            Uploader(prefix, b).upload(b / seg, seg)
        assert "exists with other content: another kstream writes this journal" in str(e.value)
        assert "\n" not in str(e.value)
        # the conditional write itself (no HEAD first): refused, nothing replaced
        with open(b / seg, "rb") as f, pytest.raises(AlreadyExists):
            objstore.put_file(prefix.child(seg), f, create_only=True)
        got = client.get_object(Bucket=name, Key=f"two/{seg}")
        assert got["Body"].read() == b"first"
        r = client.list_object_versions(Bucket=name, Prefix="two/")
        assert [v["Key"] for v in r.get("Versions") or []] == [f"two/{seg}"]


# =========================================================================== re-basing


def check_bucket_rebased(bucket: Bucket, prefix: str, stage: Path, tmp: Path, whole: bool = True) -> None:  # fmt: skip
    """A re-based journal in the bucket: every key written once (a key retention
    deleted: its one version and a delete marker, nothing else), no multipart
    upload open; its events, states and readers as `check_rebased` says (the
    readers and every retained instant's state read from the bucket itself);
    after a clean end nothing left in the stage."""
    versions = bucket.versions(prefix)
    assert versions and set(versions.values()) <= {1, 101}, versions
    assert bucket.uploads(prefix) == []
    j = bucket.download(prefix, tmp / "download" / "j")
    with s3_env(bucket.env):
        check_rebased(j, whole, at=f"s3://{BUCKET}/{prefix}")
    if whole:
        assert not stage.exists()
    shutil.rmtree(j.parent)


def test_crash_at_every_step_of_an_s3_rebase_and_retention(bucket: Bucket, tmp_path: Path) -> None:
    """`--rebase-every` / `--retain` on a journal in object storage (a new base
    at each rotation, then all that retention may delete): a crash before each
    step from the first new base to the retention that deletes a later base
    (the fold's work directory, the rename into the stage, the base's upload,
    its local copy removed, the deletes of base.ndjson.zst, then of each
    segment and older base, oldest first), then the resume with the same stage. What
    the crash left, and the resumed journal, read from the bucket."""
    trace = tmp_path / "trace"
    assert run(bucket, "s3new+rebase", tmp_path / "s0", f"s3://{BUCKET}/rb0/", trace=trace) == 0
    check_bucket_rebased(bucket, "rb0/", tmp_path / "s0", tmp_path)
    versions = bucket.versions("rb0/")
    assert versions[f"rb0/{BASE_NAME}"] == 101  # retention deleted base 0
    assert any("/bases/" in k and n == 1 for k, n in versions.items())
    steps = trace.read_text().splitlines()
    rebases = [i for i, ln in enumerate(steps, 1) if ln.endswith(" mkdir .kstream-rebase")]
    assert len(rebases) >= 2
    # to the retention that deletes a later base (not base.ndjson.zst) and its segment
    last = next(i for i, ln in enumerate(steps, 1) if " delete bases/" in ln) + 1
    kinds = set()
    for n in range(rebases[0], last + 1):
        stage = tmp_path / f"c{n}" / "stage"
        url = f"s3://{BUCKET}/rbc{n}/"
        stage.parent.mkdir()
        code = run(bucket, "s3new+rebase", stage, url, crash=n)
        if code == 0:
            break
        assert code == CRASH_EXIT
        kinds.add(" ".join(steps[n - 1].split()[1:2]))
        check_bucket_rebased(bucket, f"rbc{n}/", stage, stage.parent, whole=False)
        assert run(bucket, "s3resume+rebase", stage, url) == 0
        check_bucket_rebased(bucket, f"rbc{n}/", stage, stage.parent)
    assert kinds >= {"mkdir", "rename", "fsync-dir", "rmdir", "upload", "unlink", "delete"}, kinds


def test_crash_at_every_step_of_an_s3_resume_that_rebases(bucket: Bucket, tmp_path: Path) -> None:
    """A re-based journal in object storage cut mid-follow (an open segment in
    the stage), then the resume (re-basing and retaining, its positions from
    the newest base and the segments after it) crashed before each of its steps,
    then resumed again with the same stage."""
    trace = tmp_path / "trace"
    assert run(bucket, "s3new+rebase", tmp_path / "s0", f"s3://{BUCKET}/rr0/", trace=trace) == 0
    frames = [i for i, ln in enumerate(trace.read_text().splitlines(), 1) if " end frame " in ln]
    cut = frames[len(frames) // 2]

    def rebased(stage: Path, prefix: str) -> bool:
        return any("/bases/" in k for k in bucket.versions(prefix))

    modes = ("s3new+rebase", "s3resume+rebase")
    resumed = crash_every_resume_step(
        bucket, tmp_path, "rr", modes, cut, rebased, check_bucket_rebased
    )
    assert resumed >= 8


def test_resume_of_a_rebased_journal_reads_only_since_its_newest_base(
    bucket: Bucket, tmp_path: Path
) -> None:
    """`--resume s3://` positions: the newest base's manifest and the segments
    after it; the segments the bases cover are not read (retention deleted
    base.ndjson.zst and the oldest segments: a reader from base 0 fails)."""
    from kstream.journal import remote

    url = f"s3://{BUCKET}/pos/"
    assert run(bucket, "s3new+rebase", tmp_path / "s", url) == 0
    versions = bucket.versions("pos/")
    kept = sorted(k for k, n in versions.items() if n == 1 and "/segments/" in k)
    gone = sorted(k for k, n in versions.items() if n == 101 and "/segments/" in k)
    bases = sorted(k for k, n in versions.items() if n == 1 and "/bases/" in k)
    assert gone and bases and versions[f"pos/{BASE_NAME}"] == 101
    with s3_env(bucket.env):
        pos = remote.remote_positions(remote.prefix_of(url), tmp_path, None)
    newest = int(bases[-1].rsplit("/", 1)[1].split(".")[0])
    after = [k for k in kept if int(k.rsplit("/", 1)[1].split(".")[0]) > newest]
    assert pos.segments == len(after)
    assert pos.next_segment == max([newest] + [int(k.rsplit("/", 1)[1][:6]) for k in kept]) + 1
    assert pos.rvs == {position_key("v1/configmaps", ""): str(cj.last_rv())}


def test_object_lock_deletes_nothing(tmp_path: Path) -> None:
    """A bucket with S3 Object Lock enabled (moto: ObjectLockEnabledForBucket):
    re-bases are uploaded, --retain deletes nothing and says so once; a bucket
    without it answers GetObjectLockConfiguration with an error taken as "not
    enabled"."""
    from kstream.store import objstore

    server = MotoServer(tmp_path / "moto")
    server.start()
    try:
        b = Bucket(server, BUCKET)
        b.client.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
        b.client.create_bucket(Bucket="plain")
        with s3_env(b.env):
            assert objstore.object_lock_enabled(objstore.parse(f"s3://{BUCKET}/j/"))
            assert not objstore.object_lock_enabled(objstore.parse("s3://plain/j/"))
        said: list[str] = []
        stage = tmp_path / "stage"
        assert run(b, "s3new+rebase", stage, f"s3://{BUCKET}/locked/", said=said) == 0
        versions = b.versions("locked/")
        assert set(versions.values()) == {1}, versions  # nothing deleted
        assert versions[f"locked/{BASE_NAME}"] == 1
        assert sum("/bases/" in k for k in versions) >= 2
        notes = [ln for ln in said if "Object Lock" in ln]
        assert len(notes) == 1, said
        assert "deletion is left to the bucket's lifecycle rules" in notes[0]
        j = b.download("locked/", tmp_path / "download" / "j")
        with s3_env(b.env):
            check_rebased(j, at=f"s3://{BUCKET}/locked/")
    finally:
        server.stop()
