"""Archive units past MT_AFTER bytes are compressed by zstd's worker threads;
the archive stays what it was: one zstd frame per unit, checksummed, between
kstream's skippable frames, readable by zstdcat."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
import zstandard

from kstream.store import writers as archive
from kstream.store.format import MAGIC_FOOTER, MAGIC_HEADER, MAGIC_MANIFEST, ZSTD_MAGIC, Entry
from kstream.store.writers import ArchiveWriter


def frames(data: bytes) -> list[tuple[str, bytes]]:
    """The file's frames in order: ("skippable", payload) or ("zstd", frame bytes)."""
    out: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(data):
        (magic,) = struct.unpack_from("<I", data, pos)
        if magic in (MAGIC_HEADER, MAGIC_MANIFEST, MAGIC_FOOTER):
            (n,) = struct.unpack_from("<I", data, pos + 4)
            out.append(("skippable", data[pos + 8 : pos + 8 + n]))
            pos += 8 + n
        else:
            assert magic == ZSTD_MAGIC, f"not a frame at {pos}"
            # the decompressor reads exactly one frame; what it leaves is the rest
            dobj = zstandard.ZstdDecompressor().decompressobj()
            dobj.decompress(data[pos:])
            size = len(data) - pos - len(dobj.unused_data)
            out.append(("zstd", data[pos : pos + size]))
            pos += size
    return out


def obj(i: int, size: int) -> bytes:
    return json.dumps(
        {"metadata": {"name": f"o{i}", "namespace": "ns"}, "data": {"v": f"{i:08d}" * (size // 8)}},
        separators=(",", ":"),
    ).encode()


def entry(name: str) -> Entry:
    return Entry("", "v1", name, name.title(), True, None, "complete")


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """MT_AFTER lowered to 4 KiB; records the thread count of each
    multithreaded compressor made."""
    monkeypatch.setattr(archive, "MT_AFTER", 4096)
    monkeypatch.setattr(archive, "MT_THREADS", 2)
    made: list[int] = []
    real = zstandard.ZstdCompressionParameters.from_level

    def from_level(level: int, **kw: Any) -> Any:
        made.append(kw.get("threads", 0))
        return real(level, **kw)

    monkeypatch.setattr(zstandard.ZstdCompressionParameters, "from_level", from_level)
    return made


def test_small_and_big_units_are_one_frame_each(tmp_path: Path, spy: list[int]) -> None:
    path = tmp_path / "snap.ndjson.zst"
    w = ArchiveWriter(str(path), False, 3, {"tool": "test"})
    want: list[bytes] = []
    units = {"small": [obj(i, 100) for i in range(3)], "big": [obj(i, 500) for i in range(60)]}
    units["empty"] = []
    units["exact"] = [obj(0, 4000)]  # about MT_AFTER: whichever side, one frame
    for name, objs in units.items():
        sp = w.new_spool(name, None)
        for o in objs:
            sp.write(o)
        w.append(entry(name), sp)
        want.append(b"".join(o + b"\n" for o in objs))
    w.finish({}, False)
    assert spy == [2]  # only the big unit went multithreaded
    data = path.read_bytes()
    fr = frames(data)
    kinds = [k for k, _ in fr]
    assert kinds == ["skippable"] + ["zstd"] * len(units) + ["skippable", "skippable"]
    manifest = json.loads(fr[-2][1])
    for (_, frame), e, text in zip(fr[1:-2], manifest["resources"], want, strict=True):
        assert frame == data[e["offset"] : e["offset"] + e["length"]]
        params = zstandard.get_frame_parameters(frame)
        assert params.has_checksum
        assert zstandard.ZstdDecompressor().decompress(frame, max_output_size=1 << 24) == text
    if shutil.which("zstdcat"):
        out = subprocess.run(["zstdcat", str(path)], capture_output=True, check=True).stdout
        assert out == b"".join(want)


def test_reset_and_fold_across_the_threshold(tmp_path: Path, spy: list[int]) -> None:
    path = tmp_path / "snap.ndjson.zst"
    w = ArchiveWriter(str(path), False, 1)
    sp = w.new_spool("pods", None)
    for i in range(40):  # past MT_AFTER: multithreaded
        sp.write(obj(i, 300))
    sp.reset()  # the resource is read again
    assert spy == [2]
    objs = [obj(i, 300) for i in range(30)]
    for o in objs:
        sp.write(o)
    changed = obj(5, 10)
    sp.fold({("ns", "o5"): changed, ("ns", "o7"): None, ("ns", "new"): obj(99, 10)})
    w.append(entry("pods"), sp)
    w.finish({}, False)
    fr = frames(path.read_bytes())
    assert [k for k, _ in fr] == ["skippable", "zstd", "skippable", "skippable"]
    text = zstandard.ZstdDecompressor().decompress(fr[1][1], max_output_size=1 << 24)
    want = [changed if i == 5 else o for i, o in enumerate(objs) if i != 7] + [obj(99, 10)]
    assert text == b"".join(o + b"\n" for o in want)
    assert spy == [2, 2, 2]  # before the reset, after it, and the folded rewrite
