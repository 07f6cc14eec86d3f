"""The benchmark's data: ConfigMaps and Secrets of a realistic mix of sizes.

Object i is a pure function of i (seeded per object), so the first 1,000 objects
of the 10k set are the 1k set: `make bench` seeds 1k, measures, tops up to 10k,
measures, and so on.

Shape (sizes are of the payload, the stored object is ~300 bytes more):
- 98 % between 1 and 10 KB (log-uniform), 1.9 % between 10 and 100 KB,
  0.1 % (every 1000th object) near 1 MB;
- half ConfigMaps (config-file-like text: compresses like real config),
  half Secrets (base64 of random bytes: does not compress, like keys and certs);
- PER_NAMESPACE objects per namespace (N=10k: 200 namespaces).
"""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from tests.seed import Api, namespace

PER_NAMESPACE = 50
NS_PREFIX = "bench-"
BIG = 950 * 1024  # "near 1 MB": stays under etcd's 1.5 MiB request limit once base64-encoded

_WORDS = (  # noqa: SIM905
    "server port host timeout retries replicas image tag enabled disabled level info debug "
    "warn error cache size limit memory cpu endpoint region zone cluster namespace service "
    "token path mount volume config feature flag true false http https grpc tls cert key "
    "backend frontend worker queue topic partition broker user group role policy rule"
).split()


def payload_size(i: int) -> int:
    if i % 1000 == 999:
        return BIG - (i // 1000) % 7 * 4096
    rng = random.Random(i * 7919 + 1)
    if rng.random() < 0.019:
        return int(10_240 * math.exp(rng.random() * math.log(10)))
    return int(1024 * math.exp(rng.random() * math.log(10)))


def ns_of(i: int) -> str:
    return f"{NS_PREFIX}{i // PER_NAMESPACE:05d}"


def _config_text(rng: random.Random, size: int) -> str:
    out: list[str] = []
    n = 0
    while n < size:
        k = "_".join(rng.choices(_WORDS, k=2))
        v = " ".join(rng.choices(_WORDS, k=rng.randint(1, 6))) + f" {rng.randint(0, 99999)}"
        line = f"{k} = {v}\n"
        out.append(line)
        n += len(line)
    return "".join(out)[:size]


def obj(i: int) -> tuple[str, dict[str, Any]]:
    """Object i: (collection path, body)."""
    rng = random.Random(i)
    ns = ns_of(i)
    size = payload_size(i)
    labels = {"app": f"app-{i % 37}", "tier": ("web", "db", "cache")[i % 3]}
    if i % 2 == 0:
        return f"/api/v1/namespaces/{ns}/configmaps", {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:07d}", "namespace": ns, "labels": labels},
            "data": {
                "app.conf": _config_text(rng, size),
                "owner": f"team-{i % 11} <ops@example.com>",
            },
        }
    raw = size * 3 // 4  # base64 grows it back to ~size
    return f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"secret-{i:07d}", "namespace": ns, "labels": labels},
        "type": "Opaque",
        "data": {
            "tls.key": base64.b64encode(rng.randbytes(raw)).decode(),
            "password": base64.b64encode(f"pw-{rng.getrandbits(64):x}".encode()).decode(),
        },
    }


def shape(n: int) -> dict[str, Any]:
    """What objects [0, n) are, computed without building them."""
    sizes = [payload_size(i) for i in range(n)]
    small = sum(1 for s in sizes if s < 10_240)
    big = sum(1 for s in sizes if s >= 512 * 1024)
    return {
        "objects": n,
        "configmaps": (n + 1) // 2,
        "secrets": n // 2,
        "namespaces": (n + PER_NAMESPACE - 1) // PER_NAMESPACE,
        "payload_bytes": sum(sizes),
        "small_1_10k": small,
        "medium_10_100k": n - small - big,
        "near_1mb": big,
    }


def seed_range(api: Api, start: int, stop: int, threads: int = 8) -> int:
    """Create objects [start, stop) (and their namespaces); existing ones are kept."""
    first_ns = start // PER_NAMESPACE
    last_ns = (stop - 1) // PER_NAMESPACE
    api.create_many(
        (namespace(f"{NS_PREFIX}{k:05d}", {"bench": "true"}) for k in range(first_ns, last_ns + 1)),
        threads=threads,
    )
    return api.create_many((obj(i) for i in range(start, stop)), threads=threads)


def _seed_chunk(job: tuple[str, str, int, int, int]) -> int:
    """In a worker process: create objects [start, stop) through its own client."""
    from pathlib import Path

    from tests.controlplane import ControlPlane

    cp_dir, url, start, stop, threads = job
    api = Api(ControlPlane(Path(cp_dir), url=url))
    return api.create_many((obj(i) for i in range(start, stop)), threads=threads)


def seed_parallel(
    api: Api,
    cp_dir: str,
    url: str,
    start: int,
    stop: int,
    procs: int = 4,
    threads: int = 4,
    chunk: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """seed_range with several client processes (each `threads` keep-alive
    connections): building the objects and encoding the JSON in one process
    holds the GIL, so one process cannot keep kube-apiserver and etcd busy.
    The namespaces are created first, from this process. Same objects as
    seed_range; existing ones are kept. progress(n) is called with the number
    of objects done so far."""
    import multiprocessing

    if stop <= start:
        return 0
    first_ns = start // PER_NAMESPACE
    last_ns = (stop - 1) // PER_NAMESPACE
    api.create_many(
        (namespace(f"{NS_PREFIX}{k:05d}", {"bench": "true"}) for k in range(first_ns, last_ns + 1)),
        threads=8,
    )
    jobs = [(cp_dir, url, a, min(stop, a + chunk), threads) for a in range(start, stop, chunk)]
    done = 0
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        for n in pool.imap_unordered(_seed_chunk, jobs):
            done += n
            if progress is not None:
                progress(done)
    return done


# ------------------------------------------------------------------ server-side scenario

SRV_NS = "bench-server-side"


def server_secrets(count: int, size: int) -> Iterator[tuple[str, dict[str, Any]]]:
    yield namespace(SRV_NS, {"bench": "server-side"})
    for i in range(count):
        rng = random.Random(10_000_000 + i)
        yield (
            f"/api/v1/namespaces/{SRV_NS}/secrets",
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": f"big-{i:04d}", "namespace": SRV_NS},
                "type": "Opaque",
                "data": {"blob": base64.b64encode(rng.randbytes(size * 3 // 4)).decode()},
            },
        )


def server_line(i: int) -> bytes:
    """Object i as the server sends it (one NDJSON line of a `--secrets include`
    dump): kind and apiVersion first, the metadata the server adds (uid,
    resourceVersion, creationTimestamp, one managedFields entry), data's keys
    sorted, the fields in Go's order. For the benchmarks that need no cluster
    (tools/bench_redact.py, tools/bench_zstd.py)."""
    import uuid

    from kstream.jsonlines import go_json

    _, o = obj(i)
    md = o["metadata"]
    rng = random.Random(i)
    stamp = "2026-12-07T04:55:00Z"
    fields: dict[str, Any] = {
        "f:data": {".": {}, **{f"f:{k}": {} for k in sorted(o["data"])}},
        "f:metadata": {"f:labels": {".": {}, **{f"f:{k}": {} for k in md["labels"]}}},
    }
    if "type" in o:
        fields["f:type"] = {}
    meta = {
        "name": md["name"],
        "namespace": md["namespace"],
        "uid": str(uuid.UUID(int=rng.getrandbits(128))),
        "resourceVersion": str(1000 + i),
        "creationTimestamp": stamp,
        "labels": md["labels"],
        "managedFields": [
            {
                "manager": "python-requests",
                "operation": "Update",
                "apiVersion": "v1",
                "time": stamp,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            }
        ],
    }
    out = {
        "kind": o["kind"],
        "apiVersion": "v1",
        "metadata": meta,
        "data": dict(sorted(o["data"].items())),
    }
    if "type" in o:
        out["type"] = o["type"]
    return go_json(out)
