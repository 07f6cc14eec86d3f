"""kstream/store/objstore.py without a server: names, part sizes, error translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from kstream.errors import ConfigError, ConnectionFailed, OutputError, SnapshotError, UsageError
from kstream.exitcodes import ExitCode
from kstream.store import objstore


def test_parse() -> None:
    assert objstore.parse("s3://b/p/snap.zst") == objstore.Location("b", "p/snap.zst")
    assert objstore.parse("s3://b") == objstore.Location("b", "")
    assert objstore.Location("b", "p/").child("manifest.json").key == "p/manifest.json"
    assert objstore.Location("b", "p").child("x").key == "p/x"
    with pytest.raises(UsageError):
        objstore.parse("s3:///key")
    assert objstore.is_url("S3://b/k") and not objstore.is_url("s3.zst")


def test_parts_grow_so_that_10000_hold_more_than_80_gb() -> None:
    sizes = [objstore.part_size(n, objstore.FIRST_PART) for n in range(1, objstore.MAX_PARTS + 1)]
    assert sizes[0] == objstore.FIRST_PART >= objstore.MIN_PART
    assert sizes == sorted(sizes)
    assert max(sizes) <= objstore.MAX_PART
    assert sum(sizes[:2000]) > 16 * 10**9
    assert sum(sizes) > 5 * 10**12  # S3's largest object
    # the first 80 GB take parts no larger than 128 MiB (memory stays bounded)
    total, n = 0, 0
    while total < 80 * 10**9:
        total += sizes[n]
        n += 1
    assert sizes[n - 1] <= 128 * 1024 * 1024


def test_part_size_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(objstore.PART_SIZE_ENV, "5242880")
    assert objstore.first_part_size() == 5242880
    monkeypatch.setenv(objstore.PART_SIZE_ENV, "nonsense")
    assert objstore.first_part_size() == objstore.FIRST_PART


def _client_error(code: str, status: int) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


@pytest.mark.parametrize(
    ("code", "status", "op", "cls", "exit"),
    [
        ("NoSuchBucket", 404, "read", SnapshotError, ExitCode.SNAPSHOT),
        ("NoSuchBucket", 404, "write", OutputError, ExitCode.OUTPUT),
        ("NoSuchKey", 404, "read", SnapshotError, ExitCode.SNAPSHOT),
        ("InvalidAccessKeyId", 403, "read", ConfigError, ExitCode.CONFIG),
        ("SignatureDoesNotMatch", 403, "write", ConfigError, ExitCode.CONFIG),
        ("AccessDenied", 403, "read", SnapshotError, ExitCode.SNAPSHOT),
        ("AccessDenied", 403, "write", OutputError, ExitCode.OUTPUT),
        ("SlowDown", 503, "write", ConnectionFailed, ExitCode.CONNECTION),
        ("InternalError", 500, "read", ConnectionFailed, ExitCode.CONNECTION),
    ],
)
def test_translate(code: str, status: int, op: str, cls: type, exit: ExitCode) -> None:
    e = objstore.translate(_client_error(code, status), op, "s3://b/k")  # type: ignore[arg-type]
    assert type(e) is cls
    assert e.exit_code == exit
    assert "\n" not in str(e) and str(e).startswith("s3://b/k")


def test_translate_transport() -> None:
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError

    e = objstore.translate(EndpointConnectionError(endpoint_url="http://x"), "read", "s3://b/k")
    assert isinstance(e, ConnectionFailed) and "cannot reach" in str(e)
    n = objstore.translate(NoCredentialsError(), "write", "s3://b/k")
    assert isinstance(n, ConfigError) and "no credentials" in str(n)


def test_local_snapshots_do_not_import_botocore(tmp_path: Path) -> None:
    """count and diff of local snapshots never load the object-storage client."""
    from kstream.store.format import Manifest
    from kstream.store.writers import ArchiveWriter
    from tests.test_startup import imports

    path = str(tmp_path / "s.ndjson.zst")
    w = ArchiveWriter(path, False)
    w.finish(Manifest(status="complete").to_json(), interrupted=False)
    mods, _ = imports("count", path)
    assert "kstream.count" in mods
    assert not [m for m in mods if m.split(".")[0] == "botocore"]
    mods, _ = imports("diff", path, path)
    assert "kstream.diff" in mods
    assert not [m for m in mods if m.split(".")[0] == "botocore"]


# ---------------------------------------------------------------- checksums (botocore >= 1.36)

_AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REQUEST_CHECKSUM_CALCULATION",
            "AWS_RESPONSE_CHECKSUM_VALIDATION", "AWS_PROFILE")  # fmt: skip


def _client_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> object:
    """The botocore client objstore makes in this environment (no request sent)."""
    for k in _AWS_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(objstore, "_client", None)
    try:
        return objstore.client().meta.config
    finally:
        monkeypatch.setattr(objstore, "_client", None)


def test_custom_endpoint_checksums_only_when_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """S3-compatible servers: no CRC checksum on every request (several refuse it)."""
    cfg = _client_config(monkeypatch, tmp_path, AWS_ENDPOINT_URL="http://127.0.0.1:9")
    assert cfg.request_checksum_calculation == "when_required"  # type: ignore[attr-defined]
    assert cfg.response_checksum_validation == "when_required"  # type: ignore[attr-defined]
    # the endpoint from the profile counts as custom too
    (tmp_path / "config").write_text("[default]\nendpoint_url = http://127.0.0.1:9\n")
    cfg = _client_config(monkeypatch, tmp_path)
    assert cfg.request_checksum_calculation == "when_required"  # type: ignore[attr-defined]


def test_aws_s3_keeps_botocore_checksums(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = _client_config(monkeypatch, tmp_path)
    assert cfg.request_checksum_calculation == "when_supported"  # type: ignore[attr-defined]
    assert cfg.response_checksum_validation == "when_supported"  # type: ignore[attr-defined]


def test_the_users_checksum_configuration_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cfg = _client_config(
        monkeypatch,
        tmp_path,
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_REQUEST_CHECKSUM_CALCULATION="when_supported",
    )
    assert cfg.request_checksum_calculation == "when_supported"  # type: ignore[attr-defined]
    assert cfg.response_checksum_validation == "when_required"  # type: ignore[attr-defined]
    (tmp_path / "config").write_text(
        "[default]\nendpoint_url = http://127.0.0.1:9\nresponse_checksum_validation = when_supported\n"
    )
    cfg = _client_config(monkeypatch, tmp_path)
    assert cfg.request_checksum_calculation == "when_required"  # type: ignore[attr-defined]
    assert cfg.response_checksum_validation == "when_supported"  # type: ignore[attr-defined]
