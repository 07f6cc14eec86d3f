"""The --huge scale point's report (tools/bench_huge.py): verdicts from measured
rows, and a `make bench` rerun keeps its section. No cluster needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.benchsections import check_kept
from tools import bench_huge, bench_report

MB = 2**20


def point(n: int, cpu_per_obj_us: float, rss_mb: float, seeded_from: int = 0) -> dict[str, Any]:
    rows = []
    for name, path, output in bench_huge.ROWS:
        cpu = cpu_per_obj_us * n / 1e6
        rows.append(
            {
                "name": name,
                "path": path,
                "output": output,
                "kind": "dump",
                "kstream": name.startswith("kstream"),
                "server": "WatchList on",
                "runs": [],
                "chosen": {"wall": cpu * 2, "cpu": cpu, "rss": int(rss_mb * MB),
                           "out_bytes": n * 6000, "error": ""},
            }
        )  # fmt: skip
    return {
        "n": n,
        "shape": {"payload_bytes": n * 5400},
        "seeded_from": seeded_from,
        "seed_s": 1.0,
        "seed_rate": 1000.0,
        "apiserver_rss": 3000 * MB,
        "etcd_bytes": 2000 * MB,
        "load": {"before": [1.0, 1.0, 1.0], "after": [2.0, 1.0, 1.0]},
        "rows": rows,
    }


def result(lo: dict[str, Any], hi: dict[str, Any]) -> dict[str, Any]:
    return {
        "started": "2026-11-29T08:00:00+00:00",
        "finished": "2026-11-29T08:30:00+00:00",
        "repeat": 3,
        "load": {"start": [1.0, 1.0, 1.0], "end": [2.0, 2.0, 2.0]},
        "points": [lo, hi],
    }


def test_verdicts_flat_and_same() -> None:
    text = bench_huge.render(result(point(100_000, 40, 40), point(300_000, 41, 42, 100_000)))
    assert "## Scale point: 100k, 300k objects" in text
    assert "**Memory flat: yes.**" in text
    assert "+2.0 MB" in text
    assert "**Time per object the same: CPU yes, wall yes.**" in text
    assert "| 100,000..300,000 | 1,000 |" in text


def test_verdicts_growth_and_slowdown() -> None:
    text = bench_huge.render(result(point(100_000, 40, 40), point(300_000, 60, 80, 100_000)))
    assert "**Memory flat: no.**" in text
    assert "+40.0 MB" in text
    assert "**Time per object the same: CPU no, wall no.**" in text
    assert "CPU 1.50–1.50" in text


def test_failed_row_is_not_measured() -> None:
    hi = point(300_000, 41, 42, 100_000)
    hi["rows"][2]["chosen"]["error"] = "exit 1: boom"
    text = bench_huge.render(result(point(100_000, 40, 40), hi))
    assert "| **kstream dump --secrets include** | NDJSON | not measured" in text


def test_make_bench_keeps_the_section(tmp_path: Path) -> None:
    section = bench_huge.render(result(point(100_000, 40, 40), point(300_000, 41, 42)))
    newer = section.replace("2026-11-29T08:00:00", "2026-11-30T08:00:00")  # a second --huge run
    check_kept(
        tmp_path / "benchmarks.md", bench_report.HUGE_START, bench_report.HUGE_END, section, newer
    )


def test_peer_and_readers_are_shown_but_not_judged() -> None:
    """The Go peer and both raw readers have rows at every N (issue 26), in plain
    type; only kstream's rows make the verdicts."""
    lo, hi = point(100_000, 40, 40), point(300_000, 41, 42, 100_000)
    for r in hi["rows"]:
        if not r["kstream"]:  # dearer per object and bigger: not kstream's verdict
            r["chosen"]["cpu"] *= 3
            r["chosen"]["rss"] += 500 * MB
    text = bench_huge.render(result(lo, hi))
    assert "| Go client-go peer, server's bytes (json.RawMessage) | NDJSON |" in text
    assert "| raw socket reader, fresh 256 KiB per read (the limit before 2026-12-07) |" in text
    assert "| **kstream dump --secrets include** | NDJSON |" in text
    assert "**Memory flat: yes.**" in text
    assert "**Time per object the same: CPU yes, wall yes.**" in text
