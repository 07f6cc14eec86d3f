"""The shapes kstream serve answers in, shared by its handlers: `Request`,
`Response`, `ApiStatus` (a Status answer: 404, 405, 400, 410 ...), what a resource
path names (`Target`), and the small readers of a request (Accept header, query
parameters)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kstream.dataclass import dataclass
from kstream.jsonlines import go_json
from kstream.serve.catalog import Served

END_ANNOTATION = "k8s.io/initial-events-end"
DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
READ_VERBS = ["get", "list", "watch"]
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
MAX_BODY = (
    16 * 1024 * 1024
)  # a request body this big is read (and refused); bigger: connection closed
WATCH_TIMEOUT = 1800.0  # a watch without timeoutSeconds ends after this (the server: 30-60 min)


class ApiStatus(Exception):
    """An answer with a Status object (404, 405, 400, 410...)."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            out["details"] = self.details
        out["code"] = self.code
        return out


def not_found(
    message: str = "the server could not find the requested resource", **details: Any
) -> ApiStatus:
    return ApiStatus(404, "NotFound", message, details or {})


def bad_request(message: str) -> ApiStatus:
    return ApiStatus(400, "BadRequest", message)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    accept: str = ""
    body: bytes = b""


@dataclass
class Response:
    """A whole body (`body`) or a stream of chunks (`chunks`)."""

    code: int = 200
    content_type: str = "application/json"
    body: bytes = b""
    chunks: Iterator[bytes] | None = None


@dataclass
class Target:
    """What a resource path names."""

    resource: Served
    namespace: str | None  # None: all namespaces (or a cluster-scoped resource)
    name: str | None
    subresource: str | None = None


def json_response(doc: Any, content_type: str = "application/json") -> Response:
    return Response(200, content_type, go_json(doc))


def qualified(r: Served) -> str:
    return f"{r.resource}.{r.group}" if r.group else r.resource


def details(r: Served, name: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name}
    if r.group:
        d["group"] = r.group
    d["kind"] = r.resource
    return d


def as_bytes(x: Any) -> bytes:
    return x if isinstance(x, bytes) else go_json(x)


def int_param(q: dict[str, str], name: str) -> int:
    v = q.get(name, "")
    if not v:
        return 0
    try:
        n = int(v)
    except ValueError:
        raise bad_request(f"{name}: invalid value {v!r}: not an integer") from None
    return max(0, n)


def is_watch(q: dict[str, str]) -> bool:
    return q.get("watch", "").lower() in ("1", "true")


def _media_types(accept: str) -> list[dict[str, str]]:
    out = []
    for part in accept.split(","):
        bits = [b.strip() for b in part.split(";")]
        d = {"type": bits[0].lower()}
        for b in bits[1:]:
            if "=" in b:
                k, v = b.split("=", 1)
                d[k.strip().lower()] = v.strip()
        out.append(d)
    return out


def _accepts(accept: str, as_: str, g: str, v: str) -> bool:
    """Whether the Accept header names the kind `as_` of group `g`, version `v`."""
    return any(
        m.get("as") == as_ and m.get("g") == g and m.get("v") == v for m in _media_types(accept)
    )


def wants_v2(accept: str) -> bool:
    return _accepts(accept, "APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2")


def wants_table(accept: str) -> bool:
    return _accepts(accept, "Table", "meta.k8s.io", "v1")
