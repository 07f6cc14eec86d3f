"""kstream serve's reads: what a resource path names (`target`), GET of one
object, LIST (label and field selectors as the real server supports them,
limit/continue pages, streamed whole lists, the Table format of `kubectl get`),
and the scan of an index that the watch shares."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

from kstream import deepjson
from kstream.errors import KstreamError
from kstream.jsonlines import go_json
from kstream.selector import FieldRequirement, LabelSelector, SelectorError, parse_fields
from kstream.serve.catalog import Catalog, ObjectIndex, Served, Store, _meta
from kstream.serve.discovery import Discovery
from kstream.serve.protocol import (
    ApiStatus,
    Request,
    Response,
    Target,
    as_bytes,
    bad_request,
    details,
    int_param,
    json_response,
    not_found,
    qualified,
    wants_table,
)


class Reads:
    """GET and LIST of the snapshot's objects."""

    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        discovery: Discovery,
        empty: dict[tuple[str, str, str], Served],
        clock: Callable[[], float],
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.discovery = discovery
        self.empty = empty  # answered (empty) though not in discovery
        self.clock = clock

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
                f'{qualified(t.resource)} "{t.name}" not found',
                details(t.resource, t.name),
            )
        if wants_table(req.accept):
            from kstream.serve.table import table

            obj = deepjson.loads(line)
            r = t.resource
            cols = self.discovery.printer_columns(r)
            doc = table(r.kind, r.group, [obj], self.clock(), req.query, cols)
            doc["metadata"] = {"resourceVersion": t.resource.resource_version}
            return json_response(doc)
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

    def scan(
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
        limit = int_param(req.query, "limit")
        start = None
        token = req.query.get("continue", "")
        if token:
            start = _decode_continue(token)
        table = wants_table(req.accept)
        idx, lo, hi, keep = self.scan(req, t, start, parsed=table)
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
            doc = make_table(
                r.kind, r.group, items, now, req.query, self.discovery.printer_columns(r)
            )
            doc["metadata"] = _list_meta(rv, cont, remaining)
            return json_response(doc)
        if limit:
            items, cont, remaining = page()
            return Response(
                200, body=_list_doc(r, rv, [as_bytes(x) for x in items], cont, remaining)
            )

        def stream() -> Iterator[bytes]:
            head = _list_head(r, rv, "", None)
            yield head
            first = True
            for i in range(lo, hi):
                got = keep(idx.line(i))
                if got is None:
                    continue
                yield (b"" if first else b",") + as_bytes(got)
                first = False
            yield b"]}"

        return Response(200, chunks=stream())


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
