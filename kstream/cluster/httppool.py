"""Connections to one API server on the standard library's http.client.

The common case (a server URL, TLS settings from kstream.cluster.auth, no proxy)
needs one origin, GET requests with streamed bodies and a few idle keep-alive
connections between them: `Pool` is that, and nothing more. urllib3 is still
what the `kubernetes` package's loader hands over and what a `proxy-url` goes
through (`client.build_pool`); its import alone (url regexes, logging,
importlib.metadata through urllib3.http2) was a fifth of the CPU of a small dump
(issue 26).

What urllib3 did here, kept: the TLS context (CA file or data, else the
system's; client certificate; `tls-server-name` for SNI and the hostname check;
no verification when asked), a connect timeout for the TCP connection and the
TLS handshake and a read timeout for every later socket read, idle connections
reused when the previous body was read to its end and closed when the server
dropped them meanwhile, at most `maxsize` kept. No retries: the caller's
policy decides. Errors are left as the standard library raises them, but for
the connect phase, whose failures are raised as `ConnectFailed` (with the
OSError as `reason`) so that kstream.cluster.client.translate can tell
"cannot connect" from "the connection broke".
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import ssl


class ConnectFailed(OSError):
    """The TCP connection (or its TLS handshake, for timeouts) could not be made."""

    def __init__(self, reason: OSError) -> None:
        super().__init__(str(reason))
        self.reason = reason


class Headers(Mapping[str, str]):
    """A response's header fields, names case-insensitive (http.client's message)."""

    def __init__(self, msg: http.client.HTTPMessage) -> None:
        self._msg = msg

    def __getitem__(self, name: str) -> str:
        value = self._msg.get(name)
        if value is None:
            raise KeyError(name)
        return str(value)

    def __iter__(self) -> Iterator[str]:
        return iter(self._msg.keys())

    def __len__(self) -> int:
        return len(self._msg)


def _ascii(name: str) -> str | bytes:
    """An ASCII host name as bytes: socket and ssl put a str through the idna
    codec (importing encodings.idna and stringprep, ~1 ms of every start)."""
    return name.encode("ascii") if name.isascii() else name


def _create_connection(
    address: tuple[str, int], timeout: float | None, source_address: object = None
) -> socket.socket:
    host, port = address
    return socket.create_connection((_ascii(host), port), timeout, source_address)  # type: ignore[arg-type]


class _Connection(http.client.HTTPSConnection):
    """HTTPS with the TLS server name given apart from the host (tls-server-name),
    and the read timeout set once the handshake is done."""

    def __init__(
        self,
        host: str,
        port: int | None,
        context: ssl.SSLContext,
        server_name: str,
        connect_timeout: float,
    ) -> None:
        super().__init__(host, port, timeout=connect_timeout, context=context)
        self._create_connection = _create_connection
        self.server_name = server_name
        self.read_timeout: float | None = None

    def connect(self) -> None:
        import ssl

        try:
            http.client.HTTPConnection.connect(self)  # TCP
            self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
                self.sock, server_hostname=_ascii(self.server_name)
            )
        except ssl.SSLError:
            self.close()
            raise
        except OSError as e:
            self.close()
            raise ConnectFailed(e) from e
        self.sock.settimeout(self.read_timeout)


class _PlainConnection(http.client.HTTPConnection):
    """http:// servers (a local proxy such as `kubectl proxy`)."""

    def __init__(self, host: str, port: int | None, connect_timeout: float) -> None:
        super().__init__(host, port, timeout=connect_timeout)
        self._create_connection = _create_connection
        self.read_timeout: float | None = None

    def connect(self) -> None:
        try:
            super().connect()
        except OSError as e:
            self.close()
            raise ConnectFailed(e) from e
        self.sock.settimeout(self.read_timeout)


Conn = _Connection | _PlainConnection


class _Decoder:
    """A gzip (every member, as urllib3 reads it) or deflate (zlib or raw) body
    decoded as it arrives: kstream asks for `identity`, a server may still send
    either. Bytes after the last gzip member that are not one are ignored."""

    def __init__(self, encoding: str) -> None:
        self.gzip = encoding in ("gzip", "x-gzip")
        self._first = True
        self._done = False
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS if self.gzip else zlib.MAX_WBITS)

    def decode(self, data: bytes) -> bytes:
        out = bytearray()
        while data and not self._done:
            try:
                out += self._obj.decompress(data)
            except zlib.error:
                if self.gzip and not self._first:
                    self._done = True  # trailing garbage after a whole member
                    break
                if not self.gzip and self._first:  # deflate without the zlib wrapper
                    self._first = False
                    self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise
            self._first = False
            data = self._obj.unused_data
            if data and self.gzip:  # the next member
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                break
        return bytes(out)


class Response:
    """A streamed response: `status`, `headers`, `read`/`read1`, and the
    http.client response as `_fp` (what the readers read from directly, as they
    did under urllib3's, when the body is not content-encoded).
    `release_conn()` gives the connection back to the pool when the body was read
    to its end, closes it otherwise."""

    def __init__(self, pool: Pool, conn: Conn, hr: http.client.HTTPResponse) -> None:
        self._pool = pool
        self._conn: Conn | None = conn
        self._fp = hr
        self.status = hr.status
        self.headers = Headers(hr.msg)
        encoding = (hr.getheader("Content-Encoding") or "").strip().lower()
        self._decoder = _Decoder(encoding) if encoding in ("gzip", "x-gzip", "deflate") else None

    def read(self, amt: int | None = None) -> bytes:
        if self._decoder is None:
            return self._fp.read(amt)
        if amt is None:
            return self._decoder.decode(self._fp.read())
        out = b""
        while len(out) < amt:
            raw = self._fp.read(amt)
            if not raw:
                break
            out += self._decoder.decode(raw)
        return out

    def read1(self, amt: int = -1) -> bytes:
        if self._decoder is None:
            return self._fp.read1(amt)
        while True:  # never b"" before the end: a piece may decode to nothing yet
            raw = self._fp.read1(amt)
            if not raw:
                return b""
            out = self._decoder.decode(raw)
            if out:
                return out

    def drain_conn(self) -> None:
        """Read what is left of a small body (an error's), so the connection may be reused."""
        try:
            while self._fp.read(64 * 1024):
                pass
        except (OSError, http.client.HTTPException):
            self.close()

    def shutdown(self) -> None:
        """Make a read blocked in another thread return (cancellation)."""
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self._fp.close()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def release_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        fp = self._fp
        # read to its end: http.client closes a chunked body at its last chunk,
        # but a body of known length read with read1 only counts down to 0
        complete = fp.isclosed() or fp.length == 0
        fp.close()
        if complete and not fp.will_close:
            self._pool.put(conn)
        else:
            conn.close()


class Pool:
    """GET requests to one server (`url`: scheme, host, port and a path prefix),
    over at most `maxsize` idle keep-alive connections kept between requests.
    `context`: the TLS context, or what makes it on the first connection (CA
    files are read then, as urllib3 did; an error is raised by that request)."""

    def __init__(
        self,
        url: str,
        context: ssl.SSLContext | Callable[[], ssl.SSLContext] | None,
        server_name: str | None = None,
        maxsize: int = 8,
    ) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self._make_context = context if callable(context) else None
        self.context = None if callable(context) else context
        self.server_name = server_name or self.host
        self.maxsize = maxsize
        self._idle: list[Conn] = []
        self._lock = threading.Lock()

    def _connection(self, connect_timeout: float) -> Conn:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not _dropped(conn):
                    conn.timeout = connect_timeout
                    return conn
                conn.close()
        if self.https:
            if self.context is None:
                assert self._make_context is not None
                self.context = self._make_context()
            return _Connection(
                self.host, self.port, self.context, self.server_name, connect_timeout
            )
        return _PlainConnection(self.host, self.port, connect_timeout)

    def put(self, conn: Conn) -> None:
        with self._lock:
            if len(self._idle) < self.maxsize:
                self._idle.append(conn)
                return
        conn.close()

    def get(
        self,
        target: str,
        headers: Sequence[tuple[str, str]],
        connect_timeout: float,
        read_timeout: float | None,
    ) -> Response:
        """GET `target` (path and query, below the prefix); the body is left unread."""
        conn = self._connection(connect_timeout)
        conn.read_timeout = read_timeout
        try:
            if conn.sock is not None:
                conn.sock.settimeout(read_timeout)
            conn.putrequest("GET", self.prefix + target, skip_accept_encoding=True)
            for name, value in headers:
                conn.putheader(name, value)
            conn.endheaders()
            hr = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return Response(self, conn, hr)

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _dropped(conn: Conn) -> bool:
    """Whether an idle connection was closed by the server meanwhile (readable:
    at its end, or with bytes nobody asked for)."""
    sock = conn.sock
    if sock is None:
        return False  # closed by http.client itself: it connects again
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
