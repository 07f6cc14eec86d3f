"""The benchmark's lower bound: read watch-list streams with a raw TLS socket.

    python tools/bench_reader.py [--fresh-buffers] [--list] SERVER CAFILE TOKEN PATH [PATH ...]

One thread per path (the streams run concurrently, as kstream's do), HTTP/1.0 so
the body has no chunk framing, bytes to /dev/null, stop at the end-of-initial-
events bookmark. No JSON parsing, no output format: the cost of moving the bytes.
--list: a plain LIST (one page, no limit) read to its end instead.
--fresh-buffers: read as this reader did before 2026-12-07, `recv(256 KiB)`, a
fresh bytes object per read (issue 26's "today's raw reader"), instead of
`recv_into` one reused buffer; everything else the same.
Deliberately imports nothing but the standard library's socket/ssl/threading.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading
from urllib.parse import urlparse

QUERY = (
    "watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
    "&resourceVersionMatch=NotOlderThan&timeoutSeconds=600"
)
MARKER = b'"k8s.io/initial-events-end":"true"'
USAGE = "usage: bench_reader.py [--fresh-buffers] [--list] SERVER CAFILE TOKEN PATH [PATH ...]"
FLAGS = ("--fresh-buffers", "--list")


def pump_reused(s: ssl.SSLSocket, sink: int, path: str, watch: bool) -> int:
    """Read the body into one buffer reused for every read; the bytes read."""
    # one buffer for every read: recv(256 KiB) allocated a fresh 256 KiB
    # object per socket read (one TLS record, ~4 KB), which glibc mapped,
    # shrank and unmapped each time; that churn was a quarter of the CPU
    buf = bytearray(256 * 1024)
    view = memoryview(buf)
    keep = len(MARKER) - 1
    n = 0
    while True:
        got = s.recv_into(view[keep:])
        if not got:
            if watch:
                raise SystemExit(f"{path}: stream ended before the end marker")
            break
        os.write(sink, view[keep : keep + got])
        n += got
        # the marker may straddle two reads: the last bytes of the previous
        # read stay just in front of the new ones
        if watch and buf.find(MARKER, 0, keep + got) >= 0:
            break
        buf[:keep] = buf[got : keep + got]
    return n


def pump_fresh(s: ssl.SSLSocket, sink: int, path: str, watch: bool) -> int:
    """Read the body as the reader did before 2026-12-07: a fresh 256 KiB bytes
    object per read (--fresh-buffers); the bytes read. As then, the end marker is
    looked for in this read and the last 64 bytes of the one before: found when
    it straddles reads of 64 bytes or more (TLS records are kilobytes)."""
    tail = b""
    n = 0
    while True:
        data = s.recv(256 * 1024)
        if not data:
            if watch:
                raise SystemExit(f"{path}: stream ended before the end marker")
            break
        os.write(sink, data)
        n += len(data)
        if watch and (MARKER in tail + data[:64] or MARKER in data):
            break
        tail = data[-64:]
    return n


def read(
    server: str,
    ctx: ssl.SSLContext,
    token: str,
    path: str,
    out: list[int],
    watch: bool = True,
    fresh: bool = False,
) -> None:
    u = urlparse(server)
    host, port = u.hostname or "127.0.0.1", u.port or 443
    with (
        socket.create_connection((host, port)) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as s,
    ):
        s.sendall(
            f"GET {path}{'?' + QUERY if watch else ''} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Accept: application/json\r\nAccept-Encoding: identity\r\n\r\n".encode()
        )
        sink = os.open(os.devnull, os.O_WRONLY)
        n = (pump_fresh if fresh else pump_reused)(s, sink, path, watch)
        os.close(sink)
        out.append(n)


def parse_args(argv: list[str]) -> tuple[bool, bool, str, str, str, list[str]]:
    """(watch, fresh, server, cafile, token, paths) from ARGV; SystemExit with the
    usage on anything else."""
    flags: set[str] = set()
    while argv[:1] and argv[0].startswith("--"):
        if argv[0] not in FLAGS or argv[0] in flags:
            raise SystemExit(f"bench_reader.py: unexpected {argv[0]}\n{USAGE}")
        flags.add(argv[0])
        argv = argv[1:]
    if len(argv) < 4:
        raise SystemExit(USAGE)
    server, cafile, token, *paths = argv
    return "--list" not in flags, "--fresh-buffers" in flags, server, cafile, token, paths


def main(argv: list[str]) -> None:
    watch, fresh, server, cafile, token, paths = parse_args(argv)
    ctx = ssl.create_default_context(cafile=cafile)
    sizes: list[int] = []
    threads = [
        threading.Thread(target=read, args=(server, ctx, token, p, sizes, watch, fresh))
        for p in paths
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(sizes) != len(paths):
        raise SystemExit("a stream failed")
    print(sum(sizes))


if __name__ == "__main__":
    main(sys.argv[1:])
