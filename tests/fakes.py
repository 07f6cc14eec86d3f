"""One fake of kstream.cluster.client.ApiTransport for unit tests (no server, no
subprocess), modelled on httpx's MockTransport: canned answers, recorded requests.

An answer is bytes (the body), a FakeResponse (returned as it is), an exception
(raised by open, like Client does for a non-2xx status) or anything else (sent
as JSON). Answers come either in order
(a list: one per request), per path (a dict: the same answer each time), or from
a function of (path, accept) like httpx's MockTransport handler."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kstream.cluster.client import ApiTransport


class FakeResponse:
    """A streamed body, read at most `chunk` bytes at a time."""

    def __init__(self, body: bytes, chunk: int = 1000) -> None:
        self.buf = io.BytesIO(body)
        self.chunk = chunk
        self.headers: dict[str, str] = {}
        self.closed = False

    def read1(self, n: int = -1, /) -> bytes:
        return self.buf.read(min(n if n >= 0 else self.chunk, self.chunk))

    def close(self) -> None:
        self.closed = True

    def release_conn(self) -> None:
        pass


class FakeSink:
    """A kstream.cluster.stream.Sink that keeps the objects written (fold: not expected)."""

    def __init__(self) -> None:
        self.objects: list[bytes] = []

    def write(self, obj: bytes) -> None:
        self.objects.append(obj)

    def reset(self) -> None:
        self.objects.clear()

    def fold(self, overrides: dict[tuple[str, str], bytes | None]) -> None:
        raise AssertionError("not expected")


class FakeTransport:
    host = "https://fake"
    context = "fake"

    def __init__(
        self,
        answers: Sequence[Any] | Mapping[str, Any] | Callable[[str, str], Any],
        check: Callable[[str, dict[str, str]], None] | None = None,
    ) -> None:
        self.handler = answers if callable(answers) else None
        self.in_order = list(answers) if isinstance(answers, Sequence) else None
        self.by_path = dict(answers) if isinstance(answers, Mapping) else None
        self.check = check
        self.requests: list[dict[str, str]] = []  # the query of each request
        self.paths: list[str] = []

    def open(
        self,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        accept: str = "application/json",
        read_timeout: float | None = None,
        what: str = "",
    ) -> FakeResponse:
        q = dict(query)
        self.requests.append(q)
        self.paths.append(path)
        if self.check is not None:
            self.check(path, q)
        if self.handler is not None:
            a = self.handler(path, accept)
        elif self.in_order is not None:
            a = self.in_order.pop(0)
        else:
            assert self.by_path is not None
            a = self.by_path[path]
        if isinstance(a, BaseException):
            raise a
        if isinstance(a, FakeResponse):
            return a
        return FakeResponse(a if isinstance(a, bytes) else json.dumps(a).encode())

    def get_json(
        self,
        path: str,
        accept: str = "application/json",
        what: str = "",
        query: Sequence[tuple[str, str]] = (),
    ) -> Any:
        resp = self.open(path, query, accept=accept, what=what)
        return json.loads(resp.buf.read())

    def server_version(self) -> str:
        return str(self.get_json("/version").get("gitVersion", "unknown"))


def _conforms(t: FakeTransport) -> ApiTransport:
    return t  # mypy: the fake keeps up with the protocol


class Streams:
    """stdout and stderr as a pipe gives them (UTF-8, strict), for running the
    CLI in-process with `kstream.cli.app.run`: `Streams()(*argv)` -> (code, out, err)."""

    def __init__(self) -> None:
        self.out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
        self.err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        from kstream.cli.app import run

        code = run(list(argv), stdout=self.out, stderr=self.err)
        return code, self._text(self.out), self._text(self.err)

    @staticmethod
    def _text(s: io.TextIOWrapper) -> str:
        s.flush()
        buf = s.buffer
        assert isinstance(buf, io.BytesIO)
        return buf.getvalue().decode("utf-8")  # strict: no surrogate got through
