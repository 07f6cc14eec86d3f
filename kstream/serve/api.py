"""A snapshot served as a read-only Kubernetes API (`kstream serve`): `Api`
routes each request to the handler that answers it, as the API server shapes
its answers.

- `kstream/serve/discovery.py`: /version, /api, /apis (legacy and aggregated
  discovery v2), each group version's resources;
- `kstream/serve/reads.py`: GET of one object, LIST (label selectors, field
  selectors, limit/continue, Table);
- `kstream/serve/watch.py`: watch and watch-list (initial events, the
  `k8s.io/initial-events-end` bookmark, then periodic bookmarks);
- `kstream/serve/review.py`: SelfSubjectAccessReview.

Anything else than reading gets 405 with a Status saying this is a read-only
snapshot. What is served comes from `kstream/serve/catalog.py` (`Catalog`,
`Store`); the HTTPS side is `kstream/serve/server.py`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kstream.errors import SnapshotError
from kstream.jsonlines import go_json
from kstream.resources import ALIASES
from kstream.serve.catalog import Catalog, Served, Store
from kstream.serve.discovery import Discovery
from kstream.serve.protocol import (
    DISCOVERY_V2,
    MAX_BODY,
    SSAR_PATH,
    ApiStatus,
    Request,
    Response,
    is_watch,
    json_response,
    not_found,
    wants_v2,
)
from kstream.serve.reads import Reads
from kstream.serve.review import PROTOBUF_MAGIC, access_review, review_attrs_pb
from kstream.serve.watch import Watches

# the names its users and tests take from here
__all__ = [
    "DISCOVERY_V2",
    "MAX_BODY",
    "PROTOBUF_MAGIC",
    "SSAR_PATH",
    "Api",
    "ApiStatus",
    "Request",
    "Response",
    "_review_attrs_pb",
]
_review_attrs_pb = review_attrs_pb

VERB_OF_METHOD = {
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


class Api:
    """The API server's answers for one catalog (no HTTP here: `handle(Request)`):
    routing, and the handlers that answer (`Discovery`, `Reads`, `Watches`,
    `access_review`)."""

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
        self.stopping = threading.Event()
        # Answered (empty) though not in discovery: `kubectl describe` lists the
        # events of what it describes, and dumps leave events out by default.
        self.empty: dict[tuple[str, str, str], Served] = {}
        held = {(r.group, r.resource) for r in catalog.resources}
        for group, version, kind in (("", "v1", "Event"), ("events.k8s.io", "v1", "Event")):
            if (group, "events") not in held:
                self.empty[(group, version, "events")] = Served(
                    group, version, "events", kind, True, resource_version=catalog.resource_version
                )
        self.discovery = Discovery(catalog, self.store, self._known_not_dumped())
        self.reads = Reads(catalog, self.store, self.discovery, self.empty, clock)
        self.watches = Watches(self.reads, bookmark_interval, self.stopping)

    def _known_not_dumped(self) -> list[Served]:
        """The empty resources discovery lists, as the real server would: those
        the snapshot's dump found but left out by default (its manifest's
        `excludedByDefault`: core events unless -r named them, and with them
        events.k8s.io events, the same objects under another group), so `kubectl get events` prints "No resources found" and exits 0.
        A snapshot without a manifest does not say what its source knew: none."""
        m = self.catalog.snap.manifest
        known = set(m.excluded_by_default) if m is not None else set()
        # a resource served under two groups is recorded once (its first group's):
        # events.k8s.io events are core events, known with them
        for (group, resource), (first_group, first) in ALIASES.items():
            if (f"{first}.{first_group}" if first_group else first) in known:
                known.add(f"{resource}.{group}" if group else resource)
        return [
            r
            for (group, _version, resource), r in self.empty.items()
            if (f"{resource}.{group}" if group else resource) in known
        ]

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
            return access_review(req.body, self.name)
        raise ApiStatus(
            405,
            "MethodNotAllowed",
            f"this server is a read-only snapshot ({self.name}, served by kstream): "
            f"{verb} is not allowed",
        )

    def _get(self, req: Request) -> Response:
        parts = [p for p in req.path.split("/") if p]
        if parts == ["version"]:
            return self.json(self.discovery.version())
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
                if wants_v2(req.accept):
                    return self.json(self.discovery.discovery_v2(core=True), DISCOVERY_V2)
                return self.json(
                    {
                        "kind": "APIVersions",
                        "versions": self.discovery.groups.get("", ["v1"]) or ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server_address}
                        ],
                    }
                )
            return self.resource_request(req, "", parts[1], parts[2:])
        if parts and parts[0] == "apis":
            if len(parts) == 1:
                if wants_v2(req.accept):
                    return self.json(self.discovery.discovery_v2(core=False), DISCOVERY_V2)
                return self.json(
                    {
                        "kind": "APIGroupList",
                        "apiVersion": "v1",
                        "groups": [self.discovery.api_group(g) for g in self.discovery.groups if g],
                    }
                )
            group = parts[1]
            known = group in self.discovery.groups
            if not group or not (known or any(k[0] == group for k in self.empty)):
                raise not_found()
            if len(parts) == 2:
                if not known:
                    raise not_found()
                return self.json(
                    {"kind": "APIGroup", "apiVersion": "v1", **self.discovery.api_group(group)}
                )
            return self.resource_request(req, group, parts[2], parts[3:])
        raise not_found()

    def json(self, doc: Any, content_type: str = "application/json") -> Response:
        return json_response(doc, content_type)

    def resource_request(self, req: Request, group: str, version: str, rest: list[str]) -> Response:
        if version not in self.discovery.groups.get(group, []) and not (
            rest and any(k[:2] == (group, version) for k in self.empty)
        ):
            raise not_found()
        if not rest:
            return self.json(self.discovery.resource_list(group, version))
        target = self.reads.target(group, version, rest)
        if target.subresource not in (None, "status"):
            raise not_found()
        if is_watch(req.query):
            return self.watches.watch(req, target)
        if target.name is not None:
            return self.reads.get(req, target)
        return self.reads.list(req, target)
