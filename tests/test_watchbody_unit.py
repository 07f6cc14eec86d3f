"""The watch-list read path in bulk: HTTP/1.1 chunked framing undone over whole
socket reads (`stream.dechunk`, against http.client's own decoding), the stream
cut into runs of whole lines (`jsonlines.iter_line_blocks`, against
`iter_lines`), runs of ADDED events written at once (the same objects and bytes
as one at a time), and the spool-to-output copy in the kernel."""

from __future__ import annotations

import bisect
import errno
import hashlib
import http.client
import io
import json
import os
import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from kstream.cluster.stream import Reader, StreamOptions, Unit, dechunk
from kstream.count import CountSink
from kstream.errors import TransportError
from kstream.jsonlines import iter_line_blocks, iter_lines
from kstream.resources import Resource
from kstream.store.writers import ArchiveWriter, DirectoryWriter, NdjsonWriter, Spool, copy_spool

CM = Resource("", "v1", "configmaps", "ConfigMap", True, frozenset({"list", "watch"}))
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"


# ------------------------------------------------------------------ a socket for http.client


class _Raw(io.RawIOBase):
    """Serves `data`, at most one piece of `cuts` per read (as a socket does)."""

    def __init__(self, data: bytes, cuts: Sequence[int]) -> None:
        self.data, self.pos, self.cuts = data, 0, list(cuts)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        i = bisect.bisect_right(self.cuts, self.pos)
        limit = min(self.cuts[i] if i < len(self.cuts) else len(self.data), len(self.data))
        n = min(len(b), limit - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


class _Sock:
    def __init__(self, data: bytes, cuts: Sequence[int]) -> None:
        self.raw = _Raw(data, cuts)

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self.raw)


def http_response(wire: bytes, cuts: Sequence[int] = ()) -> http.client.HTTPResponse:
    r = http.client.HTTPResponse(_Sock(wire, cuts))  # type: ignore[arg-type]
    r.begin()
    return r


def http_client_body(wire: bytes, cuts: Sequence[int] = ()) -> bytes:
    """What http.client itself makes of a chunked body (read1, as read_chunks does)."""
    r = http_response(wire, cuts)
    out = []
    while chunk := r.read1(1 << 18):
        out.append(chunk)
    return b"".join(out)


def reads_of(data: bytes, cuts: Sequence[int]) -> Callable[[int], bytes]:
    raw = _Raw(data, cuts)

    def read(n: int) -> bytes:
        buf = bytearray(n)
        k = raw.readinto(buf)
        return bytes(buf[:k])

    return read


def chunked(payload: bytes, rng: random.Random, ext: bool = True) -> bytes:
    out, pos = [], 0
    while pos < len(payload):
        n = min(len(payload) - pos, rng.choice([1, 2, 7, 100, 2048, 6000, 16384, 70000]))
        size = f"{n:x}" if rng.random() < 0.5 else f"{n:X}"
        if rng.random() < 0.2:
            size = "00" + size
        if ext and rng.random() < 0.2:
            size += ';name="v"'
        out.append(size.encode() + b"\r\n" + payload[pos : pos + n] + b"\r\n")
        pos += n
    return b"".join(out) + b"0\r\n\r\n"


def random_cuts(size: int, rng: random.Random) -> list[int]:
    cuts, pos = [], 0
    while pos < size:
        pos += rng.choice([1, 2, 3, 5, 64, 1000, 4096, 16384, 100000])
        cuts.append(pos)
    return cuts


# ------------------------------------------------------------------ dechunk


@pytest.mark.parametrize("seed", range(12))
def test_dechunk_gives_the_body_http_client_gives(seed: int) -> None:
    rng = random.Random(seed)
    payload = rng.randbytes(rng.choice([0, 1, 500, 60_000, 400_000]))
    body = chunked(payload, rng)
    cuts = random_cuts(len(body), rng)
    got = list(dechunk(reads_of(body, cuts), rng.choice([1, 3, 8192, 1 << 18])))
    assert b"".join(got) == payload
    assert all(got)  # no empty pieces
    # the same wire through http.client (the path read_chunks takes)
    assert http_client_body(HEAD + body, [len(HEAD) + c for c in cuts]) == payload


def test_dechunk_stops_at_the_last_chunk() -> None:
    calls: list[int] = []
    wire = [b"3\r\nabc\r\n0\r\n", b"Trailer: x\r\n\r\n", b"more"]

    def read(n: int) -> bytes:
        calls.append(n)
        return wire.pop(0)

    assert list(dechunk(read)) == [b"abc"]
    assert len(calls) == 1  # neither the trailer nor anything after it is read


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nabc",  # cut in a chunk's data
        b"3\r\nabc\r",  # cut in the CRLF after it
        b"3\r\nabc\r\n",  # cut before the next size
        b"3\r\nabc\r\n1",  # cut in a size line
        b"zz\r\nabc\r\n0\r\n\r\n",  # not a size
        b"\r\nabc\r\n0\r\n\r\n",  # an empty size
        b"3\r\nabc\r\n" + b"1" * 70_000 + b"\r\nx",  # a size line past 64 KiB
        b"3\r\nabc\r\n" + b" " * 70_000,  # a size line past 64 KiB, unterminated
    ],
)
def test_dechunk_fails_where_http_client_fails(body: bytes) -> None:
    with pytest.raises(http.client.HTTPException) as ours:
        b"".join(dechunk(reads_of(body, random_cuts(len(body), random.Random(1)))))
    with pytest.raises(http.client.HTTPException) as theirs:
        http_client_body(HEAD + body)
    assert type(ours.value) is type(theirs.value)


# ------------------------------------------------------------------ runs of whole lines


@pytest.mark.parametrize("seed", range(8))
def test_line_blocks_hold_the_lines_iter_lines_gives(seed: int) -> None:
    rng = random.Random(seed)
    lines = [
        rng.randbytes(rng.choice([0, 1, 50, 6000, 70_000, 1_200_000])).replace(b"\n", b".")
        for _ in range(rng.randint(0, 40))
    ]
    data = b"".join(x + b"\n" for x in lines) + rng.choice([b"", b'{"cut', b"x" * 100_000])
    cuts = random_cuts(len(data), rng)
    chunks = [data[a:b] for a, b in zip([0, *cuts], cuts, strict=False) if data[a:b]]
    blocks = list(iter_line_blocks(chunks))
    assert all(b.endswith(b"\n") for b in blocks)
    assert [x for b in blocks for x in b.split(b"\n")[:-1]] == list(iter_lines(chunks)) == lines


# ------------------------------------------------------------------ the watch-list loop


def event(t: str, name: str, v: int = 1, spaced: bool = False) -> bytes:
    o = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "n"},
        "v": v,
    }
    sep = (", ", ": ") if spaced else (",", ":")
    return json.dumps({"type": t, "object": o}, separators=sep).encode() + b"\n"


def obj(name: str, v: int = 1) -> bytes:
    o = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "n"},
        "v": v,
    }
    return json.dumps(o, separators=(",", ":")).encode()


def bookmark(end: bool) -> bytes:
    ann = {"k8s.io/initial-events-end": "true"} if end else {}
    o = {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "42", "annotations": ann},
    }
    return json.dumps({"type": "BOOKMARK", "object": o}, separators=(",", ":")).encode() + b"\n"


# ADDED events (a big one among them), one the server spaced (re-encoded), blank
# lines, a bookmark that is not the end, changes before the marker (old servers:
# folded), the marker, and an event after it (not read)
STREAM = (
    b"".join(event("ADDED", f"a{i}", i) for i in range(30))
    + event("ADDED", "big", 7).replace(b'"v":7', b'"v":"' + b"x" * 300_000 + b'"')
    + event("ADDED", "spaced", 2, spaced=True)
    + b"\n  \n"
    + bookmark(False)
    + b"".join(event("ADDED", f"b{i}") for i in range(5))
    + event("MODIFIED", "a3", 99)
    + event("DELETED", "a4")
    + event("ADDED", "late")
    + bookmark(True)
    + event("ADDED", "after-the-marker")
)
BIG = obj("big", 7).replace(b'"v":7', b'"v":"' + b"x" * 300_000 + b'"')
WRITTEN = (
    [obj(f"a{i}", i) for i in range(30)]
    + [BIG, obj("spaced", 2)]
    + [obj(f"b{i}") for i in range(5)]
)  # written as they come, before the first change
FOLDED = [o for o in WRITTEN if b'"a4"' not in o]
FOLDED[3] = obj("a3", 99)
FOLDED.append(obj("late"))


class ChunkedTransport:
    """Answers every request with STREAM as a chunked HTTP/1.1 response, the
    socket handing out `cuts`-sized reads."""

    host = "https://fake"
    context = "fake"

    def __init__(self, body: bytes, rng: random.Random) -> None:
        self.wire = HEAD + chunked(body, rng, ext=False)
        self.cuts = [len(HEAD) + c for c in random_cuts(len(self.wire), rng)]

    def open(self, path: str, query: Any = (), **kw: Any) -> http.client.HTTPResponse:
        return http_response(self.wire, self.cuts)

    def get_json(self, path: str, **kw: Any) -> Any:
        raise AssertionError("not asked")

    def server_version(self) -> str:
        return "v1.36.3"


class Lines:
    """A sink with write() only: blocks reach it one object at a time."""

    def __init__(self) -> None:
        self.objs: list[bytes] = []

    def write(self, obj: bytes) -> None:
        self.objs.append(obj)

    def reset(self) -> None:
        self.objs.clear()

    def fold(self, overrides: dict[tuple[str, str], bytes | None]) -> None:
        out = []
        for o in self.objs:
            k = ("n", json.loads(o)["metadata"]["name"])
            if k in overrides:
                v = overrides.pop(k)
                if v is not None:
                    out.append(v)
            else:
                out.append(o)
        self.objs = out + [v for v in overrides.values() if v is not None]


@pytest.mark.parametrize("seed", range(10))
def test_watch_list_in_blocks_writes_what_it_wrote_line_by_line(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    reader = Reader(ChunkedTransport(STREAM, rng), StreamOptions(), threading.Event())
    lines = Lines()
    unit = Unit(CM)
    assert reader._watch_list(unit, lines) == "42"
    assert lines.objs == FOLDED
    assert unit.objects == len(WRITTEN)
    assert unit.bytes == sum(len(o) for o in WRITTEN)
    # a spool takes whole blocks (write_block): the same bytes, count and checksum
    spool = Spool(tmp_path / "s", None, None)
    unit = Unit(CM)
    reader._watch_list(unit, spool)
    spool.finish()
    data = b"".join(o + b"\n" for o in FOLDED)
    assert spool.path.read_bytes() == data
    assert spool.objects == len(FOLDED)
    assert spool.sha.hexdigest() == hashlib.sha256(data).hexdigest()
    assert unit.objects == len(WRITTEN)


def test_watch_list_blocks_of_added_events_only(tmp_path: Path) -> None:
    body = b"".join(event("ADDED", f"o{i}", i) for i in range(2000)) + bookmark(True)
    objs = [obj(f"o{i}", i) for i in range(2000)]
    for seed in range(3):
        reader = Reader(
            ChunkedTransport(body, random.Random(seed)), StreamOptions(), threading.Event()
        )
        spool, count, unit = Spool(tmp_path / "s", None, None), CountSink(("cm",)), Unit(CM)  # type: ignore[arg-type]
        reader._watch_list(unit, spool)
        reader._watch_list(Unit(CM), count)
        spool.finish()
        assert spool.path.read_bytes() == b"".join(o + b"\n" for o in objs)
        assert (unit.objects, unit.bytes) == (2000, sum(map(len, objs)))
        assert (count.objects, count.bytes) == (2000, sum(map(len, objs)))
        spool.close()


@pytest.mark.parametrize("cut", [len(HEAD) + 100, -3, -20])
def test_watch_list_cut_short_is_a_broken_connection(cut: int) -> None:
    """A body cut mid-chunk: the same error as through http.client."""
    rng = random.Random(5)
    t = ChunkedTransport(STREAM, rng)
    t.wire = t.wire[: STREAM.index(b"late") + len(HEAD)][:cut] if cut < 0 else t.wire[:cut]
    reader = Reader(t, StreamOptions(), threading.Event())
    with pytest.raises(TransportError, match=r"connection to https://fake broke: IncompleteRead"):
        reader._watch_list(Unit(CM), Lines())


# ------------------------------------------------------------------ spools and the copy


def _spool_of(tmp_path: Path, data: bytes) -> Spool:
    sp = Spool(tmp_path / "spool", None, None)
    for line in data.splitlines():
        sp.write(line)
    sp.finish()
    return sp


def test_copy_spool_to_a_file_keeps_its_position(tmp_path: Path) -> None:
    data = b"".join(b'{"i":%d,"pad":"%s"}\n' % (i, b"p" * i) for i in range(3000))
    with open(tmp_path / "out", "wb") as out:
        out.write(b"head\n")  # buffered, not yet written
        copy_spool(_spool_of(tmp_path, data), out)
        assert out.tell() == 5 + len(data)
        out.write(b"tail\n")
    assert (tmp_path / "out").read_bytes() == b"head\n" + data + b"tail\n"


def test_copy_spool_where_sendfile_refuses(tmp_path: Path) -> None:
    """An output opened for appending (`>>`): sendfile(2) refuses it, the bytes
    are copied as before."""
    data = b"".join(b'{"i":%d}\n' % i for i in range(5000))
    (tmp_path / "out").write_bytes(b"before\n")
    with open(tmp_path / "out", "ab") as out:
        copy_spool(_spool_of(tmp_path, data), out)
    assert (tmp_path / "out").read_bytes() == b"before\n" + data


def test_copy_spool_to_a_pipe(tmp_path: Path) -> None:
    data = b"".join(b'{"i":%d}\n' % i for i in range(100_000))
    r, w = os.pipe()
    got: list[bytes] = []
    t = threading.Thread(target=lambda: got.append(os.fdopen(r, "rb").read()))
    t.start()
    with os.fdopen(w, "wb") as out:
        copy_spool(_spool_of(tmp_path, data), out)
    t.join()
    assert got == [data]


def test_only_outputs_with_a_manifest_keep_checksums(tmp_path: Path) -> None:
    """sha256 of each unit where the manifest records it (archive, directory);
    an NDJSON output has no manifest, so its spools skip the hashing."""
    line = b'{"a":1}'
    writers = [
        NdjsonWriter(str(tmp_path / "o.ndjson"), False),
        ArchiveWriter(str(tmp_path / "o.zst"), False),
        DirectoryWriter(str(tmp_path / "dir"), False),
    ]
    digests = []
    for w in writers:
        sp = w.new_spool("u", None)
        sp.write(line)
        sp.write_block(memoryview(line + b"\n" + line), 2)
        digests.append(sp.sha.hexdigest())
        assert sp.objects == 3
        sp.close()
        w.abort()
    want = hashlib.sha256((line + b"\n") * 3).hexdigest()
    assert digests == ["", want, want]


def test_ndjson_output_synced_behind_reports_a_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each appended unit is fdatasync'ed on a thread meanwhile; an error that
    sync meets (the kernel reports it once) fails the dump as the final fsync
    would have, and nothing is renamed into place."""
    from kstream.errors import OutputError
    from kstream.store.format import Entry

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", broken)
    w = NdjsonWriter(str(tmp_path / "o.ndjson"), False)
    sp = w.new_spool("u", None)
    sp.write(b'{"a":1}')
    w.append(
        Entry(
            group="",
            version="v1",
            resource="configmaps",
            kind="ConfigMap",
            namespaced=True,
            namespace=None,
            status="complete",
        ),
        sp,
    )
    with pytest.raises(OutputError, match="Input/output error"):
        w.finish({}, interrupted=False)
    assert not (tmp_path / "o.ndjson").exists()
    w.abort()


# ------------------------------------------------------------------ following the next unit


def _entry() -> Any:
    from kstream.store.format import Entry

    return Entry(
        group="",
        version="v1",
        resource="configmaps",
        kind="ConfigMap",
        namespaced=True,
        namespace=None,
        status="complete",
    )


def _lines(tag: str, n: int, pad: int = 3000) -> list[bytes]:
    return [
        b'{"metadata":{"namespace":"ns","name":"%s%d"},"p":"%s"}' % (tag.encode(), i, b"x" * pad)
        for i in range(n)
    ]


def test_follow_copies_ahead_and_the_output_is_the_same(tmp_path: Path) -> None:
    """The next unit's spool copied while it is written (NdjsonWriter.follow),
    through a reset (a cut stream read again) and a fold (changes before the
    marker): the output holds exactly what appending the spools would write."""
    w = NdjsonWriter(str(tmp_path / "o.ndjson"), False)
    first = w.new_spool("a", None)
    for line in _lines("a", 50):
        first.write(line)
    w.follow(first)  # what was flushed so far goes ahead
    for line in _lines("a2", 300):
        first.write(line)
    w.follow(first)
    w.append(_entry(), first)

    second = w.new_spool("b", None)
    for line in _lines("stale", 400):
        second.write(line)
    w.follow(second)
    second.reset()  # the stream was cut: those bytes are not the unit's
    w.follow(second)
    for line in _lines("b", 600):  # more than the stale bytes
        second.write(line)
    w.follow(second)
    w.append(_entry(), second)

    third = w.new_spool("c", None)
    for line in _lines("c", 300):
        third.write(line)
    w.follow(third)
    changed = b'{"metadata":{"namespace":"ns","name":"c0"},"p":"changed"}'
    third.fold({("ns", "c0"): changed})  # rewritten into another file, c0 shorter
    for line in _lines("c2", 400):
        third.write(line)
    w.follow(third)
    w.append(_entry(), third)
    w.finish({}, interrupted=False)
    want = _lines("a", 50) + _lines("a2", 300) + _lines("b", 600)
    want += [changed, *_lines("c", 300)[1:], *_lines("c2", 400)]
    assert (tmp_path / "o.ndjson").read_bytes() == b"".join(x + b"\n" for x in want)


def test_follow_then_interrupted_keeps_only_the_units_appended(tmp_path: Path) -> None:
    w = NdjsonWriter(str(tmp_path / "o.ndjson"), False)
    first = w.new_spool("a", None)
    for line in _lines("a", 20):
        first.write(line)
    w.append(_entry(), first)
    second = w.new_spool("b", None)
    for line in _lines("b", 500):
        second.write(line)
    w.follow(second)
    assert (tmp_path / "o.ndjson").exists() is False  # still under its temporary name
    dest = w.finish({}, interrupted=True)
    assert Path(dest).read_bytes() == b"".join(x + b"\n" for x in _lines("a", 20))
    second.close()


def test_follow_does_nothing_for_stdout(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    w = NdjsonWriter("-", False)
    sp = w.new_spool("a", None)
    for line in _lines("a", 100):
        sp.write(line)
    w.follow(sp)
    assert capfdbinary.readouterr().out == b""
    w.append(_entry(), sp)
    w.finish({}, interrupted=False)
    assert capfdbinary.readouterr().out == b"".join(x + b"\n" for x in _lines("a", 100))


def test_the_first_unit_becomes_the_output_without_a_copy(tmp_path: Path) -> None:
    """Nothing written before it: the first unit's spool is renamed into the
    output's place (same file), the units after it are appended to it."""
    w = NdjsonWriter(str(tmp_path / "o.ndjson"), False)
    first = w.new_spool("a", None)
    for line in _lines("a", 30):
        first.write(line)
    w.follow(first)  # nothing to copy ahead: it will be renamed
    inode = os.stat(first.path).st_ino
    w.append(_entry(), first)
    assert w.tmp is not None and os.stat(w.tmp).st_ino == inode
    second = w.new_spool("b", None)
    for line in _lines("b", 30):
        second.write(line)
    w.append(_entry(), second)
    w.finish({}, interrupted=False)
    want = _lines("a", 30) + _lines("b", 30)
    assert (tmp_path / "o.ndjson").read_bytes() == b"".join(x + b"\n" for x in want)
    assert list(tmp_path.iterdir()) == [tmp_path / "o.ndjson"]
