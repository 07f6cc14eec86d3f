"""Benchmark: `kstream export` of a big archive (issue 27's row).

Writes archives of N ConfigMaps (tools/bench_serve.make_archive: 50 per namespace,
0.5-2 KB of data each, object fields as the server writes them) for each N, then
runs `kstream export ARCHIVE -o DIR/` as a child process (wall, CPU, peak RSS),
and once more into the same directory (`--force`: every file compared, none
written). Memory is flat when the peak RSS does not grow with N.

    python -m tools.bench_export [--objects 10000,100000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.bench_serve import make_archive


def measure(args: list[str]) -> dict[str, Any]:
    from tools.bench_measure import measure as run

    kstream = str(Path(sys.executable).parent / "kstream")
    m = run([kstream, *args])
    if not m.ok:
        raise SystemExit(f"kstream {' '.join(args)}: {m.error}")
    return {
        "command": "kstream " + " ".join(args),
        "wall_s": round(m.wall, 2),
        "cpu_s": round(m.cpu, 2),
        "peak_rss_mib": round(m.rss / 2**20, 1),
    }


def run(work: Path, sizes: list[int], log: Any = None) -> dict[str, Any]:
    """For each N: build the archive, export it, export it again; the results."""
    out: dict[str, Any] = {"runs": []}
    for n in sizes:
        root = work / f"export-{n}"
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        archive = root / "cm.ndjson.zst"
        make_archive(archive, n)
        for what, extra in (("export", []), ("re-export, unchanged", ["--force"])):
            r = measure(["export", str(archive), "-o", f"{root}/tree/", "-q", *extra])
            r.update(objects=n, what=what)
            out["runs"].append(r)
            if log is not None:
                log(
                    f"export: {n:,} objects, {what}: {r['wall_s']} s, peak RSS {r['peak_rss_mib']} MiB"
                )
        shutil.rmtree(root, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--objects", default="10000,100000", help="sizes, comma-separated")
    ap.add_argument("--dir", default="", help="work directory (default: a temporary one)")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.objects.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(dir=args.dir or None) as d:
        res = run(Path(d), sizes, print)
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
