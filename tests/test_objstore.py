"""s3:// outputs and inputs against two real S3-compatible servers, each test once
per server: SeaweedFS (built and started on loopback by tests/s3server) and moto's
standalone server (from PyPI), with the real control plane.

A `Proxy` in front of the server counts the bytes each request fetched, can
answer 503 SlowDown or hold part uploads (for the Ctrl-C test), and refuses
botocore's flexible checksums as several S3-compatible stores do, so every test
also checks that kstream sends none to a custom endpoint."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import VENV_BIN, Cluster, kstream, one_line
from tests.s3server import (
    ADMIN,
    READER,
    SERVERS,
    WRITER,
    Identity,
    Proxy,
    S3Server,
    asks_for_checksums,
)
from tests.seed import configmap, namespace

pytestmark = pytest.mark.cluster  # the built local servers (S3, and the control plane)

BUCKET = "kstream-test"
NS = "objstore-big"
MIB = 1024 * 1024
PART = 5 * MIB  # the smallest part S3 (and SeaweedFS) accepts; tests only
BIG_CONFIGMAPS = 30  # ~0.9 MB of random base64 each: an archive of more than 3 parts


class S3:
    def __init__(self, server: S3Server, proxy: Proxy) -> None:
        self.server = server
        self.proxy = proxy
        import botocore.session

        os_env = server.env(ADMIN)
        session = botocore.session.Session()
        self.client = session.create_client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            aws_access_key_id=os_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=os_env["AWS_SECRET_ACCESS_KEY"],
        )

    def env(self, who: Identity = ADMIN, direct: bool = False, **extra: str) -> dict[str, str]:
        e = self.server.env(who, None if direct else self.proxy.endpoint)
        e.update(extra)
        return e

    def keys(self, prefix: str = "") -> list[str]:
        r = self.client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return sorted(o["Key"] for o in r.get("Contents") or [])

    def uploads(self) -> list[str]:
        r = self.client.list_multipart_uploads(Bucket=BUCKET)
        return [u["Key"] for u in r.get("Uploads") or []]

    def get(self, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())

    def size(self, key: str) -> int:
        return int(self.client.head_object(Bucket=BUCKET, Key=key)["ContentLength"])


@pytest.fixture(scope="module", params=sorted(SERVERS))
def s3(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    server = SERVERS[request.param](tmp_path_factory.mktemp(request.param))
    server.start()
    proxy = Proxy(server.port)
    try:
        s = S3(server, proxy)
        s.client.create_bucket(Bucket=BUCKET)
        yield s
    finally:
        proxy.close()
        server.stop()


@pytest.fixture(autouse=True)
def _fresh_proxy(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "s3" in request.fixturenames:
        request.getfixturevalue("s3").proxy.reset()


@pytest.fixture(scope="module")
def big(cluster: Cluster) -> Iterator[Cluster]:
    """A namespace of ConfigMaps holding random (incompressible) data."""
    api = cluster.api
    api.create(*namespace(NS), exist_ok=True)
    rnd = random.Random(14)
    items = []
    for i in range(BIG_CONFIGMAPS):
        path, obj = configmap(NS, f"blob-{i:02d}")
        obj["data"]["payload"] = base64.b64encode(rnd.randbytes(700_000)).decode()
        items.append((path, obj))
    api.create_many(items, threads=4)
    try:
        yield cluster
    finally:
        for i in range(BIG_CONFIGMAPS):
            api.call("DELETE", f"/api/v1/namespaces/{NS}/configmaps/blob-{i:02d}", ok=(200, 404))
        api.call("DELETE", f"/api/v1/namespaces/{NS}", ok=(200, 202, 404))


def dump_args(target: str, *more: str) -> list[str]:
    return ["dump", "-o", target, "-q", "-n", NS, "-r", "configmaps", *more]


def counts(text: str) -> dict[str, Any]:
    doc = json.loads(text)
    return {(r.get("resource"), r.get("namespace")): r["objects"] for r in doc["rows"]}


# --------------------------------------------------------------------------- output


def test_archive_of_more_than_three_parts(s3: S3, big: Cluster, tmp_path: Path) -> None:
    """The archive streams into a multipart upload of 4+ parts; the object is the
    archive a local dump writes (count and diff agree), no upload is left open,
    and a second dump to the same key needs --force."""
    url = f"s3://{BUCKET}/big/snap.ndjson.zst"
    env = s3.env(KSTREAM_S3_PART_SIZE=str(PART))
    s3.proxy.throttle_puts = 2  # the first two parts are throttled once: retried
    r = kstream(*dump_args(url), kubeconfig=big.kubeconfig, env=env)
    assert r.code == 0, r.err
    size = s3.size("big/snap.ndjson.zst")
    assert size > 3 * PART
    parts = [q for q in s3.proxy.requests if q.method == "PUT" and "partNumber=" in q.path]
    assert [q.status for q in parts].count(503) == 2, parts
    assert len([q for q in parts if q.status == 200]) >= 4, parts
    assert s3.uploads() == []
    assert s3.keys("big/") == ["big/snap.ndjson.zst"]
    # the same objects as a local dump
    local = tmp_path / "local.ndjson.zst"
    r = kstream(*dump_args(str(local)), kubeconfig=big.kubeconfig)
    assert r.code == 0, r.err
    rc = kstream("count", url, "-o", "json", env=env)
    lc = kstream("count", str(local), "-o", "json")
    assert rc.code == 0, rc.err
    assert counts(rc.text) == counts(lc.text)
    assert counts(rc.text)[("configmaps", None)] >= BIG_CONFIGMAPS
    d = kstream("diff", url, str(local), env=env)
    assert d.code == 0, (d.err, d.text[:500])
    # the object is a plain zstd archive: any tool reads it
    (tmp_path / "copy.zst").write_bytes(s3.get("big/snap.ndjson.zst"))
    assert kstream("count", str(tmp_path / "copy.zst"), "--verify").code == 0
    # --force rules, as for files
    again = kstream(*dump_args(url), kubeconfig=big.kubeconfig, env=env)
    one_line(again, 7, url, "--force")
    forced = kstream(*dump_args(url, "--force"), kubeconfig=big.kubeconfig, env=env)
    assert forced.code == 0, forced.err
    assert s3.uploads() == []


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_mid_upload(s3: S3, big: Cluster, sig: int, code: int) -> None:
    """SIGINT (or SIGTERM) while parts are on their way: exit 130 (143), no object
    under the key, no multipart upload left open, and what was read is in
    KEY.partial (a complete archive marked interrupted)."""
    key = f"intr-{code}/snap.ndjson.zst"
    url = f"s3://{BUCKET}/{key}"
    s3.proxy.hold.set()
    env = {**os.environ, "KUBECONFIG": str(big.kubeconfig), "HOME": "/root"}
    env.update(s3.env(KSTREAM_S3_PART_SIZE=str(PART)))
    p = subprocess.Popen(
        [str(VENV_BIN / "kstream"), *dump_args(url)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert s3.proxy.held.wait(120), "no part upload started"
        assert s3.uploads() == [key]  # the upload is open now
        p.send_signal(sig)
        time.sleep(0.5)
        s3.proxy.release.set()
        _, err_b = p.communicate(timeout=120)
    finally:
        s3.proxy.release.set()
        if p.poll() is None:
            p.kill()
            p.wait(10)
    err = err_b.decode()
    assert p.returncode == code, err
    assert "Traceback" not in err
    assert s3.keys(f"intr-{code}/") == [key + ".partial"]
    assert s3.uploads() == []
    # counted like a local interrupted snapshot: exit 6, the objects it holds
    r = kstream("count", url + ".partial", "-o", "json", env=s3.env())
    assert r.code == 6, r.err
    doc = json.loads(r.text)
    assert doc["complete"] is False
    assert counts(r.text)[("configmaps", None)] >= BIG_CONFIGMAPS


def test_directory_snapshot_under_a_prefix(s3: S3, big: Cluster, tmp_path: Path) -> None:
    """-o s3://bucket/prefix/ writes one object per resource and manifest.json;
    count and diff read it back like a local directory."""
    url = f"s3://{BUCKET}/dirsnap/"
    env = s3.env()
    r = kstream("dump", "-o", url, "-q", "-n", NS, "-r", "configmaps,serviceaccounts",
                kubeconfig=big.kubeconfig, env=env)  # fmt: skip
    assert r.code == 0, r.err
    keys = s3.keys("dirsnap/")
    assert "dirsnap/manifest.json" in keys
    assert len(keys) == 3, keys
    local = tmp_path / "local/"
    r = kstream("dump", "-o", str(local) + "/", "-q", "-n", NS, "-r", "configmaps,serviceaccounts",
                kubeconfig=big.kubeconfig)  # fmt: skip
    assert r.code == 0, r.err
    d = kstream("diff", url, str(local), env=env)
    assert d.code == 0, d.err
    # count from the manifest (its size check HEADs each object), and streamed
    for extra in ((), ("--verify",)):
        c = kstream("count", url, "-o", "json", *extra, env=env)
        assert c.code == 0, c.err
        assert counts(c.text)[("configmaps", None)] >= BIG_CONFIGMAPS
    again = kstream("dump", "-o", url, "-q", "-n", NS, "-r", "configmaps",
                    kubeconfig=big.kubeconfig, env=env)  # fmt: skip
    one_line(again, 7, "--force")
    forced = kstream("dump", "-o", url, "-q", "-n", NS, "-r", "configmaps", "--force",
                     kubeconfig=big.kubeconfig, env=env)  # fmt: skip
    assert forced.code == 0, forced.err
    # the serviceaccounts object of the old snapshot went with it
    assert len(s3.keys("dirsnap/")) == 2, s3.keys("dirsnap/")


# --------------------------------------------------------------------------- input


@pytest.fixture(scope="module")
def remote_archive(s3: S3, big: Cluster) -> str:
    url = f"s3://{BUCKET}/read/snap.ndjson.zst"
    r = kstream(*dump_args(url), kubeconfig=big.kubeconfig, env=s3.env(direct=True))
    assert r.code == 0, r.err
    return url


def test_count_reads_a_few_kb(s3: S3, remote_archive: str) -> None:
    """count from the manifest: ranged GETs of the header, footer and manifest,
    a few KB of a multi-MB archive; --verify reads all of it."""
    size = s3.size(remote_archive.split("/", 3)[3])
    assert size > 3 * PART
    s3.proxy.reset()
    r = kstream("count", remote_archive, env=s3.env())
    assert r.code == 0, r.err
    gets = [q for q in s3.proxy.requests if q.method == "GET"]
    assert gets and all(q.range.startswith("bytes=") for q in gets), gets
    assert s3.proxy.fetched() < 16 * 1024, s3.proxy.requests
    s3.proxy.reset()
    v = kstream("count", remote_archive, "--verify", env=s3.env())
    assert v.code == 0, v.err
    assert s3.proxy.fetched() >= size - 16 * 1024


def test_diff_remote_and_local(s3: S3, big: Cluster, remote_archive: str, tmp_path: Path) -> None:
    """Mixed remote and local sides, both ways; a change made after the dump
    shows up."""
    api = big.api
    api.create(*configmap(NS, "added-later"))
    try:
        local = tmp_path / "now.ndjson.zst"
        r = kstream(*dump_args(str(local)), kubeconfig=big.kubeconfig)
        assert r.code == 0, r.err
        d = kstream("diff", remote_archive, str(local), "--stat", env=s3.env())
        assert d.code == 1, d.err
        assert "added-later" in d.text or "1 added" in d.text, d.text
        back = kstream("diff", str(local), remote_archive, "-o", "json", env=s3.env())
        assert back.code == 1, back.err
        assert "added-later" in back.text
    finally:
        api.call("DELETE", f"/api/v1/namespaces/{NS}/configmaps/added-later", ok=(200, 404))


# --------------------------------------------------------------------------- bad input


def test_an_object_replaced_while_it_is_read(s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads after the HEAD carry If-Match: a replaced object is one clear error."""
    from kstream.errors import SnapshotError
    from kstream.store import objstore

    for k, v in s3.env(direct=True).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(objstore, "_client", None)  # built again from this environment
    s3.client.put_object(Bucket=BUCKET, Key="replaced", Body=b"old" * 100)
    obj = objstore.RemoteObject.open(objstore.parse(f"s3://{BUCKET}/replaced"))
    assert obj is not None and obj.get(0, 3) == b"old"
    s3.client.put_object(Bucket=BUCKET, Key="replaced", Body=b"new" * 100)
    with pytest.raises(SnapshotError) as e:
        obj.get(3, 6)
    assert str(e.value) == (
        f"s3://{BUCKET}/replaced: the object was replaced while it was read; read it again"
    )
    monkeypatch.setattr(objstore, "_client", None)


def test_unknown_bucket(s3: S3, tmp_path: Path) -> None:
    r = kstream("count", "s3://no-such-bucket/x.ndjson.zst", env=s3.env())
    one_line(r, 6, "no such bucket", "no-such-bucket")
    # checked before connecting to the cluster (whose kubeconfig does not exist)
    w = kstream("dump", "-o", "s3://no-such-bucket/x.ndjson.zst",
                env={**s3.env(), "KUBECONFIG": "/nonexistent/kubeconfig"})  # fmt: skip
    one_line(w, 7, "no such bucket")
    n = kstream("count", f"s3://{BUCKET}/nothing-here.ndjson.zst", env=s3.env())
    one_line(n, 6, "no such object")


def needs_identities(s3: S3) -> None:
    if not s3.server.identities:
        pytest.skip(f"{s3.server.name} accepts any credentials and allows every action")


def test_wrong_credentials(s3: S3) -> None:
    needs_identities(s3)
    bad = Identity("bad", ADMIN.access_key, "not-the-secret-key-at-all-000000000000")
    r = kstream("count", f"s3://{BUCKET}/x.ndjson.zst", env=s3.env(bad))
    one_line(r, 4, "rejected the credentials")
    unknown = Identity("unknown", "AKIANOSUCHKEY0000000", "whatever-secret-000000000000000000000")
    w = kstream("dump", "-o", f"s3://{BUCKET}/x.ndjson.zst",
                env={**s3.env(unknown), "KUBECONFIG": "/nonexistent/kubeconfig"})  # fmt: skip
    one_line(w, 4, "rejected the credentials")


def test_no_permission(s3: S3, big: Cluster, remote_archive: str) -> None:
    needs_identities(s3)
    # may only write: cannot even look at the key
    r = kstream("count", remote_archive, env=s3.env(WRITER))
    one_line(r, 6, "permission denied")
    # may only read: the dump runs, the upload is refused; nothing is left behind
    url = f"s3://{BUCKET}/readonly/snap.ndjson.zst"
    w = kstream(*dump_args(url), kubeconfig=big.kubeconfig, env=s3.env(READER))
    one_line(w, 7, "permission denied")
    assert s3.keys("readonly/") == []
    assert s3.uploads() == []


def test_endpoint_unreachable(s3: S3) -> None:
    from tests.controlplane import free_port

    env = {**s3.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    r = kstream("count", f"s3://{BUCKET}/x.ndjson.zst", env=env)
    one_line(r, 5, "cannot reach object storage")


def test_throttling_is_retried(s3: S3, remote_archive: str) -> None:
    """503 SlowDown is retried with backoff; throttling that does not stop ends
    with exit 5 and one line."""
    s3.proxy.throttle = 2
    r = kstream("count", remote_archive, env=s3.env())
    assert r.code == 0, r.err
    statuses = [q.status for q in s3.proxy.requests]
    assert statuses[:2] == [503, 503], statuses
    assert {200, 206} & set(statuses[2:]), statuses
    s3.proxy.reset()
    s3.proxy.throttle = 1000
    r = kstream("count", remote_archive, env=s3.env())
    one_line(r, 5, "throttling")


def test_shared_profile_and_s3_endpoint(s3: S3, remote_archive: str, tmp_path: Path) -> None:
    """The standard configuration: credentials from a profile of the shared
    credentials file (AWS_PROFILE), the endpoint from AWS_ENDPOINT_URL_S3, which
    wins over AWS_ENDPOINT_URL."""
    creds = tmp_path / "credentials"
    creds.write_text(
        f"[kstream-test]\naws_access_key_id = {READER.access_key}\n"
        f"aws_secret_access_key = {READER.secret_key}\n"
    )
    env = s3.env(READER)
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env[k] = ""
    env.update(
        AWS_PROFILE="kstream-test",
        AWS_SHARED_CREDENTIALS_FILE=str(creds),
        AWS_ENDPOINT_URL_S3=s3.proxy.endpoint,
        AWS_ENDPOINT_URL="http://127.0.0.1:1",
    )
    r = kstream("count", remote_archive, env=env)
    assert r.code == 0, r.err
    assert s3.proxy.requests, "the S3 endpoint was not used"


def test_small_ndjson_object(s3: S3, big: Cluster, tmp_path: Path) -> None:
    """An output smaller than one part is one plain PUT; NDJSON objects are read
    back (count, diff) like NDJSON files."""
    url = f"s3://{BUCKET}/small/ns.ndjson"
    r = kstream(
        "dump", "-o", url, "-q", "-r", "namespaces", kubeconfig=big.kubeconfig, env=s3.env()
    )
    assert r.code == 0, r.err
    assert not [q for q in s3.proxy.requests if "uploads" in q.path or "partNumber=" in q.path]
    body = s3.get("small/ns.ndjson")
    names = [json.loads(ln)["metadata"]["name"] for ln in body.splitlines()]
    assert NS in names
    local = tmp_path / "ns.ndjson"
    local.write_bytes(body)
    c = kstream("count", url, "-o", "json", env=s3.env())
    assert c.code == 0, c.err
    assert counts(c.text)[("namespaces", None)] == len(names)
    d = kstream("diff", url, str(local), env=s3.env())
    assert d.code == 0, d.err


def test_placeholders_in_an_s3_name(s3: S3, big: Cluster) -> None:
    """The CronJob's output (deploy/cronjob.yaml): placeholders expanded in an
    s3:// name, no local directory made for it, the object where the name says."""
    r = kstream(
        "dump", "-o", f"s3://{BUCKET}/nightly/{{context}}/{{time:%Y}}/{{date}}.ndjson.zst",
        "-q", "-r", "namespaces", kubeconfig=big.kubeconfig, env=s3.env(),
    )  # fmt: skip
    assert r.code == 0, r.err
    keys = s3.keys("nightly/")
    assert len(keys) == 1, keys
    context, year, name = keys[0].split("/")[1:]
    assert context and "{" not in context
    assert year.isdigit() and name.startswith(year) and name.endswith(".ndjson.zst")
    assert not Path("s3:").exists()
    c = kstream("count", f"s3://{BUCKET}/{keys[0]}", "-o", "json", env=s3.env())
    assert c.code == 0, c.err
    assert counts(c.text)[("namespaces", None)] >= 1


# --------------------------------------------------------------------------- checksums


def test_no_checksums_to_a_custom_endpoint(s3: S3, big: Cluster) -> None:
    """botocore >= 1.36 sends a CRC32 with every upload and asks for one with every
    download; with a custom endpoint kstream sends neither (the proxy refuses them,
    as several S3-compatible stores do), for a multipart archive, a plain PUT and
    the reads back."""
    url = f"s3://{BUCKET}/sums/snap.ndjson.zst"
    env = s3.env(KSTREAM_S3_PART_SIZE=str(PART))
    r = kstream(*dump_args(url), kubeconfig=big.kubeconfig, env=env)
    assert r.code == 0, r.err
    small = kstream("dump", "-o", f"s3://{BUCKET}/sums/ns.ndjson", "-q", "-r", "namespaces",
                    kubeconfig=big.kubeconfig, env=env)  # fmt: skip
    assert small.code == 0, small.err
    for name in (url, f"s3://{BUCKET}/sums/ns.ndjson"):
        c = kstream("count", name, "--verify", env=env)
        assert c.code == 0, c.err
    sent = s3.proxy.requests
    assert {q.method for q in sent} >= {"PUT", "POST", "GET", "HEAD"}, sent
    assert [q for q in sent if "partNumber=" in q.path]
    assert not [q for q in sent if asks_for_checksums(q.headers)]
    assert not [q for q in sent if q.status == 400]


def test_the_users_checksum_setting_wins(s3: S3, big: Cluster) -> None:
    """AWS_REQUEST_CHECKSUM_CALCULATION=when_supported (or the profile's
    request_checksum_calculation) is botocore's again: checksums are sent."""
    s3.proxy.refuse_checksums = False
    url = f"s3://{BUCKET}/sums-on/ns.ndjson"
    env = s3.env(AWS_REQUEST_CHECKSUM_CALCULATION="when_supported")
    r = kstream("dump", "-o", url, "-q", "-r", "namespaces", kubeconfig=big.kubeconfig, env=env)
    assert r.code == 0, r.err
    puts = [q for q in s3.proxy.requests if q.method == "PUT"]
    assert puts and all(asks_for_checksums(q.headers) for q in puts), puts
