"""The responses of one run, and the bytes of their bodies.

`Wire` opens a unit's requests (path and selectors: `target`), tracks the
response each worker thread is reading so that `abort_all()` can close them
all at once (cancellation), hands a body on as it arrives (`chunks`, or
`body` with the chunked framing undone here by `dechunk`), and gives pooled
connections back when a body was read to its end."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from kstream.cluster.client import CHUNK, ApiTransport, read_chunks, reader, translate
from kstream.cluster.unit import Cancelled, StreamOptions, Unit

_NS_FIELD = re.compile(r"metadata\.namespace==?([a-z0-9]([-a-z0-9]*[a-z0-9])?)")


class Wire:
    """What the reader's jobs share to talk to the server: the client, the
    options, the run's cancel event and the responses being read."""

    def __init__(self, client: ApiTransport, opts: StreamOptions, cancel: threading.Event) -> None:
        self.client = client
        self.opts = opts
        self.cancel = cancel
        self._open: dict[int, Any] = {}
        self._lock = threading.Lock()

    # -- cancellation: close every open response so blocked reads return
    def abort_all(self) -> None:
        with self._lock:
            responses = list(self._open.values())
        for r in responses:
            try:
                r.shutdown() if hasattr(r, "shutdown") else r.close()
            except Exception:
                pass

    def track(self, resp: Any) -> None:
        with self._lock:
            self._open[threading.get_ident()] = resp

    def untrack(self, resp: Any) -> None:
        with self._lock:
            self._open.pop(threading.get_ident(), None)
        if _read_to_end(resp) and not self.cancel.is_set():
            # the connection goes back to the pool: the next LIST page costs
            # no new TLS handshake (one per page was 2-4 us per object)
            try:
                resp.release_conn()
            except Exception:
                pass
            return
        try:
            resp.close()
        except Exception:
            pass
        try:
            resp.release_conn()
        except Exception:
            pass

    def chunks(self, resp: Any, fill: int = 0) -> Iterator[bytes]:
        """The body's chunks as they arrive; `fill`: in chunks of that size."""
        size = fill or CHUNK
        return self.until_cancelled(read_chunks(resp, self.client.host, size, fill=bool(fill)))

    def body(self, resp: Any) -> Iterator[bytes]:
        """As chunks(), with the chunked framing undone here (`body`)."""
        return self.until_cancelled(body(resp, self.client.host))

    def until_cancelled(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if self.cancel.is_set():
                raise Cancelled()
            yield chunk

    def sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise Cancelled()

    def target(self, unit: Unit) -> tuple[str, list[tuple[str, str]]]:
        """The URL path and selector parameters for a unit. A field selector
        `metadata.namespace=X` on a namespaced resource becomes the namespaced
        path: kube-apiserver 1.36 pages such a cluster-wide LIST wrongly (a
        custom resource's pages after the first are lost, a built-in's come
        back again; reproduced with a plain HTTP client in
        tests/test_every_kind_cluster.py)."""
        ns = unit.namespace
        fs = self.opts.field_selector
        if ns is None and unit.resource.namespaced and fs:
            terms = [t.strip() for t in fs.split(",")]
            for t in terms:
                m = _NS_FIELD.fullmatch(t)
                if m:
                    ns = m.group(1)
                    terms.remove(t)
                    break
            fs = ",".join(terms)
        q = []
        if self.opts.label_selector:
            q.append(("labelSelector", self.opts.label_selector))
        if fs:
            q.append(("fieldSelector", fs))
        return unit.resource.path(ns), q


def _read_to_end(resp: Any) -> bool:
    """Whether the body of a response (httppool's or urllib3's) was read to its
    end: the http.client response under it closes itself then (never on a fake)."""
    fp = getattr(resp, "_fp", None)
    try:
        return fp is not None and bool(fp.isclosed())
    except Exception:
        return False


def body(resp: Any, host: str, size: int = CHUNK) -> Iterator[bytes]:
    """A response's body as it arrives, like kubeclient.read_chunks, but with
    HTTP/1.1 chunked framing undone here over whole socket reads (`dechunk`).

    http.client returns at most one chunk per read and spends a dozen Python
    calls on each; the server sends about one chunk per watch event, so that
    was most of the stream threads' CPU beyond the raw reader's. Anything but
    an unread, chunked, identity-encoded http.client response (a fake, a body
    with a length, a compressed one) is read by read_chunks as before."""
    import http.client

    hr = resp if isinstance(resp, http.client.HTTPResponse) else getattr(resp, "_fp", None)
    fp = getattr(hr, "fp", None)
    if (
        not isinstance(hr, http.client.HTTPResponse)
        or fp is None
        or not hr.chunked
        or hr.chunk_left is not None
        or resp.headers.get("Content-Encoding", "identity") not in ("", "identity")
    ):
        yield from read_chunks(resp, host, size)
        return
    try:
        yield from dechunk(reader(fp, size), size)
    except Exception as e:
        raise translate(e, host) from None


_MAXLINE = 65536  # http.client's limit on a chunk-size line


def dechunk(read: Callable[[int], bytes], size: int = CHUNK) -> Iterator[bytes]:
    """The data of an HTTP/1.1 chunked body (RFC 9112 7.1) read with `read(size)`
    (returning what is there, b"" at the end): one piece per read that carried
    data, as it arrives; ends after the last chunk (the trailer is not read).
    A body cut short, or a chunk size that is not one, raises
    http.client.IncompleteRead, a chunk-size line over 64 KiB LineTooLong, as
    http.client's own reading does."""
    from http.client import IncompleteRead, LineTooLong

    left = 0  # data bytes of the current chunk still to come
    skip = 0  # bytes of the CRLF after the current chunk's data still to come
    head = b""  # a chunk-size line read in part
    while True:
        data = read(size)
        if not data:
            raise IncompleteRead(b"")
        if head:
            data = head + data
            head = b""
        pieces: list[bytes] = []
        pos, end = 0, len(data)
        last = False
        while pos < end:
            if left:
                stop = pos + left
                if stop > end:
                    pieces.append(data[pos:] if pos else data)
                    left = stop - end
                    break
                pieces.append(data[pos:stop])
                pos, left, skip = stop, 0, 2
            if skip:
                step = min(skip, end - pos)
                pos += step
                skip -= step
                if pos == end:
                    break
            i = data.find(b"\n", pos) + 1
            if not i:
                if end - pos > _MAXLINE:
                    raise LineTooLong("chunk size")
                head = data[pos:]
                break
            if i - pos > _MAXLINE:
                raise LineTooLong("chunk size")
            try:
                left = int(data[pos:i], 16)
            except ValueError:  # a chunk extension (";name=value"), or not a size
                try:
                    left = int(data[pos:i].split(b";", 1)[0], 16)
                except ValueError:
                    raise IncompleteRead(b"") from None
            if left < 0:
                raise IncompleteRead(b"")
            pos = i
            if not left:
                last = True
                break
        if pieces:
            yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
        if last:
            return
