"""tools/bench_instant.py: the journal it writes (daily bases by kstream's own
re-base, the same state read with and without them) and its report. No cluster,
no S3 server, no timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kstream.journal.format import BASES_DIR, base_name, list_segments
from kstream.journal.reader import open_journal
from kstream.sources import open_source
from tests.benchsections import check_kept
from tools import bench_instant as bi
from tools import bench_report

MB = 2**20


def test_daily_bases_are_kstreams_fold_and_every_instant_reads_the_same(tmp_path: Path) -> None:
    jb = tmp_path / "journal"
    built = bi.build(jb, 300, 6000, 3, 3600, lambda _: None)
    # one sealed segment per hour, the last of each day closing it, a base after days 1 and 2
    assert built["segments"] == 72 == max(list_segments(jb))
    assert built["day_last_segment"] == {1: 24, 2: 48, 3: 72}
    assert built["bases"] == [24, 48]
    assert sorted(p.name for p in (jb / BASES_DIR).iterdir()) == [
        Path(base_name(24)).name,
        Path(base_name(48)).name,
    ]
    # the generator's count moves (deletions and re-additions), so the check below can fail
    assert len(set(built["alive"].values())) > 1
    expect = {"day 1, 01:00": (1, 0), "day 1, 23:00": (23, 0), "day 2, 23:00": (47, 1),
              "day 3, 23:00": (71, 2)}  # fmt: skip
    for k, (label, day, sec) in enumerate(bi.instants(3)):
        t = bi.at(sec)
        with_b, without = tmp_path / f"{k}-bases", tmp_path / f"{k}-none"
        # the journal as it stood at T: the segments sealed by then, the bases written by then
        assert bi.as_of(jb, with_b, sec, built, True) == expect[label][0]
        assert bi.as_of(jb, without, sec, built, False) == expect[label][0]
        assert len(list((with_b / BASES_DIR).glob("*"))) == expect[label][1]
        assert not (without / BASES_DIR).exists()
        # the reader starts from the newest base <= T: the previous midnight's
        assert open_journal(str(with_b)).from_base(t).base_no == {1: 0, 2: 24, 3: 48}[day]
        counts = [
            sum(e.objects for e in open_source(f"{d}/@{t}").entries) for d in (with_b, without)
        ]
        assert counts == [built["alive"][label]] * 2, label
    assert bi.events_upto(3 * bi.DAY, 6000, 3) == 6000
    assert bi.events_upto(bi.DAY, 6000, 3) == 2000


def cell(wall: float, cpu: float, gets: int | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"wall": wall, "cpu": cpu, "rss": 60 * MB, "objects": 90, "load1": 1.0}
    if gets is not None:
        c |= {"gets": gets, "lists": 2, "fetched": gets * MB // 100}
    return c


def result(bases_cpu: list[float], none_cpu: list[float]) -> dict[str, Any]:
    runs = []
    for (label, day, sec), b, n in zip(bi.instants(3), bases_cpu, none_cpu, strict=True):
        runs.append(
            {
                "instant": label,
                "day": day,
                "time": bi.at(sec),
                "alive": 90,
                "segments": 24 * day,
                "bases": day - 1,
                "events_total": bi.events_upto(sec, 6000, 3),
                "events_since_base": 1000,
                "local+bases": cell(b, b),
                "s3+bases": cell(b * 2, b, 100),
                "local": cell(n, n),
                "s3": cell(n * 2, n, 100 * day),
            }
        )
    return {
        "started": "2026-12-07T08:00:00+00:00",
        "machine": {"nproc": 2, "cpu_model": "test cpu"},
        "objects": 100,
        "events": 6000,
        "days": 3,
        "rotate_s": 3600,
        "load": {"start": [1.0, 2.0, 3.0], "end": [4.0, 5.0, 6.0]},
        "journal": {"segments": 72, "bases": [24, 48], "fold_s": [0.5, 0.7]},
        "bytes": {"segments": 3 * MB, "base0": MB, "bases": 2 * MB},
        "runs": runs,
    }


def test_report_flat_with_bases_growing_without() -> None:
    text = bi.render(result([0.5, 1.0, 1.1, 1.2], [0.5, 1.0, 2.0, 3.0]))
    assert text.startswith(bench_report.INSTANT_START) and text.endswith(bench_report.INSTANT_END)
    assert "**s3://, daily bases: does not grow**" in text
    assert "took 1.20× the CPU of day 1's" in text
    assert "**s3://, no bases: grows**: day 3's read at 23:00 took 3.00× the CPU" in text
    assert "| day 2, 23:00 (2026-12-01T23:00:00Z) | 90 | 48 / 1 |" in text
    assert "| 200 / 2.0 |" in text  # s3, no bases, day 2: GETs / MB
    assert "load average 1.0 / 2.0 / 3.0 at the start" in text


def test_report_says_when_bases_do_not_help() -> None:
    text = bi.render(result([0.5, 1.0, 2.0, 3.0], [0.5, 1.0, 1.0, 1.0]))
    assert "**local, daily bases: grows**" in text
    assert "**local, no bases: does not grow**" in text


def test_make_bench_keeps_the_section(tmp_path: Path) -> None:
    section = bi.render(result([0.5, 1.0, 1.1, 1.2], [0.5, 1.0, 2.0, 3.0]))
    newer = bi.render(result([0.5, 1.0, 1.1, 1.2], [0.5, 1.0, 2.0, 9.0]))  # a rerun of its mode
    check_kept(
        tmp_path / "benchmarks.md",
        bench_report.INSTANT_START,
        bench_report.INSTANT_END,
        section,
        newer,
    )
