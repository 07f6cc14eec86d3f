"""The Table format of `kstream serve` (`Accept: application/json;as=Table;
g=meta.k8s.io;v=v1`, what `kubectl get` asks for): the columns the API
server's printers (k8s.io/kubernetes pkg/printers/internalversion) give the
common kinds, NAME and AGE for the others. Priority-1 columns are those
`-o wide` adds."""

from __future__ import annotations

import calendar
import functools
import time
from collections.abc import Callable
from typing import Any

from kstream.printable import visible

Obj = dict[str, Any]
Col = tuple[str, str, int, Callable[[Obj, float], Any]]  # name, type, priority, cell


def _md(o: Obj) -> Obj:
    md = o.get("metadata")
    return md if isinstance(md, dict) else {}


def _d(o: Any, *path: str) -> Any:
    for p in path:
        o = o.get(p) if isinstance(o, dict) else None
    return o


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def parse_time(ts: Any) -> float | None:
    if not isinstance(ts, str) or not ts:
        return None
    return _parse_time(ts)


@functools.lru_cache(maxsize=4096)  # objects made together share their timestamps
def _parse_time(ts: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 60 * 2:
        return f"{s}s"
    m = s // 60
    if m < 10:
        rest = s % 60
        return f"{m}m{rest}s" if rest else f"{m}m"
    if m < 60 * 3:
        return f"{m}m"
    h = m // 60
    if h < 8:
        rest = m % 60
        return f"{h}h{rest}m" if rest else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        rest = h % 24
        return f"{h // 24}d{rest}h" if rest else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        days = (h // 24) % 365
        return f"{h // 24 // 365}y{days}d" if days else f"{h // 24 // 365}y"
    return f"{h // 24 // 365}y"


def age(o: Obj, now: float) -> str:
    t = parse_time(_md(o).get("creationTimestamp"))
    return "<unknown>" if t is None else human_duration(now - t)


def since(ts: Any, now: float) -> str:
    t = parse_time(ts)
    return "<unknown>" if t is None else human_duration(now - t)


def name(o: Obj, now: float) -> str:
    return str(_md(o).get("name") or "")


NAME: Col = ("Name", "string", 0, name)
AGE: Col = ("Age", "string", 0, age)

# --------------------------------------------------------------------------- pods


def _pod_ready(o: Obj, now: float) -> str:
    cs = _list(_d(o, "status", "containerStatuses"))
    total = len(_list(_d(o, "spec", "containers")))
    ready = sum(1 for c in cs if isinstance(c, dict) and c.get("ready"))
    return f"{ready}/{total}"


def _pod_status(o: Obj, now: float) -> str:
    reason = str(_d(o, "status", "reason") or _d(o, "status", "phase") or "")
    for c in _list(_d(o, "status", "initContainerStatuses")):
        st = _d(c, "state") or {}
        if _d(st, "terminated", "exitCode") == 0:
            continue
        if _d(st, "terminated"):
            r = _d(st, "terminated", "reason") or f"ExitCode:{_d(st, 'terminated', 'exitCode')}"
            return f"Init:{r}"
        if _d(st, "waiting", "reason") and _d(st, "waiting", "reason") != "PodInitializing":
            return f"Init:{_d(st, 'waiting', 'reason')}"
        n = len(_list(_d(o, "spec", "initContainers")))
        done = sum(
            1
            for x in _list(_d(o, "status", "initContainerStatuses"))
            if _d(x, "state", "terminated", "exitCode") == 0
        )
        return f"Init:{done}/{n}"
    running = False
    for c in reversed(_list(_d(o, "status", "containerStatuses"))):
        st = _d(c, "state") or {}
        if _d(st, "waiting", "reason"):
            reason = str(_d(st, "waiting", "reason"))
        elif _d(st, "terminated", "reason"):
            reason = str(_d(st, "terminated", "reason"))
        elif _d(st, "terminated"):
            t = _d(st, "terminated")
            sig = t.get("signal")
            reason = f"Signal:{sig}" if sig else f"ExitCode:{t.get('exitCode')}"
        elif _d(st, "running") and c.get("ready"):
            running = True
    if reason == "Completed" and running:
        reason = "Running"
    if _md(o).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_restarts(o: Obj, now: float) -> str:
    n = 0
    last: float | None = None
    for c in _list(_d(o, "status", "containerStatuses")):
        n += int(_d(c, "restartCount") or 0)
        t = parse_time(_d(c, "lastState", "terminated", "finishedAt"))
        if t is not None and (last is None or t > last):
            last = t
    if n and last is not None:
        return f"{n} ({human_duration(now - last)} ago)"
    return str(n)


def _none(v: Any) -> str:
    return str(v) if v not in (None, "") else "<none>"


POD: list[Col] = [
    NAME,
    ("Ready", "string", 0, _pod_ready),
    ("Status", "string", 0, _pod_status),
    ("Restarts", "string", 0, _pod_restarts),
    AGE,
    ("IP", "string", 1, lambda o, n: _none(_d(o, "status", "podIP"))),
    ("Node", "string", 1, lambda o, n: _none(_d(o, "spec", "nodeName"))),
    ("Nominated Node", "string", 1, lambda o, n: _none(_d(o, "status", "nominatedNodeName"))),
    (
        "Readiness Gates",
        "string",
        1,
        lambda o, n: _none(
            ", ".join(str(_d(g, "conditionType")) for g in _list(_d(o, "spec", "readinessGates")))
        ),
    ),
]

# --------------------------------------------------------------------------- workloads


def _containers(o: Obj, now: float) -> str:
    return ",".join(
        str(c.get("name")) for c in _list(_d(o, "spec", "template", "spec", "containers"))
    )


def _images(o: Obj, now: float) -> str:
    return ",".join(
        str(c.get("image")) for c in _list(_d(o, "spec", "template", "spec", "containers"))
    )


def _selector(o: Obj, now: float) -> str:
    sel = _d(o, "spec", "selector")
    if not isinstance(sel, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((sel.get("matchLabels") or {}).items())]
    for e in _list(sel.get("matchExpressions")):
        op = str(e.get("operator", "")).lower()
        vals = ",".join(e.get("values") or [])
        if op in ("in", "notin"):
            parts.append(f"{e.get('key')} {op} ({vals})")
        elif op == "exists":
            parts.append(str(e.get("key")))
        else:
            parts.append(f"!{e.get('key')}")
    return ",".join(parts) or "<none>"


def _map_selector(o: Obj, now: float) -> str:
    sel = _d(o, "spec", "selector")
    if not isinstance(sel, dict) or not sel:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


def _int(o: Obj, *path: str) -> int:
    v = _d(o, *path)
    return int(v) if isinstance(v, int) else 0


WIDE_WORKLOAD: list[Col] = [
    ("Containers", "string", 1, _containers),
    ("Images", "string", 1, _images),
    ("Selector", "string", 1, _selector),
]

DEPLOYMENT: list[Col] = [
    NAME,
    (
        "Ready",
        "string",
        0,
        lambda o, n: f"{_int(o, 'status', 'readyReplicas')}/{_int(o, 'spec', 'replicas')}",
    ),
    ("Up-to-date", "integer", 0, lambda o, n: _int(o, "status", "updatedReplicas")),
    ("Available", "integer", 0, lambda o, n: _int(o, "status", "availableReplicas")),
    AGE,
    *WIDE_WORKLOAD,
]

REPLICASET: list[Col] = [
    NAME,
    ("Desired", "integer", 0, lambda o, n: _int(o, "spec", "replicas")),
    ("Current", "integer", 0, lambda o, n: _int(o, "status", "replicas")),
    ("Ready", "integer", 0, lambda o, n: _int(o, "status", "readyReplicas")),
    AGE,
    *WIDE_WORKLOAD,
]

STATEFULSET: list[Col] = [
    NAME,
    (
        "Ready",
        "string",
        0,
        lambda o, n: f"{_int(o, 'status', 'readyReplicas')}/{_int(o, 'spec', 'replicas')}",
    ),
    AGE,
    *WIDE_WORKLOAD[:2],
]


def _node_selector(o: Obj, now: float) -> str:
    sel = _d(o, "spec", "template", "spec", "nodeSelector")
    if not isinstance(sel, dict) or not sel:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


DAEMONSET: list[Col] = [
    NAME,
    ("Desired", "integer", 0, lambda o, n: _int(o, "status", "desiredNumberScheduled")),
    ("Current", "integer", 0, lambda o, n: _int(o, "status", "currentNumberScheduled")),
    ("Ready", "integer", 0, lambda o, n: _int(o, "status", "numberReady")),
    ("Up-to-date", "integer", 0, lambda o, n: _int(o, "status", "updatedNumberScheduled")),
    ("Available", "integer", 0, lambda o, n: _int(o, "status", "numberAvailable")),
    ("Node Selector", "string", 0, _node_selector),
    AGE,
    *WIDE_WORKLOAD,
]


def _job_status(o: Obj, now: float) -> str:
    for c in _list(_d(o, "status", "conditions")):
        if c.get("status") != "True":
            continue
        t = c.get("type")
        if t == "Complete":
            return "Complete"
        if t == "Failed":
            return "Failed"
        if t == "Suspended":
            return "Suspended"
        if t == "FailureTarget":
            return "FailureTarget"
        if t == "SuccessCriteriaMet":
            return "SuccessCriteriaMet"
    if _md(o).get("deletionTimestamp"):
        return "Terminating"
    return "Running"


def _job_completions(o: Obj, now: float) -> str:
    done = _int(o, "status", "succeeded")
    want = _d(o, "spec", "completions")
    if isinstance(want, int):
        return f"{done}/{want}"
    par = _d(o, "spec", "parallelism")
    return f"{done}/1 of {par}" if isinstance(par, int) and par > 1 else f"{done}/1"


def _job_duration(o: Obj, now: float) -> str:
    start = parse_time(_d(o, "status", "startTime"))
    if start is None:
        return ""
    end = parse_time(_d(o, "status", "completionTime"))
    return human_duration((end if end is not None else now) - start)


JOB: list[Col] = [
    NAME,
    ("Status", "string", 0, _job_status),
    ("Completions", "string", 0, _job_completions),
    ("Duration", "string", 0, _job_duration),
    AGE,
    *WIDE_WORKLOAD,
]


def _job_template(o: Obj) -> Obj:
    spec = _d(o, "spec", "jobTemplate", "spec")
    return {"spec": spec if isinstance(spec, dict) else {}}


CRONJOB: list[Col] = [
    NAME,
    ("Schedule", "string", 0, lambda o, n: str(_d(o, "spec", "schedule") or "")),
    ("Timezone", "string", 0, lambda o, n: _none(_d(o, "spec", "timeZone"))),
    ("Suspend", "boolean", 0, lambda o, n: "True" if _d(o, "spec", "suspend") else "False"),
    ("Active", "integer", 0, lambda o, n: len(_list(_d(o, "status", "active")))),
    (
        "Last Schedule",
        "string",
        0,
        lambda o, n: (
            since(_d(o, "status", "lastScheduleTime"), n)
            if _d(o, "status", "lastScheduleTime")
            else "<none>"
        ),
    ),
    AGE,
    ("Containers", "string", 1, lambda o, n: _containers(_job_template(o), n)),
    ("Images", "string", 1, lambda o, n: _images(_job_template(o), n)),
    ("Selector", "string", 1, lambda o, n: _selector(_job_template(o), n)),
]

# --------------------------------------------------------------------------- core


def _svc_external(o: Obj, now: float) -> str:
    t = _d(o, "spec", "type")
    ips = [str(x) for x in _list(_d(o, "spec", "externalIPs"))]
    if t == "LoadBalancer":
        lb = [
            str(i.get("ip") or i.get("hostname"))
            for i in _list(_d(o, "status", "loadBalancer", "ingress"))
        ]
        ips = lb + ips
        return ",".join(ips) if ips else "<pending>"
    if t == "ExternalName":
        return str(_d(o, "spec", "externalName") or "")
    return ",".join(ips) if ips else "<none>"


def _svc_ports(o: Obj, now: float) -> str:
    out = []
    for p in _list(_d(o, "spec", "ports")):
        s = f"{p.get('port')}"
        if p.get("nodePort"):
            s += f":{p.get('nodePort')}"
        out.append(f"{s}/{p.get('protocol') or 'TCP'}")
    return ",".join(out) or "<none>"


SERVICE: list[Col] = [
    NAME,
    ("Type", "string", 0, lambda o, n: str(_d(o, "spec", "type") or "ClusterIP")),
    ("Cluster-IP", "string", 0, lambda o, n: _none(_d(o, "spec", "clusterIP"))),
    ("External-IP", "string", 0, _svc_external),
    ("Port(s)", "string", 0, _svc_ports),
    AGE,
    ("Selector", "string", 1, _map_selector),
]


def _data_count(o: Obj, now: float) -> int:
    d, b = o.get("data"), o.get("binaryData")
    return (len(d) if isinstance(d, dict) else 0) + (len(b) if isinstance(b, dict) else 0)


CONFIGMAP: list[Col] = [NAME, ("Data", "integer", 0, _data_count), AGE]

SECRET: list[Col] = [
    NAME,
    ("Type", "string", 0, lambda o, n: str(o.get("type") or "")),
    ("Data", "integer", 0, _data_count),
    AGE,
]

NAMESPACE: list[Col] = [
    NAME,
    ("Status", "string", 0, lambda o, n: str(_d(o, "status", "phase") or "")),
    AGE,
]


def _node_status(o: Obj, now: float) -> str:
    out = []
    for c in _list(_d(o, "status", "conditions")):
        if c.get("type") == "Ready":
            out.append("Ready" if c.get("status") == "True" else "NotReady")
    if not out:
        out.append("Unknown")
    if _d(o, "spec", "unschedulable"):
        out.append("SchedulingDisabled")
    return ",".join(out)


def _node_roles(o: Obj, now: float) -> str:
    roles = set()
    for k, v in (_md(o).get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/"):
            roles.add(k.split("/", 1)[1])
        elif k == "kubernetes.io/role" and v:
            roles.add(str(v))
    return ",".join(sorted(r for r in roles if r)) or "<none>"


def _node_address(kind: str) -> Callable[[Obj, float], str]:
    def cell(o: Obj, now: float) -> str:
        for a in _list(_d(o, "status", "addresses")):
            if a.get("type") == kind:
                return str(a.get("address"))
        return "<none>"

    return cell


def _node_info(name: str) -> Callable[[Obj, float], str]:
    def cell(o: Obj, now: float) -> str:
        return str(_d(o, "status", "nodeInfo", name) or "<unknown>")

    return cell


NODE: list[Col] = [
    NAME,
    ("Status", "string", 0, _node_status),
    ("Roles", "string", 0, _node_roles),
    AGE,
    ("Version", "string", 0, lambda o, n: str(_d(o, "status", "nodeInfo", "kubeletVersion") or "")),
    ("Internal-IP", "string", 1, _node_address("InternalIP")),
    ("External-IP", "string", 1, _node_address("ExternalIP")),
    # printNode: an empty one of these three is "<unknown>" (the version stays empty)
    ("OS-Image", "string", 1, _node_info("osImage")),
    ("Kernel-Version", "string", 1, _node_info("kernelVersion")),
    ("Container-Runtime", "string", 1, _node_info("containerRuntimeVersion")),
]

SERVICEACCOUNT: list[Col] = [NAME, AGE]


def _endpoints(o: Obj, now: float) -> str:
    out = []
    for s in _list(o.get("subsets")):
        ports = [p.get("port") for p in _list(s.get("ports"))] or [None]
        for a in _list(s.get("addresses")):
            for p in ports:
                out.append(f"{a.get('ip')}:{p}" if p is not None else str(a.get("ip")))
    if not out:
        return "<none>"
    if len(out) > 3:
        return ",".join(out[:3]) + f" + {len(out) - 3} more..."
    return ",".join(out)


ENDPOINTS: list[Col] = [NAME, ("Endpoints", "string", 0, _endpoints), AGE]


def _event_object(o: Obj, now: float) -> str:
    io = o.get("involvedObject") or {}
    kind = str(io.get("kind") or "").lower()
    return f"{kind}/{io['name']}" if io.get("name") else kind


def _event_first_seen(o: Obj, now: float) -> str:
    return since(o.get("firstTimestamp") or o.get("eventTime"), now)


def _event_last_seen(o: Obj, now: float) -> str:
    series = o.get("series")
    if isinstance(series, dict):
        return since(series.get("lastObservedTime"), now)
    if o.get("lastTimestamp"):
        return since(o.get("lastTimestamp"), now)
    return _event_first_seen(o, now)


def _event_count(o: Obj, now: float) -> int:
    series = o.get("series")
    if isinstance(series, dict):
        return _int(series, "count")
    return _int(o, "count") or 1


def _event_source(o: Obj, now: float) -> str:
    src = o.get("source") or {}
    component = src.get("component") or o.get("reportingComponent") or ""
    instance = src.get("host") or o.get("reportingInstance") or ""
    if not component:
        return ""
    return f"{component}, {instance}" if instance else str(component)


# printEvent (the server always fills the wide cells; kubectl hides them)
EVENT: list[Col] = [
    ("Last Seen", "string", 0, _event_last_seen),
    ("Type", "string", 0, lambda o, n: str(o.get("type") or "")),
    ("Reason", "string", 0, lambda o, n: str(o.get("reason") or "")),
    ("Object", "string", 0, _event_object),
    ("Subobject", "string", 1, lambda o, n: str(_d(o, "involvedObject", "fieldPath") or "")),
    ("Source", "string", 1, _event_source),
    ("Message", "string", 0, lambda o, n: str(o.get("message") or "").strip()),
    ("First Seen", "string", 1, _event_first_seen),
    ("Count", "string", 1, _event_count),
    ("Name", "string", 1, name),
]


# events.k8s.io/v1 Events: the server converts them to core Events to print them
_EVENT_V1_FIELDS = {
    "regarding": "involvedObject",
    "note": "message",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}


def _as_core_event(o: Obj) -> Obj:
    return {_EVENT_V1_FIELDS.get(k, k): v for k, v in o.items()}


def _on_core_event(cell: Callable[[Obj, float], Any]) -> Callable[[Obj, float], Any]:
    return lambda o, now: cell(_as_core_event(o), now)


EVENT_V1: list[Col] = [(n, t, p, _on_core_event(cell)) for n, t, p, cell in EVENT]


def _access_modes(o: Obj, now: float) -> str:
    short = {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }
    modes = _list(_d(o, "status", "accessModes"))
    return ",".join(short.get(str(m), str(m)) for m in modes)


PVC: list[Col] = [
    NAME,
    ("Status", "string", 0, lambda o, n: str(_d(o, "status", "phase") or "")),
    ("Volume", "string", 0, lambda o, n: str(_d(o, "spec", "volumeName") or "")),
    ("Capacity", "string", 0, lambda o, n: str(_d(o, "status", "capacity", "storage") or "")),
    ("Access Modes", "string", 0, _access_modes),
    ("StorageClass", "string", 0, lambda o, n: str(_d(o, "spec", "storageClassName") or "")),
    (
        "VolumeAttributesClass",
        "string",
        0,
        lambda o, n: _d(o, "spec", "volumeAttributesClassName") or "<unset>",
    ),
    AGE,
    ("VolumeMode", "string", 1, lambda o, n: _d(o, "spec", "volumeMode") or "<unset>"),
]


def _ingress_hosts(o: Obj, now: float) -> str:
    hosts = [str(r.get("host")) for r in _list(_d(o, "spec", "rules")) if r.get("host")]
    return ",".join(hosts) or "*"


def _ingress_address(o: Obj, now: float) -> str:
    return ",".join(
        str(i.get("ip") or i.get("hostname"))
        for i in _list(_d(o, "status", "loadBalancer", "ingress"))
    )


INGRESS: list[Col] = [
    NAME,
    ("Class", "string", 0, lambda o, n: _none(_d(o, "spec", "ingressClassName"))),
    ("Hosts", "string", 0, _ingress_hosts),
    ("Address", "string", 0, _ingress_address),
    ("Ports", "string", 0, lambda o, n: "80, 443" if _list(_d(o, "spec", "tls")) else "80"),
    AGE,
]

CRD: list[Col] = [
    NAME,
    ("Created At", "date", 0, lambda o, n: str(_md(o).get("creationTimestamp") or "")),
]

PRINTERS: dict[tuple[str, str], list[Col]] = {
    ("", "Pod"): POD,
    ("apps", "Deployment"): DEPLOYMENT,
    ("apps", "ReplicaSet"): REPLICASET,
    ("apps", "StatefulSet"): STATEFULSET,
    ("apps", "DaemonSet"): DAEMONSET,
    ("batch", "Job"): JOB,
    ("batch", "CronJob"): CRONJOB,
    ("", "Service"): SERVICE,
    ("", "ConfigMap"): CONFIGMAP,
    ("", "Secret"): SECRET,
    ("", "Namespace"): NAMESPACE,
    ("", "Node"): NODE,
    ("", "ServiceAccount"): SERVICEACCOUNT,
    ("", "Endpoints"): ENDPOINTS,
    ("", "Event"): EVENT,
    ("events.k8s.io", "Event"): EVENT_V1,
    ("", "PersistentVolumeClaim"): PVC,
    ("networking.k8s.io", "Ingress"): INGRESS,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): CRD,
}

DESCRIPTIONS = {
    "Name": "Name must be unique within a namespace. Is required when creating resources, "
    "although some resources may allow a client to request the generation of an appropriate "
    "name automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    "Age": "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
}


def columns(kind: str, group: str, printer_columns: list[Any] | None = None) -> list[Col]:
    if printer_columns:
        return [NAME, *(_printer_column(c) for c in printer_columns if isinstance(c, dict))]
    return PRINTERS.get((group, kind), [NAME, AGE])


def json_path_steps(path: str) -> list[str | int] | None:
    """The steps of a simple JSONPath (`.spec.x`, `.status.conditions[0].type`,
    `.metadata.labels.app`; braces allowed): keys and list indexes; None when
    an index is not a number (the path leads nowhere)."""
    p = path.strip()
    if p.startswith("{") and p.endswith("}"):
        p = p[1:-1]
    steps: list[str | int] = []
    for part in p.lstrip(".").split("."):
        if not part:
            continue
        name, _, rest = part.partition("[")
        if name:
            steps.append(name)
        while rest:
            idx, _, rest = rest.partition("]")
            rest = rest.lstrip("[")
            try:
                steps.append(int(idx))
            except ValueError:
                return None
    return steps


def json_path(obj: Any, steps: list[str | int] | None) -> Any:
    """The value at a path (`json_path_steps`), None where it leads nowhere."""
    if steps is None:
        return None
    cur = obj
    for s in steps:
        if isinstance(s, str):
            cur = cur.get(s) if isinstance(cur, dict) else None
        else:
            cur = cur[s] if isinstance(cur, list) and -len(cur) <= s < len(cur) else None
        if cur is None:
            return None
    return cur


def _printer_column(c: dict[str, Any]) -> Col:
    """A CRD's additionalPrinterColumns entry (what apiextensions' table
    convertor does with it: dates as ages, scalars as they are)."""
    kind, path = str(c.get("type") or "string"), str(c.get("jsonPath") or "")
    steps = json_path_steps(path)  # parsed once, not per row

    def cell(o: Obj, now: float) -> Any:
        v = json_path(o, steps)
        if v is None:
            return None
        if kind == "date":
            return since(v, now) if isinstance(v, str) else None
        if isinstance(v, (dict, list)):
            import json

            return json.dumps(v, separators=(",", ":"))
        return v

    return (str(c.get("name") or path), kind, int(c.get("priority") or 0), cell)


def _shown(cell: Any) -> Any:
    """A cell as kubectl may print it on a terminal: control and bidi characters of
    a string (the object's own data) as escapes (kstream/printable.py)."""
    return visible(cell) if isinstance(cell, str) else cell


def table(
    kind: str,
    group: str,
    objs: list[Obj],
    now: float,
    query: dict[str, str],
    printer_columns: list[Any] | None = None,
) -> Obj:
    """A meta.k8s.io/v1 Table of `objs` (metadata is the caller's);
    `printer_columns`: a custom resource's, from its CRD."""
    cols = columns(kind, group, printer_columns)
    include = query.get("includeObject", "") or "Metadata"
    rows = []
    for o in objs:
        row: Obj = {"cells": [_shown(c[3](o, now)) for c in cols]}
        if include == "Object":
            row["object"] = o
        elif include != "None":
            md = {k: v for k, v in _md(o).items() if k != "managedFields"}
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": md,
            }
        rows.append(row)
    defs = [
        {
            "name": c[0],
            "type": c[1],
            "format": "name" if c is NAME else "",
            "description": DESCRIPTIONS.get(c[0], c[0]),
            "priority": c[2],
        }
        for c in cols
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": defs,
        "rows": rows,
    }
