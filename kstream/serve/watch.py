"""kstream serve's watches: watch-list (every selected object as ADDED, the
`k8s.io/initial-events-end` bookmark), a watch from a resourceVersion (nothing ever
changes: only bookmarks), both until `timeoutSeconds` or the server stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from kstream.jsonlines import go_json
from kstream.serve.protocol import (
    END_ANNOTATION,
    WATCH_TIMEOUT,
    ApiStatus,
    Request,
    Response,
    Target,
    as_bytes,
    int_param,
)
from kstream.serve.reads import Reads


class Watches:
    """The watch requests of one server; `stopping` ends them all."""

    def __init__(self, reads: Reads, bookmark_interval: float, stopping: threading.Event) -> None:
        self.reads = reads
        self.bookmark_interval = bookmark_interval
        self.stopping = stopping

    def watch(self, req: Request, t: Target) -> Response:
        r = t.resource
        q = req.query
        send_initial = q.get("sendInitialEvents", "").lower() == "true"
        legacy_initial = "sendInitialEvents" not in q and q.get("resourceVersion", "") in ("", "0")
        bookmarks = q.get("allowWatchBookmarks", "").lower() == "true"
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise ApiStatus(
                422,
                "Invalid",
                "sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
            )
        timeout = int_param(q, "timeoutSeconds") or WATCH_TIMEOUT
        if t.name is not None:
            q = dict(q)
            extra = f"metadata.name={t.name}"
            q["fieldSelector"] = (
                f"{q['fieldSelector']},{extra}" if q.get("fieldSelector") else extra
            )
            req = Request(req.method, req.path, q, req.accept)
        idx, lo, hi, keep = self.reads.scan(req, t)
        rv = r.resource_version
        deadline = time.monotonic() + float(timeout)

        def bookmark(annotated: bool) -> bytes:
            md: dict[str, Any] = {"resourceVersion": rv, "creationTimestamp": None}
            if annotated:
                md["annotations"] = {END_ANNOTATION: "true"}
            obj = {"kind": r.kind, "apiVersion": r.api_version, "metadata": md}
            return go_json({"type": "BOOKMARK", "object": obj}) + b"\n"

        def events() -> Iterator[bytes]:
            if send_initial or legacy_initial:
                for i in range(lo, hi):
                    got = keep(idx.line(i))
                    if got is not None:
                        yield b'{"type":"ADDED","object":' + as_bytes(got) + b"}\n"
                if send_initial and bookmarks:
                    yield bookmark(True)
            while not self.stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if self.stopping.wait(min(self.bookmark_interval, left)):
                    return
                if bookmarks and time.monotonic() < deadline:
                    yield bookmark(False)

        return Response(200, chunks=events())
