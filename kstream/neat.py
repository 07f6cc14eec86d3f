"""What `kstream export` removes from an object and which objects it leaves out
(docs/export.md lists the same rules, with the reasons).

`clean(doc)` removes, in place, what the server or a controller wrote and what would
tie the object to the old cluster: `status`, the bookkeeping of `metadata`, the
last-applied annotation, and fields the server fills in (`SERVER_FILLED`).
`left_out(doc, resource)` says why an object must not be applied back (None: it may).
`ordered(doc)` puts the keys in export's stable order.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kstream.transform import LAST_APPLIED

METADATA_DROPPED = (
    "managedFields",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    # the owners' uids are the old cluster's: the garbage collector of the new one
    # would delete the object as orphaned (controller-owned objects are left out)
    "ownerReferences",
)
ANNOTATIONS_DROPPED = (
    LAST_APPLIED,
    "deployment.kubernetes.io/revision",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
    "endpoints.kubernetes.io/last-change-trigger-time",
)

# why an object is left out (the summary's words), in the summary's order
CONTROLLER_OWNED = "controller-owned (ownerReferences controller=true)"
TOKEN_SECRET = "ServiceAccount token Secrets"
ROOT_CA = "kube-root-ca.crt ConfigMaps"
ENDPOINTS = "Endpoints/EndpointSlices managed by the control plane"
EVENTS = "Events"
RUNTIME = "runtime state (Leases, Nodes, CSINodes, VolumeAttachments)"
CONTROL_PLANE = "made by the control plane (every field manager a control-plane component)"
REASONS = (CONTROLLER_OWNED, TOKEN_SECRET, ROOT_CA, ENDPOINTS, EVENTS, RUNTIME, CONTROL_PLANE)

# field managers of objects the control plane makes for itself (bootstrap RBAC,
# the default namespaces, the `kubernetes` Service, API Priority and Fairness
# defaults, the apiserver's own Leases and ConfigMaps); a new cluster makes its own
CONTROL_PLANE_MANAGERS = frozenset(
    {
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        # the controller-manager's aggregation controller fills in the rules of
        # the bootstrap admin, edit and view ClusterRoles
        "clusterrole-aggregation-controller",
        "api-priority-and-fairness-config-producer-v1",
        "api-priority-and-fairness-config-consumer-v1",
    }
)
RUNTIME_KINDS = frozenset(
    {
        ("coordination.k8s.io", "Lease"),
        ("", "Node"),
        ("storage.k8s.io", "CSINode"),
        ("storage.k8s.io", "VolumeAttachment"),
    }
)
EVENT_KINDS = frozenset({("", "Event"), ("events.k8s.io", "Event")})
ENDPOINT_MANAGERS = ("endpointslice-controller.k8s.io", "endpointslicemirroring-controller.k8s.io")


def _meta(doc: dict[str, Any]) -> dict[str, Any]:
    md = doc.get("metadata")
    return md if isinstance(md, dict) else {}


def _map(d: Any, key: str) -> dict[str, Any]:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else {}


def left_out(doc: dict[str, Any], group: str) -> str | None:
    """Why `doc` (of API group `group`) must not be applied back, or None."""
    kind = str(doc.get("kind") or "")
    md = _meta(doc)
    if (group, kind) in EVENT_KINDS:
        return EVENTS
    owners = md.get("ownerReferences")
    if isinstance(owners, list) and any(
        isinstance(o, dict) and o.get("controller") is True for o in owners
    ):
        return CONTROLLER_OWNED
    if (
        group == ""
        and kind == "Secret"
        and doc.get("type") == "kubernetes.io/service-account-token"
    ):
        return TOKEN_SECRET
    if group == "" and kind == "ConfigMap" and md.get("name") == "kube-root-ca.crt":
        return ROOT_CA
    if (group, kind) in RUNTIME_KINDS:
        return RUNTIME
    labels = _map(md, "labels")
    if (
        group == ""
        and kind == "Endpoints"
        and (
            "endpoints.kubernetes.io/managed-by" in labels
            or "endpoints.kubernetes.io/last-change-trigger-time" in _map(md, "annotations")
            or (md.get("namespace"), md.get("name")) == ("default", "kubernetes")
        )
    ):
        return ENDPOINTS
    if (group, kind) == ("discovery.k8s.io", "EndpointSlice") and (
        labels.get("endpointslice.kubernetes.io/managed-by") in ENDPOINT_MANAGERS
        or (md.get("namespace"), labels.get("kubernetes.io/service-name"))
        == ("default", "kubernetes")
    ):
        return ENDPOINTS
    if made_by_control_plane(md):
        return CONTROL_PLANE
    return None


def made_by_control_plane(md: dict[str, Any]) -> bool:
    """Whether every field manager (status writers aside) of the object is a
    control-plane component; False when the snapshot has no managedFields
    (`dump --clean`), as nothing then tells."""
    fields = md.get("managedFields")
    if not isinstance(fields, list) or not fields:
        return False
    managers = {
        str(f.get("manager") or "")
        for f in fields
        if isinstance(f, dict) and f.get("subresource") != "status"
    }
    return bool(managers) and managers <= CONTROL_PLANE_MANAGERS


# --------------------------------------------------------------------------- cleaning


def _pop(d: dict[str, Any], key: str, unless: Any = None) -> None:
    if key in d and (unless is None or d[key] != unless):
        del d[key]


def _drop_keys(md: dict[str, Any], name: str, keys: tuple[str, ...]) -> None:
    m = md.get(name)
    if not isinstance(m, dict):
        return
    for k in keys:
        m.pop(k, None)
    if not m:
        del md[name]


def clean(doc: dict[str, Any], group: str) -> None:
    """Remove, in place, what export leaves out of an object kept (docs/export.md)."""
    doc.pop("status", None)
    md = _meta(doc)
    asked = _asked_node_ports(md)  # read before the annotation goes
    for k in METADATA_DROPPED:
        md.pop(k, None)
    _drop_keys(md, "annotations", ANNOTATIONS_DROPPED)
    kind = str(doc.get("kind") or "")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return
    if group == "" and kind == "Namespace":
        _drop_keys(md, "labels", ("kubernetes.io/metadata.name",))
        if spec.get("finalizers") == ["kubernetes"]:
            del spec["finalizers"]
        if not spec:
            del doc["spec"]
    elif group == "" and kind == "Service":
        _clean_service(spec, asked)
    elif group == "" and kind == "PersistentVolumeClaim":
        spec.pop("volumeName", None)
    elif group == "" and kind == "PersistentVolume":
        claim = spec.get("claimRef")
        if isinstance(claim, dict):
            for k in ("uid", "resourceVersion"):
                claim.pop(k, None)
    elif group == "" and kind == "Pod":
        spec.pop("nodeName", None)
    elif group == "batch" and kind == "Job" and spec.get("manualSelector") is not True:
        spec.pop("selector", None)  # generated from the Job's uid
        tmd = _map(spec.get("template"), "metadata")
        if tmd:
            _drop_keys(tmd, "labels", ("controller-uid", "batch.kubernetes.io/controller-uid"))


def _clean_service(spec: dict[str, Any], asked: set[Any]) -> None:
    """A Service's allocated fields: cluster IPs (unless headless: None), node
    ports the last-applied configuration did not ask for, and the IP families
    when single-stack (the default the server fills in)."""
    if spec.get("clusterIP") != "None":
        spec.pop("clusterIP", None)
        spec.pop("clusterIPs", None)
    if spec.get("ipFamilyPolicy") == "SingleStack":
        spec.pop("ipFamilyPolicy", None)
        spec.pop("ipFamilies", None)
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and "nodePort" in port and port["nodePort"] not in asked:
            del port["nodePort"]
    if "healthCheckNodePort" in spec and spec["healthCheckNodePort"] not in asked:
        del spec["healthCheckNodePort"]


def _asked_node_ports(md: dict[str, Any]) -> set[Any]:
    """Node ports the kubectl last-applied configuration names (asked for, not
    allocated)."""
    raw = _map(md, "annotations").get(LAST_APPLIED)
    if not isinstance(raw, str):
        return set()
    try:
        spec = _map(json.loads(raw), "spec")
    except ValueError:
        return set()
    asked = {p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)}
    asked.add(spec.get("healthCheckNodePort"))
    asked.discard(None)
    return asked


# --------------------------------------------------------------------------- order

TOP_FIRST = ("apiVersion", "kind", "metadata")
METADATA_FIRST = ("name", "namespace")


def ordered(doc: dict[str, Any]) -> dict[str, Any]:
    """The object with its keys in export's order: apiVersion, kind, metadata
    (name and namespace first), then the rest; every map below sorted by key.
    Independent of the key order the source had, so the same object always
    gives the same bytes."""
    out: dict[str, Any] = {}
    for k in TOP_FIRST:
        if k in doc:
            out[k] = doc[k]
    for k in sorted(doc):
        if k not in out:
            out[k] = doc[k]
    md = out.get("metadata")
    if isinstance(md, dict):
        head = {k: md[k] for k in METADATA_FIRST if k in md}
        head.update((k, md[k]) for k in sorted(md) if k not in head)
        out["metadata"] = head
    for k, v in out.items():
        if k == "metadata" and isinstance(v, dict):
            out[k] = {mk: _sorted(mv) for mk, mv in v.items()}
        elif k not in ("apiVersion", "kind"):
            out[k] = _sorted(v)
    return out


def _sorted(v: Any) -> Any:
    """Every map in `v` sorted by key (iteratively: objects may be very deep)."""
    if not isinstance(v, (dict, list)):
        return v
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(v, root, 0)]
    while stack:
        src, parent, slot = stack.pop()
        if isinstance(src, dict):
            dst: Any = {k: None for k in sorted(src)}
            parent[slot] = dst
            for k in dst:
                item = src[k]
                if isinstance(item, (dict, list)):
                    stack.append((item, dst, k))
                else:
                    dst[k] = item
        else:
            dst = list(src)
            parent[slot] = dst
            for i, item in enumerate(src):
                if isinstance(item, (dict, list)):
                    stack.append((item, dst, i))
    return root[0]


# --------------------------------------------------------------------------- secrets

_DIGEST = re.compile(r"(?:hmac-)?sha256:[0-9a-f]{64}")


def has_values(doc: dict[str, Any]) -> bool:
    """Whether a Secret holds any value (an empty one has nothing to redact)."""
    return bool(_map(doc, "data") or _map(doc, "stringData"))


def redacted_secret(doc: dict[str, Any]) -> bool:
    """Whether a Secret's values are dump's digests (a snapshot without a
    manifest does not say how its Secrets were dumped)."""
    values = [*_map(doc, "data").values(), *_map(doc, "stringData").values()]
    return bool(values) and all(isinstance(v, str) and _DIGEST.fullmatch(v) for v in values)
