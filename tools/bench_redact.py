"""Redaction's CPU per Secret, on the Secrets of a dump made with `--secrets include`:

    kstream dump -r secrets --secrets include -o secrets.ndjson
    python -m tools.bench_redact secrets.ndjson [--max-size 20000] [--repeat 7]

or, without a cluster, on the Secrets of the benchmark's objects 0..N-1
(tools/bench_data.py) as the server writes them (its metadata: uid,
resourceVersion, creationTimestamp, labels, one managedFields entry):

    python -m tools.bench_redact --synthetic 20000 [--save FILE] [--json]

Times, in one process and one after the other (best of --repeat), the whole
transform dump applies to each Secret (`make_transform`: the bytes path with
msgspec for the server's layout, the str paths otherwise) and the str fast path
alone (what redaction did before the bytes path), and checks that both write the
same bytes. --json: the result as one JSON object on stdout instead (`make bench`
stores it: tools/bench.py).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from kstream import transform
from kstream.jsonlines import go_escape
from kstream.resources import Resource

SECRETS = Resource("", "v1", "secrets", "Secret", True)


def best(f: Callable[[bytes], object], lines: list[bytes], repeat: int) -> float:
    """µs per line, best of `repeat` passes (process CPU time)."""
    out = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        for line in lines:
            f(line)
        out = min(out, time.process_time() - t)
    return out / len(lines) * 1e6


def str_path(line: bytes) -> bytes:
    fast = transform._fast_redact(line.decode(), None, outer=True)
    assert fast is not None
    return go_escape(fast).encode()


def server_secrets(n: int) -> Iterator[bytes]:
    """The Secrets among objects 0..n-1 of the benchmark, as the server sends them."""
    from tools.bench_data import server_line  # imports tests.seed: only for this

    for i in range(1, n, 2):
        yield server_line(i)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tools.bench_redact")
    ap.add_argument("file", nargs="?", help="an NDJSON dump made with --secrets include")
    ap.add_argument("--synthetic", type=int, metavar="N", help="the Secrets of N bench objects")
    ap.add_argument("--save", help="with --synthetic: write them there (NDJSON) too")
    ap.add_argument("--max-size", type=int, default=20_000, help="leave out bigger Secrets")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = ap.parse_args(argv)
    if args.synthetic:
        every = list(server_secrets(args.synthetic))
        if args.save:
            Path(args.save).write_bytes(b"".join(ln + b"\n" for ln in every))
    elif args.file:
        every = Path(args.file).read_bytes().split(b"\n")
    else:
        ap.error("a file or --synthetic N")
    lines = [ln for ln in every if ln.startswith(b'{"kind":"Secret"') and len(ln) <= args.max_size]
    if not lines:
        raise SystemExit("no Secrets in the file")
    tf = transform.make_transform(SECRETS, transform.TransformOptions())
    assert tf is not None
    same = all(tf(ln) == str_path(ln) for ln in lines)
    size = sum(map(len, lines)) / len(lines)
    now = best(tf, lines, args.repeat)
    before = best(str_path, lines, args.repeat)
    if args.json:
        result = {
            "secrets": len(lines),
            "mean_bytes": size,
            "same_bytes": same,
            "us_per_secret": now,
            "str_path_us_per_secret": before,
            "repeat": args.repeat,
        }
        print(json.dumps(result))
        return
    print(f"{len(lines)} Secrets, mean {size:.0f} bytes; same bytes: {same}")
    print(f"redaction (make_transform): {now:.1f} us per Secret")
    print(f"str fast path alone:        {before:.1f} us per Secret ({now / before:.2f}x)")


if __name__ == "__main__":
    main()
