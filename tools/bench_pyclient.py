"""The official Python client as a dump contender (run as a separate process).

    python tools/bench_pyclient.py models|raw KUBECONFIG OUT.ndjson

models: list_config_map_for_all_namespaces() and list_secret_for_all_namespaces()
        (one un-paginated LIST each, deserialised into model objects), each item
        written back as JSON via sanitize_for_serialization.
raw:    the same calls with _preload_content=False, the body json.loads'ed whole,
        each item written with json.dumps.
Output: NDJSON, one object per line, like `kstream dump -o FILE.ndjson`.
"""

from __future__ import annotations

import json
import sys


def main(mode: str, kubeconfig: str, out: str) -> None:
    from kubernetes import client, config

    config.load_kube_config(config_file=kubeconfig)
    v1 = client.CoreV1Api()
    calls = (v1.list_config_map_for_all_namespaces, v1.list_secret_for_all_namespaces)
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        for call in calls:
            if mode == "models":
                lst = call()
                for item in lst.items:
                    doc = v1.api_client.sanitize_for_serialization(item)
                    f.write(json.dumps(doc, separators=(",", ":")) + "\n")
                    n += 1
            else:
                resp = call(_preload_content=False)
                body = json.loads(resp.data)
                for item in body["items"]:
                    f.write(json.dumps(item, separators=(",", ":")) + "\n")
                    n += 1
    print(n)


if __name__ == "__main__":
    main(*sys.argv[1:4])
