"""The follow bench's object-storage mode (tools/bench_follow.py --s3): the
upload lag of each segment from its manifest and the bucket listing, and where
its table goes in docs/benchmarks.md (after the local follow section; kept by a
`make bench` rerun and by a rerun of the local mode). No cluster needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kstream.journal.format import parse_time
from tests.benchsections import make_bench
from tests.journalmaker import Journal, ev, obj
from tools import bench_follow, bench_report

CM = "v1/configmaps"
MB = 2**20


def at(s: str) -> float:
    return parse_time(s).timestamp()


def test_upload_lag_of_each_segment(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j")
    j.segment(
        1,
        [
            [
                ev("2026-12-07T08:00:01.000000Z", "MODIFIED", CM, obj(CM, "a", "ns", rv="2")),
                ev("2026-12-07T08:00:59.500000Z", "MODIFIED", CM, obj(CM, "b", "ns", rv="3")),
            ]
        ],
    )
    j.segment(2, [[ev("2026-12-07T08:01:30.000000Z", "MODIFIED", CM, obj(CM, "a", "ns", rv="4"))]])
    j.segment(3, [])  # no event: no lag
    j.segment(4, [[ev("2026-12-07T08:02:10.000000Z", "MODIFIED", CM, obj(CM, "b", "ns", rv="5"))]])
    j.segment(
        5,
        [[ev("2026-12-07T08:02:20.000000Z", "MODIFIED", CM, obj(CM, "a", "ns", rv="6"))]],
        sealed=False,
    )  # open: never listed
    b = bench_follow.Bucket(tmp_path)
    seen = {1: "2026-12-07T08:01:01.250000Z", 2: "2026-12-07T08:02:00.750000Z",
            3: "2026-12-07T08:02:05.000000Z", 4: "2026-12-07T08:03:00.000000Z"}  # fmt: skip
    for n, t in seen.items():
        key = f"{bench_follow.PREFIX}segments/{j.seg_path(n).name}"
        b.seen[key] = at(t)
        b.modified[key] = at(t) - 1
        b.sizes[key] = 100 * n
    lags = bench_follow.upload_lags(b, j.root, stopped_at=at("2026-12-07T08:02:30.000000Z"))
    assert [x["segment"] for x in lags] == [1, 2, 4]
    assert [round(x["lag_listed"], 3) for x in lags] == [1.75, 30.75, 50.0]
    assert [round(x["lag_modified"], 3) for x in lags] == [0.75, 29.75, 49.0]
    assert [x["events"] for x in lags] == [2, 1, 1]
    assert [x["bytes"] for x in lags] == [100, 200, 400]
    # the upload alone: listed minus the manifest's sealed (journalmaker seals at 2026-11-29T15:00Z)
    assert [round(x["sealed_to_listed"]) for x in lags] == [
        round(at(seen[n]) - at("2026-11-29T15:00:00.000000Z")) for n in (1, 2, 4)
    ]
    assert [x["at_stop"] for x in lags] == [False, False, True]  # 4: uploaded by the stop


def row(mode: str, **kw: Any) -> dict[str, Any]:
    r = {
        "mode": mode, "rotate_interval": "1m", "objects": 1000, "threads": 8, "duration": 600.2,
        "target_rate": 200.0, "changes": 119_000, "recorded": 119_000, "rate": 198.3, "cpu": 30.0,
        "cpu_per_event_us": 252.1, "rss_first_minute": 57 * MB, "rss_last_minute": 58 * MB,
        "rss_max_sampled": 59 * MB, "peak_rss": 60 * MB, "segments": 11, "journal_bytes": 6 * MB,
        "upload_lag_median": 1.2, "upload_lag_max": 3.4, "upload_lag_max_modified": 2.9, "upload_max": 0.8,
        "load_start": 9.0, "load_mean": 11.5, "load_max": 13.25, "exit": 0,
    }  # fmt: skip
    r.update(kw)
    return r


MACHINE = {"kube_apiserver": "v1.37.2"}


def test_s3_table_rows() -> None:
    text = bench_follow.s3_section(
        [row("s3"), row("local", cpu_per_event_us=150.0, upload_lag_median=None)], "T0", MACHINE
    )
    assert text.startswith(bench_report.FOLLOW_S3_START)
    assert text.endswith(bench_report.FOLLOW_S3_END)
    assert "at 200 changes/s" in text
    assert (
        "| s3:// (SeaweedFS) | 1m | 600 | 119,000 | 119,000 | 198 | 30.0 | 252 | 57 / 58 / 59 | 60 "
        "| 11 | 6.0 | 1.2 / 3.4 | 2.9 | 0.8 | 9.0 / 11.5 / 13.2 | 0 |" in text
    )
    assert "| local directory | 1m | 600 | 119,000 | 119,000 | 198 | 30.0 | 150 |" in text
    assert "| 6.0 | - | - | - | 9.0 / 11.5 / 13.2 | 0 |" in text


def test_s3_section_placed_after_the_follow_section_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    follow = "\n".join([bench_report.FOLLOW_START, "local follow table", bench_report.FOLLOW_END])
    out.write_text(f"# Benchmarks\n\nintro\n\n{follow}\n\n## Dump, N = 1,000\n\nold dump table\n")
    s3 = bench_follow.s3_section([row("s3")], "T1", MACHINE)
    bench_follow.put_after_follow(out, s3)
    text = out.read_text()
    assert text.index(bench_report.FOLLOW_END) < text.index(s3) < text.index("## Dump, N = 1,000")
    # a rerun replaces it in place
    newer = bench_follow.s3_section([row("s3", upload_lag_max=7.5)], "T2", MACHINE)
    bench_follow.put_after_follow(out, newer)
    text = out.read_text()
    assert newer in text and s3 not in text and text.count(bench_report.FOLLOW_S3_START) == 1
    # a rerun of the local mode leaves it alone
    bench_report.put_section(
        out, bench_report.FOLLOW_START, bench_report.FOLLOW_END, follow.replace("local", "newer")
    )
    assert newer in out.read_text()
    # and so does `make bench`, which regenerates the rest
    regenerated = make_bench(out.read_text())
    assert newer in regenerated
    assert "newer follow table" in regenerated
    assert "old dump table" not in regenerated
    assert regenerated.index("newer follow table") < regenerated.index(newer)
