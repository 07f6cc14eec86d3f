"""The sections other bench modes write into docs/benchmarks.md (between their
markers, `tools/bench_report.py`'s `*_START` / `*_END`), as their tests check
them: `make_bench()` is what a `make bench` rerun makes of the file (the report
regenerated from a result with nothing measured), `check_kept()` that such a
rerun keeps a section and that a rerun of the section's own mode replaces it in
place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools import bench_report

# the machine of a result, every field unknown
MACHINE = dict.fromkeys(
    ("cpu_model", "nproc", "ram_gb", "kernel", "python", "kstream", "commit",
     "kube_apiserver", "etcd", "kubectl", "kubernetes_py", "urllib3", "zstandard"),
    "-",
)  # fmt: skip


def empty_result() -> dict[str, Any]:
    """A `make bench` result with no size measured."""
    return {
        "started": "x",
        "machine": dict(MACHINE),
        "load": {"start": [0.0, 0.0, 0.0]},
        "sizes": [],
    }


def make_bench(text: str) -> str:
    """docs/benchmarks.md (`text`) as a `make bench` rerun regenerates it."""
    return bench_report.render(empty_result(), text)


def check_kept(out: Path, start: str, end: str, section: str, newer: str) -> None:
    """`section` written between `start` and `end` into a benchmarks.md of old
    generated text: `make bench` keeps it (once) and regenerates the rest; a
    rerun of its mode (`newer`) replaces it in place."""
    out.write_text("# Benchmarks\n\nold generated text\n")
    bench_report.put_section(out, start, end, section)
    assert out.read_text().count(start) == 1
    regenerated = make_bench(out.read_text())
    assert section in regenerated and regenerated.count(start) == 1
    assert "old generated text" not in regenerated
    out.write_text(regenerated)
    assert newer != section
    bench_report.put_section(out, start, end, newer)
    text = out.read_text()
    assert newer in text and section not in text and text.count(start) == 1
