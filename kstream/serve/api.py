"""A snapshot served as a read-only Kubernetes API (`kstream serve`).

`Catalog` is what the snapshot holds: one `Served` resource per (group,
resource), from the manifest's units, or, for formats without a manifest, from
each object's apiVersion and kind in one streaming pass that spools every
resource to its own temporary file. `Store` turns a resource into an
`ObjectIndex` when it is first asked for: its objects, decompressed into an
unlinked temporary file, and their offsets sorted by (namespace, name), the
order of the real server; only the offsets stay in memory, and only for the
few resources recently asked for (an LRU cache).

`Api` answers requests as the API server shapes them: /version, /api, /apis
(legacy and aggregated discovery v2), GET of one object, LIST (label selectors,
field selectors, limit/continue, Table), watch and watch-list (initial events,
the `k8s.io/initial-events-end` bookmark, then periodic bookmarks). Anything
else than reading gets 405 with a Status saying this is a read-only snapshot.

`serve()` runs it on HTTPS (`http.server` and `ssl`, on 127.0.0.1); `make_tls()`
makes the throwaway CA and server certificate with the `openssl` command.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kstream import deepjson
from kstream.errors import KstreamError, SnapshotError
from kstream.jsonlines import go_json
from kstream.resources import SHORT_NAMES
from kstream.selector import FieldRequirement, LabelSelector, SelectorError, parse_fields
from kstream.serve.catalog import Catalog, ObjectIndex, Served, Store, _meta

END_ANNOTATION = "k8s.io/initial-events-end"
DISCOVERY_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
READ_VERBS = ["get", "list", "watch"]
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
MAX_BODY = (
    16 * 1024 * 1024
)  # a request body this big is read (and refused); bigger: connection closed
WATCH_TIMEOUT = 1800.0  # a watch without timeoutSeconds ends after this (the server: 30-60 min)
CATEGORIES_ALL = {
    ("", "pods"),
    ("", "services"),
    ("", "replicationcontrollers"),
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
    ("autoscaling", "horizontalpodautoscalers"),
}


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


VERB_OF_METHOD = {
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


class Api:
    """The API server's answers for one catalog (no HTTP here: `handle(Request)`)."""

    def __init__(
        self,
        catalog: Catalog,
        name: str,
        server_address: str = "127.0.0.1:0",
        bookmark_interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.catalog = catalog
        self.name = name
        self.store = Store(catalog)
        self.server_address = server_address
        self.bookmark_interval = bookmark_interval
        self.clock = clock
        self.stopping = threading.Event()
        self.crds: dict[tuple[str, str], dict[str, Any]] = {}
        self.crd_lock = threading.Lock()
        # Answered (empty) though not in discovery: `kubectl describe` lists the
        # events of what it describes, and dumps leave events out by default.
        self.empty: dict[tuple[str, str, str], Served] = {}
        held = {(r.group, r.resource) for r in catalog.resources}
        for group, version, kind in (("", "v1", "Event"), ("events.k8s.io", "v1", "Event")):
            if (group, "events") not in held:
                self.empty[(group, version, "events")] = Served(
                    group, version, "events", kind, True, resource_version=catalog.resource_version
                )

    # ------------------------------------------------------------------ entry

    def handle(self, req: Request) -> Response:
        try:
            if req.method not in ("GET", "HEAD"):
                return self._write(req)
            return self._get(req)
        except ApiStatus as s:
            return self.status(s)
        except SnapshotError as e:
            return self.status(ApiStatus(500, "InternalError", f"kstream serve: {e.message}"))

    def status(self, s: ApiStatus) -> Response:
        return Response(s.code, body=go_json(s.body()))

    def _write(self, req: Request) -> Response:
        verb = VERB_OF_METHOD.get(req.method, req.method.lower())
        if req.method == "POST" and req.path == SSAR_PATH:
            return self.access_review(req.body)
        raise ApiStatus(
            405,
            "MethodNotAllowed",
            f"this server is a read-only snapshot ({self.name}, served by kstream): "
            f"{verb} is not allowed",
        )

    def access_review(self, body: bytes) -> Response:
        """A SelfSubjectAccessReview (`kubectl auth can-i`, k9s before it shows
        a view): reading is allowed, nothing else. Nothing is stored."""
        try:
            if body.startswith(PROTOBUF_MAGIC):  # kubectl sends built-in types as protobuf
                review = {"spec": {"resourceAttributes": _review_attrs_pb(body)}}
            else:
                review = json.loads(body)
            attrs = review["spec"].get("resourceAttributes") or {}
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            raise bad_request("the request body is not a SelfSubjectAccessReview") from None
        allowed = str(attrs.get("verb", "")) in READ_VERBS
        reason = "" if allowed else f"this server is a read-only snapshot ({self.name})"
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        doc = {
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None},
            "spec": review.get("spec") or {},
            "status": status,
        }
        return Response(201, body=go_json(doc))

    def _get(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        if parts == ["version"]:
            return self.json(self.version())
        if parts == ["openapi", "v3"]:  # no group versions: kubectl turns to v2
            return self.json({"paths": {}})
        if parts == ["openapi", "v2"]:
            # an empty openapi_v2.Document (zero bytes of protobuf): kubectl's
            # client-side validation finds no schema, and the write reaches the 405
            return Response(200, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        if parts in (["healthz"], ["livez"], ["readyz"]):
            return Response(200, "text/plain; charset=utf-8", b"ok")
        if parts and parts[0] == "api":
            if len(parts) == 1:
                if _wants_v2(req.accept):
                    return self.json(self.discovery_v2(core=True), DISCOVERY_V2)
                return self.json(
                    {
                        "kind": "APIVersions",
                        "versions": self.catalog.groups.get("", ["v1"]) or ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}
                        ],
                    }
                )
            return self.resource_request(req, "", parts[1], parts[2:])
        if parts and parts[0] == "apis":
            if len(parts) == 1:
                if _wants_v2(req.accept):
                    return self.json(self.discovery_v2(core=False), DISCOVERY_V2)
                return self.json(
                    {
                        "kind": "APIGroupList",
                        "apiVersion": "v1",
                        "groups": [self.api_group(g) for g in self.catalog.groups if g],
                    }
                )
            group = parts[1]
            known = group in self.catalog.groups
            if not group or not (known or any(k[0] == group for k in self.empty)):
                raise not_found()
            if len(parts) == 2:
                if not known:
                    raise not_found()
                return self.json({"kind": "APIGroup", "apiVersion": "v1", **self.api_group(group)})
            return self.resource_request(req, group, parts[2], parts[3:])
        raise not_found()

    def json(self, doc: Any, content_type: str = "application/json") -> Response:
        return Response(200, content_type, go_json(doc))

    # ------------------------------------------------------------------ discovery

    def version(self) -> dict[str, Any]:
        git = self.catalog.server_version or "v0.0.0-unknown"
        core = git.lstrip("v").split("-")[0].split("+")[0].split(".")
        major = core[0] if core else ""
        minor = core[1] if len(core) > 1 else ""
        return {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "gitVersion": git,
            "gitCommit": "",
            "gitTreeState": "",
            "buildDate": "",
            "goVersion": "",
            "compiler": "",
            "platform": "",
        }

    def crd(self, r: Served) -> dict[str, Any]:
        """The snapshot's CustomResourceDefinition of a resource ({} if none)."""
        key = (r.group, r.resource)
        with self.crd_lock:
            if key in self.crds:
                return self.crds[key]
        found: dict[str, Any] = {}
        defs = self.catalog.by_gvr.get(("apiextensions.k8s.io", "v1", "customresourcedefinitions"))
        if defs is not None and "." in r.group:
            line = self.store.index(defs).find("", f"{r.resource}.{r.group}")
            doc = deepjson.loads(line) if line is not None else None
            found = doc if isinstance(doc, dict) else {}
        with self.crd_lock:
            self.crds[key] = found
        return found

    def names_of(self, r: Served) -> tuple[list[str], list[str]]:
        """Short names and categories: kubectl's for built-ins, the CRD's for
        custom resources."""
        short = list(SHORT_NAMES.get((r.group, r.resource), ()))
        categories = ["all"] if (r.group, r.resource) in CATEGORIES_ALL else []
        names = (self.crd(r).get("spec") or {}).get("names") or {}
        if isinstance(names, dict):
            short = short or [str(x) for x in names.get("shortNames") or []]
            categories = categories or [str(x) for x in names.get("categories") or []]
        return short, categories

    def printer_columns(self, r: Served) -> list[Any] | None:
        for v in (self.crd(r).get("spec") or {}).get("versions") or []:
            if isinstance(v, dict) and v.get("name") == r.version:
                return v.get("additionalPrinterColumns") or None
        return None

    def api_group(self, group: str) -> dict[str, Any]:
        versions = [
            {"groupVersion": f"{group}/{v}", "version": v} for v in self.catalog.groups[group]
        ]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def discovery_v2(self, core: bool) -> dict[str, Any]:
        items = []
        for group, versions in self.catalog.groups.items():
            if (group == "") != core:
                continue
            vs = []
            for v in versions:
                rs = [r for r in self.catalog.resources if r.group == group and r.version == v]
                vs.append(
                    {
                        "version": v,
                        "resources": [_v2_resource(r, *self.names_of(r)) for r in rs],
                        "freshness": "Current",
                    }
                )
            items.append({"metadata": {"name": group} if group else {}, "versions": vs})
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }

    def resource_list(self, group: str, version: str) -> dict[str, Any]:
        rs = [r for r in self.catalog.resources if r.group == group and r.version == version]
        if not rs:
            raise not_found()
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [_legacy_resource(r, *self.names_of(r)) for r in rs],
        }

    # ------------------------------------------------------------------ resources

    def resource_request(self, req: Request, group: str, version: str, rest: list[str]) -> Response:
        if version not in self.catalog.groups.get(group, []) and not (
            rest and any(k[:2] == (group, version) for k in self.empty)
        ):
            raise not_found()
        if not rest:
            return self.json(self.resource_list(group, version))
        target = self.target(group, version, rest)
        if target.subresource not in (None, "status"):
            raise not_found()
        if _is_watch(req.query):
            return self.watch(req, target)
        if target.name is not None:
            return self.get(req, target)
        return self.list(req, target)

    def target(self, group: str, version: str, rest: list[str]) -> Target:
        def res(name: str) -> Served:
            r = self.catalog.by_gvr.get((group, version, name))
            if r is None:
                r = self.empty.get((group, version, name))
            if r is None:
                raise not_found()
            return r

        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
            r = res(rest[0])
            if not r.namespaced:
                raise not_found()
        else:
            r = res(rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            raise not_found()
        if r.namespaced and name is not None and namespace is None:
            raise not_found()  # /api/v1/configmaps/NAME: no such path
        return Target(r, namespace, name, sub)

    def get(self, req: Request, t: Target) -> Response:
        assert t.name is not None
        idx = self.store.index(t.resource)
        line = idx.find(t.namespace or "", t.name)
        if line is None:
            raise ApiStatus(
                404,
                "NotFound",
                f'{_qualified(t.resource)} "{t.name}" not found',
                _details(t.resource, t.name),
            )
        if _wants_table(req.accept):
            from kstream.serve.table import table

            obj = deepjson.loads(line)
            r = t.resource
            cols = self.printer_columns(r)
            doc = table(r.kind, r.group, [obj], self.clock(), req.query, cols)
            doc["metadata"] = {"resourceVersion": t.resource.resource_version}
            return self.json(doc)
        return Response(200, body=line)

    def _filters(
        self, req: Request, t: Target
    ) -> tuple[LabelSelector, list[tuple[tuple[list[str], str], FieldRequirement]]]:
        try:
            labels = LabelSelector(req.query.get("labelSelector", ""), "labelSelector")
        except KstreamError as e:
            raise bad_request(e.message.replace("labelSelector: ", "")) from None
        try:
            terms = parse_fields(req.query.get("fieldSelector", ""))
        except SelectorError as e:
            raise bad_request(str(e)) from None
        fields = []
        for term in terms:
            if not _field_supported(t.resource, term.field):
                raise bad_request(f"field label not supported: {term.field}")
            fields.append((_field_path(t.resource, term.field), term))
        return labels, fields

    def _scan(
        self, req: Request, t: Target, start: int | None = None, parsed: bool = False
    ) -> tuple[ObjectIndex, int, int, Callable[[bytes], Any]]:
        """The index, the range of positions to read, and a filter that answers
        None for an object left out, else the object: parsed (`parsed`, for a
        Table), or its line as in the snapshot."""
        labels, fields = self._filters(req, t)
        idx = self.store.index(t.resource)
        lo, hi = idx.namespace_range(t.namespace if t.resource.namespaced else None)
        if start is not None:
            lo = max(lo, start)
        need_parse = bool(labels) or bool(fields) or parsed

        def keep(line: bytes) -> Any:
            if not need_parse:
                return line
            obj = deepjson.loads(line)
            if labels and not labels.matches(_meta(obj).get("labels")):
                return None
            for path, term in fields:
                if not term.matches(_field_value(obj, path)):
                    return None
            return obj if parsed else line

        return idx, lo, hi, keep

    def list(self, req: Request, t: Target) -> Response:
        r = t.resource
        limit = _int_param(req.query, "limit")
        start = None
        token = req.query.get("continue", "")
        if token:
            start = _decode_continue(token)
        table = _wants_table(req.accept)
        idx, lo, hi, keep = self._scan(req, t, start, parsed=table)
        selected = bool(req.query.get("labelSelector") or req.query.get("fieldSelector"))
        rv = r.resource_version
        now = self.clock()

        def page() -> tuple[list[Any], str, int | None]:
            items: list[Any] = []
            i = lo
            while i < hi and (not limit or len(items) < limit):
                got = keep(idx.line(i))
                i += 1
                if got is not None:
                    items.append(got)
            cont = _encode_continue(i, rv) if limit and i < hi else ""
            remaining = hi - i if cont and not selected else None
            return items, cont, remaining

        if table:
            from kstream.serve.table import table as make_table

            items, cont, remaining = page()
            doc = make_table(r.kind, r.group, items, now, req.query, self.printer_columns(r))
            doc["metadata"] = _list_meta(rv, cont, remaining)
            return self.json(doc)
        if limit:
            items, cont, remaining = page()
            return Response(200, body=_list_doc(r, rv, [_bytes(x) for x in items], cont, remaining))

        def stream() -> Iterator[bytes]:
            head = _list_head(r, rv, "", None)
            yield head
            first = True
            for i in range(lo, hi):
                got = keep(idx.line(i))
                if got is None:
                    continue
                yield (b"" if first else b",") + _bytes(got)
                first = False
            yield b"]}"

        return Response(200, chunks=stream())

    # ------------------------------------------------------------------ watch

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
        timeout = _int_param(q, "timeoutSeconds") or WATCH_TIMEOUT
        if t.name is not None:
            q = dict(q)
            extra = f"metadata.name={t.name}"
            q["fieldSelector"] = (
                f"{q['fieldSelector']},{extra}" if q.get("fieldSelector") else extra
            )
            req = Request(req.method, req.path, q, req.accept)
        idx, lo, hi, keep = self._scan(req, t)
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
                        yield b'{"type":"ADDED","object":' + _bytes(got) + b"}\n"
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


# --------------------------------------------------------------------------- helpers

PROTOBUF_MAGIC = b"k8s\x00"  # runtime.Unknown envelope of the protobuf encoding


def _pb_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of one protobuf message: varints as int,
    length-delimited fields as bytes; fixed-width fields skipped."""
    i = 0

    def varint() -> int:
        nonlocal i
        shift = n = 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return n

    while i < len(buf):
        key = varint()
        wire = key & 7
        if wire == 0:
            yield key >> 3, varint()
        elif wire == 2:
            n = varint()
            yield key >> 3, buf[i : i + n]
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError("unsupported protobuf wire type")


def _pb_message(buf: bytes, field_no: int) -> bytes:
    for f, v in _pb_fields(buf):
        if f == field_no and isinstance(v, bytes):
            return v
    return b""


RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
                       6: "subresource", 7: "name"}  # fmt: skip


def _review_attrs_pb(body: bytes) -> dict[str, str]:
    """spec.resourceAttributes of a protobuf SelfSubjectAccessReview
    (runtime.Unknown.raw -> SelfSubjectAccessReview.spec -> .resourceAttributes)."""
    raw = _pb_message(body[len(PROTOBUF_MAGIC) :], 2)
    attrs = _pb_message(_pb_message(raw, 2), 1)
    return {
        RESOURCE_ATTRIBUTES[f]: v.decode()
        for f, v in _pb_fields(attrs)
        if f in RESOURCE_ATTRIBUTES and isinstance(v, bytes)
    }


def _qualified(r: Served) -> str:
    return f"{r.resource}.{r.group}" if r.group else r.resource


def _details(r: Served, name: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name}
    if r.group:
        d["group"] = r.group
    d["kind"] = r.resource
    return d


def _bytes(x: Any) -> bytes:
    return x if isinstance(x, bytes) else go_json(x)


def _list_meta(rv: str, cont: str, remaining: int | None) -> dict[str, Any]:
    """A list's (or a Table's) metadata."""
    md: dict[str, Any] = {"resourceVersion": rv}
    if cont:
        md["continue"] = cont
        if remaining is not None:
            md["remainingItemCount"] = remaining
    return md


def _list_head(r: Served, rv: str, cont: str, remaining: int | None) -> bytes:
    md = _list_meta(rv, cont, remaining)
    head = {"kind": f"{r.kind}List", "apiVersion": r.api_version, "metadata": md}
    return go_json(head)[:-1] + b',"items":['


def _list_doc(r: Served, rv: str, items: list[bytes], cont: str, remaining: int | None) -> bytes:
    return _list_head(r, rv, cont, remaining) + b",".join(items) + b"]}"


def _encode_continue(i: int, rv: str) -> str:
    raw = json.dumps({"v": "kstream.serve.api/1", "rv": rv, "i": i}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_continue(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        i = d["i"]
        if d.get("v") != "kstream.serve.api/1" or not isinstance(i, int) or i < 0:
            raise ValueError
        return i
    except (ValueError, KeyError, TypeError):
        raise bad_request("continue key is not valid: malformed token") from None


def _int_param(q: dict[str, str], name: str) -> int:
    v = q.get(name, "")
    if not v:
        return 0
    try:
        n = int(v)
    except ValueError:
        raise bad_request(f"{name}: invalid value {v!r}: not an integer") from None
    return max(0, n)


def _is_watch(q: dict[str, str]) -> bool:
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


def _wants_v2(accept: str) -> bool:
    return _accepts(accept, "APIGroupDiscoveryList", "apidiscovery.k8s.io", "v2")


def _wants_table(accept: str) -> bool:
    return _accepts(accept, "Table", "meta.k8s.io", "v1")


def _v2_resource(r: Served, short: list[str], categories: list[str]) -> dict[str, Any]:
    d: dict[str, Any] = {
        "resource": r.resource,
        "responseKind": {"group": "", "version": "", "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.kind.lower(),
        "verbs": READ_VERBS,
    }
    if short:
        d["shortNames"] = short
    if categories:
        d["categories"] = categories
    return d


def _legacy_resource(r: Served, short: list[str], categories: list[str]) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": r.resource,
        "singularName": r.kind.lower(),
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": READ_VERBS,
    }
    if short:
        d["shortNames"] = short
    if categories:
        d["categories"] = categories
    return d


# The field selectors the real server supports beyond metadata.name/namespace
# (each resource's GetAttrs / field label conversion), by (group, resource).
FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "pods"): (
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    ("", "events"): (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    ("", "secrets"): ("type",),
    ("", "services"): ("spec.type", "spec.clusterIP"),
    ("events.k8s.io", "events"): (
        "reason",
        "type",
        "reportingController",
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
    ),
    ("", "nodes"): ("spec.unschedulable",),
    ("", "namespaces"): ("status.phase",),
    ("", "replicationcontrollers"): ("status.replicas",),
    ("batch", "jobs"): ("status.successful",),
    ("certificates.k8s.io", "certificatesigningrequests"): ("spec.signerName",),
}


def _field_supported(r: Served, name: str) -> bool:
    return name in ("metadata.name", "metadata.namespace") or name in FIELDS.get(
        (r.group, r.resource), ()
    )


# Where a field label is not the object's JSON path, and what the server's field
# set holds when the field is absent from the JSON (Go's zero value, formatted:
# strconv.FormatBool, strconv.Itoa), by (group, resource, label).
FIELD_JSON: dict[tuple[str, str, str], tuple[str, str]] = {
    ("", "pods", "spec.hostNetwork"): ("spec.hostNetwork", "false"),
    ("", "nodes", "spec.unschedulable"): ("spec.unschedulable", "false"),
    ("", "replicationcontrollers", "status.replicas"): ("status.replicas", "0"),
    ("", "events", "source"): ("source.component", ""),
    ("batch", "jobs", "status.successful"): ("status.succeeded", "0"),
}


def _field_path(r: Served, name: str) -> tuple[list[str], str]:
    """The JSON path of a field label and its value when absent."""
    path, default = FIELD_JSON.get((r.group, r.resource, name), (name, ""))
    return path.split("."), default


def _field_value(obj: Any, where: tuple[list[str], str]) -> str:
    path, default = where
    cur = obj
    for p in path:
        cur = cur.get(p) if isinstance(cur, dict) else None
    if cur is None:
        return default
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


# --------------------------------------------------------------------------- TLS and kubeconfig
