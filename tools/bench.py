"""`make bench`: kstream against kubectl, the official Python client and a raw
socket reader, on a local control plane seeded with ConfigMaps and Secrets.

    python -m tools.bench                        # N = 1k and 10k
    python -m tools.bench --large                # also N = 100k (seeding takes minutes)
    python -m tools.bench --sizes 1000 --repeat 1 --out /tmp/b.md
    python -m tools.bench --huge                 # only the scale point: 100k, then 300k

Each contender runs as its own process, measured from outside (tools/bench_measure.py):
wall time, CPU time (user+sys) and peak RSS. Everything runs in one invocation on
the same data: the control plane is seeded up to each N in turn (object i is the
same object at every N, tools/bench_data.py), the contenders run round-robin
`--repeat` times and the run with the median wall time is reported. The LIST-
fallback rows come from the same etcd, served by kube-apiserver restarted with
--feature-gates=WatchList=false. The server-side scenario (kube-apiserver memory
while K clients read the same Secrets at once) uses a second, fresh control plane.

Results go to --out (docs/benchmarks.md) and, raw, to bench-out/results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import psutil

from tests.controlplane import ControlPlane
from tests.controlplane.versions import ETCD_VERSION, KUBE_VERSION
from tests.seed import Api
from tools import bench_data as data
from tools.bench_measure import Measured, measure

REPO = Path(__file__).resolve().parents[1]
# the compiled peer (tools/bench_peer.py): built in main() before the first run
PEER = Path("benchpeer")
VENV_BIN = Path(sys.executable).parent
KSTREAM = str(VENV_BIN / "kstream")
KUBECTL = str(VENV_BIN / "kubectl")
PY = sys.executable
RESOURCES = "configmaps,secrets"
MB = 2**20
# Contenders run with bytecode caching on, as after any `pip install`: this sandbox
# sets PYTHONDONTWRITEBYTECODE, which would make every run of an editable install
# unmarshal-and-compile from source.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# --------------------------------------------------------------------------- contenders


@dataclass
class Contender:
    name: str
    path: str  # how it reads: watch-list | LIST | ...
    output: str  # what it writes
    cmd: Callable[[Path], list[str] | str]  # work dir -> command
    out_name: str = ""  # output file name in the work dir ("" = none)
    stdout: bool = False  # the command writes its output to stdout
    shell: bool = False
    kind: str = "dump"  # dump | count | limit | reader (another raw reader, not the limit)
    kstream: bool = False
    per_object: bool = True
    core: bool = False  # one of the rows of the 1.3x wall target: repeated even at large N
    s3_key: str = ""  # writes this object of the local S3 server (its size is the output's)


@dataclass
class Row:
    name: str
    path: str
    output: str
    kind: str
    kstream: bool
    server: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    chosen: dict[str, Any] = field(default_factory=dict)


def kstream_dump(cp: ControlPlane, out: str, *extra: str) -> Callable[[Path], list[str]]:
    def cmd(work: Path) -> list[str]:
        return [KSTREAM, "dump", "--kubeconfig", str(cp.kubeconfig), "-r", RESOURCES,
                "-o", str(work / out), "--force", "-q", *extra]  # fmt: skip

    return cmd


S3_BUCKET = "bench"
S3_ENV: dict[str, str] = {}  # set in main() once the local S3 server runs


def contenders_upload(cp: ControlPlane) -> list[Contender]:
    """The archive uploaded to the local S3-compatible server (SeaweedFS on
    loopback), against the same archive written to a local file (the row above)."""
    key = "ks-inc.ndjson.zst"

    def cmd(work: Path) -> list[str]:
        return [KSTREAM, "dump", "--kubeconfig", str(cp.kubeconfig), "-r", RESOURCES,
                "-o", f"s3://{S3_BUCKET}/{key}", "--force", "-q", "--secrets", "include"]  # fmt: skip

    return [
        Contender("kstream dump --secrets include", "watch-list", "s3:// archive (local S3)",
                  cmd, kstream=True, s3_key=key),
    ]  # fmt: skip


def s3_object_size(key: str) -> int:
    import botocore.session

    c = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=S3_ENV["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
    )
    return int(c.head_object(Bucket=S3_BUCKET, Key=key)["ContentLength"])


# issue 26's yardstick: the raw reader as it was before 2026-12-07 (a fresh 256 KiB
# object per read); a reader, but not the limit (the "× limit" column's row is the
# fixed one above it)
FRESH_READER = "raw socket reader, fresh 256 KiB per read (the limit before 2026-12-07)"


def contenders_watchlist_server(cp: ControlPlane) -> list[Contender]:
    kc = str(cp.kubeconfig)
    url = cp.url
    ca = str(cp.ca_file)
    token = cp.admin_token
    include = ("--secrets", "include")
    return [
        Contender("raw socket reader (the limit)", "watch-list", "/dev/null",
                  lambda w: [PY, str(REPO / "tools" / "bench_reader.py"), url, ca, token,
                             "/api/v1/configmaps", "/api/v1/secrets"],
                  kind="limit", core=True),
        Contender(FRESH_READER, "watch-list", "/dev/null",
                  lambda w: [PY, str(REPO / "tools" / "bench_reader.py"), "--fresh-buffers", url, ca,
                             token, "/api/v1/configmaps", "/api/v1/secrets"],
                  kind="reader", core=True),
        Contender("kstream dump, Secrets redacted (default)", "watch-list", "NDJSON",
                  kstream_dump(cp, "ks.ndjson"), "ks.ndjson", kstream=True, core=True),
        Contender("kstream dump --secrets include", "watch-list", "NDJSON",
                  kstream_dump(cp, "ks-inc.ndjson", *include), "ks-inc.ndjson", kstream=True, core=True),
        Contender("kstream dump, Secrets redacted (default)", "watch-list", ".zst archive",
                  kstream_dump(cp, "ks.ndjson.zst"), "ks.ndjson.zst", kstream=True),
        Contender("kstream dump --secrets include", "watch-list", ".zst archive",
                  kstream_dump(cp, "ks-inc.ndjson.zst", *include), "ks-inc.ndjson.zst", kstream=True),
        Contender("kstream dump --method list --secrets include", "LIST (limit=500)", "NDJSON",
                  kstream_dump(cp, "ks-list.ndjson", "--method", "list", *include),
                  "ks-list.ndjson", kstream=True),
        Contender("Go client-go peer, server's bytes (json.RawMessage)", "watch-list", "NDJSON",
                  lambda w: [str(PEER), "-kubeconfig", kc, "-mode", "raw", "-o",
                             str(w / "peer-raw.ndjson"), *RESOURCES.split(",")], "peer-raw.ndjson"),
        Contender("Go client-go peer, dynamic client (Unstructured)", "watch-list", "NDJSON",
                  lambda w: [str(PEER), "-kubeconfig", kc, "-mode", "dynamic", "-o",
                             str(w / "peer-dyn.ndjson"), *RESOURCES.split(",")], "peer-dyn.ndjson"),
        Contender("kubectl get configmaps,secrets -A -o json", "LIST (chunks of 500)", "JSON (stdout)",
                  lambda w: [KUBECTL, "--kubeconfig", kc, "get", RESOURCES, "-A", "-o", "json"],
                  "kubectl.json", stdout=True),
        Contender("Python client, models", "LIST (one page)", "NDJSON",
                  lambda w: [PY, str(REPO / "tools" / "bench_pyclient.py"), "models", kc,
                             str(w / "py-models.ndjson")], "py-models.ndjson"),
        Contender("Python client, _preload_content=False + json.loads", "LIST (one page)", "NDJSON",
                  lambda w: [PY, str(REPO / "tools" / "bench_pyclient.py"), "raw", kc,
                             str(w / "py-raw.ndjson")], "py-raw.ndjson"),
        Contender("kstream count", "watch-list", "counts",
                  lambda w: [KSTREAM, "count", "--kubeconfig", kc, "-r", RESOURCES],
                  kind="count", kstream=True),
        Contender("kstream count --estimate", "LIST limit=1 (remainingItemCount)", "counts",
                  lambda w: [KSTREAM, "count", "--kubeconfig", kc, "-r", RESOURCES, "--estimate"],
                  kind="count", kstream=True),
        Contender("kubectl get -A --no-headers | wc -l", "LIST (chunks of 500)", "a number",
                  lambda w: f"'{KUBECTL}' --kubeconfig '{kc}' get {RESOURCES} -A --no-headers | wc -l",
                  shell=True, kind="count"),
    ]  # fmt: skip


def contenders_list_server(cp: ControlPlane) -> list[Contender]:
    return [
        Contender("kstream dump, Secrets redacted (default)", "LIST fallback (WatchList off)", "NDJSON",
                  kstream_dump(cp, "ks-fb.ndjson"), "ks-fb.ndjson", kstream=True),
        Contender("kstream dump --secrets include", "LIST fallback (WatchList off)", "NDJSON",
                  kstream_dump(cp, "ks-fb-inc.ndjson", "--secrets", "include"), "ks-fb-inc.ndjson",
                  kstream=True),
        Contender("kstream dump --secrets include", "LIST fallback (WatchList off)", ".zst archive",
                  kstream_dump(cp, "ks-fb-inc.ndjson.zst", "--secrets", "include"),
                  "ks-fb-inc.ndjson.zst", kstream=True),
    ]  # fmt: skip


def _proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when unknown."""
    if pid is None:
        return 0.0
    try:
        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except psutil.Error:
        return 0.0


def run_contenders(
    contenders: list[Contender],
    server: str,
    work: Path,
    repeat: int,
    timeout: float,
    log: Callable[[str], None],
    core_repeat: int = 0,
    server_pid: int | None = None,
) -> list[Row]:
    """Run the contenders round-robin, `repeat` times (core ones at least
    `core_repeat` times); each row reports its run with the median wall time."""
    rows = [Row(c.name, c.path, c.output, c.kind, c.kstream, server) for c in contenders]
    for r in range(max(repeat, core_repeat)):
        for c, row in zip(contenders, rows, strict=True):
            times = max(repeat, core_repeat) if c.core else repeat
            if r >= times:
                continue
            out = work / c.out_name if c.out_name else None
            s0 = _proc_cpu(server_pid)
            m = measure(
                c.cmd(work),
                stdout=out if c.stdout else None,
                out_file=out,
                shell=c.shell,
                timeout=timeout,
                env={**CHILD_ENV, **S3_ENV} if c.s3_key else CHILD_ENV,
            )
            run = asdict(m)
            if c.s3_key and not m.error:
                run["out_bytes"] = s3_object_size(c.s3_key)
            run["server_cpu"] = _proc_cpu(server_pid) - s0
            row.runs.append(run)
            log(
                f"  [{r + 1}/{times}] {c.name} | {c.path} | {c.output}: wall {m.wall:.2f}s "
                f"cpu {m.cpu:.2f}s apiserver cpu {run['server_cpu']:.2f}s rss {m.rss / 2**20:.0f}MB out {m.out_bytes / 2**20:.1f}MB"
                + (f" ERROR {m.error}" if m.error else "")
            )
            if out is not None:
                with contextlib.suppress(OSError):
                    out.unlink()
    for row in rows:
        ok = [x for x in row.runs if not x["error"]] or row.runs
        walls = sorted(x["wall"] for x in ok)
        median = walls[(len(walls) - 1) // 2]
        row.chosen = next(x for x in ok if x["wall"] == median)
    return rows


# --------------------------------------------------------------------------- control plane


def set_feature_gates(cp: ControlPlane, gates: str) -> None:
    """Restart kube-apiserver (same etcd, same port) with other feature gates."""
    state = json.loads(cp.state_file.read_text())
    args = [a for a in state["apiserver_args"] if not a.startswith("--feature-gates=")]
    if gates:
        args.append(f"--feature-gates={gates}")
    cp.kill_apiserver()
    state["apiserver_args"] = args
    cp.state_file.write_text(json.dumps(state, indent=2))
    cp.start_apiserver_again()


def apiserver_pid(cp: ControlPlane) -> int:
    return int(json.loads(cp.state_file.read_text())["pids"]["kube-apiserver"])


def warm_up(cp: ControlPlane, timeout: float = 600) -> None:
    """Read both resources once through watch-list or LIST so that caches are filled."""
    subprocess.run(
        [KSTREAM, "dump", "--kubeconfig", str(cp.kubeconfig), "-r", RESOURCES, "-o", "-",
         "-q", "--secrets", "include"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout, check=False, env=CHILD_ENV,
    )  # fmt: skip


# --------------------------------------------------------------------------- server side


def _hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_hwm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler:
    """Samples a process's RSS on a thread until stop(); returns the peak."""

    def __init__(self, proc: psutil.Process, start: int) -> None:
        self.proc = proc
        self.peak = start
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        return self.peak


def server_side(
    work: Path, k: int, count: int, size: int, rounds: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """kube-apiserver peak RSS while K clients (kstream processes, or raw socket
    readers that take the bytes as fast as they come) read the same Secrets at
    once, with watch-list and with LIST. The apiserver is restarted before each
    case so none inherits another's Go heap."""
    cp = ControlPlane(work / "cp-server-side")
    result: dict[str, Any] = {
        "k": k,
        "secrets": count,
        "secret_bytes": size,
        "rounds": rounds,
        "rows": [],
    }
    try:
        cp.start()
        api = Api(cp)
        data_iter = data.server_secrets(count, size)
        api.create(*next(data_iter), exist_ok=True)
        api.create_many(data_iter, threads=8)
        path = f"/api/v1/namespaces/{data.SRV_NS}/secrets"
        raw = [PY, str(REPO / "tools" / "bench_reader.py")]
        creds = [cp.url, str(cp.ca_file), cp.admin_token, path]

        def ks(method: str, out: str) -> list[str]:
            return [KSTREAM, "dump", "--kubeconfig", str(cp.kubeconfig), "-n", data.SRV_NS, "-r", "secrets",
                    "--secrets", "include", "-q", "--force", "-o", out, "--method", method]  # fmt: skip

        clients: list[tuple[str, str, Callable[[int], list[str]]]] = [
            (
                "kstream dump",
                "watch-list",
                lambda i: ks("watch-list", str(work / f"srv-{i}.ndjson")),
            ),
            (
                "kstream dump",
                "LIST (limit=500)",
                lambda i: ks("list", str(work / f"srv-{i}.ndjson")),
            ),
            ("raw socket reader", "watch-list", lambda i: [*raw, *creds]),
            ("raw socket reader", "LIST (one page)", lambda i: [*raw, "--list", *creds]),
        ]
        for client, method, cmd in clients:
            cp.kill_apiserver()
            cp.start_apiserver_again()
            pid = apiserver_pid(cp)
            proc = psutil.Process(pid)
            # one read to fill caches, then let the Go heap settle
            subprocess.run(
                cmd(0),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
                env=CHILD_ENV,
            )
            time.sleep(5)
            base = proc.memory_info().rss
            reset = _reset_hwm(pid)
            walls: list[float] = []
            failures = 0
            sampler = RssSampler(proc, base)
            for r in range(rounds):
                t0 = time.perf_counter()
                procs = [
                    subprocess.Popen(
                        cmd(i), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CHILD_ENV
                    )
                    for i in range(k)
                ]
                failures += sum(1 for p in procs if p.wait() != 0)
                walls.append(time.perf_counter() - t0)
                log(f"  server-side {client} {method} round {r + 1}: {walls[-1]:.2f}s")
            peak_sampled = sampler.stop()
            peak = max(_hwm(pid), peak_sampled) if reset else peak_sampled
            row = {
                "client": client,
                "method": method,
                "baseline": base,
                "peak": peak,
                "growth": peak - base,
                "wall_max": max(walls),
                "failures": failures,
                "hwm_exact": reset,
            }
            result["rows"].append(row)
            log(
                f"  server-side {client} {method}: baseline {base / MB:.0f}MB peak {peak / MB:.0f}MB"
            )
            for i in range(k):
                with contextlib.suppress(OSError):
                    (work / f"srv-{i}.ndjson").unlink()
    finally:
        cp.stop()
        shutil.rmtree(cp.dir, ignore_errors=True)
    return result


# --------------------------------------------------------------------------- misc measurements


def help_time(runs: int) -> dict[str, Any]:
    measure([KSTREAM, "--help"], env=CHILD_ENV)  # warm-up: bytecode caches, page cache
    runs_m = [measure([KSTREAM, "--help"], env=CHILD_ENV) for _ in range(runs)]
    walls = [m.wall for m in runs_m]
    probe = subprocess.run(
        [PY, "-c", "import sys; sys.argv=['kstream','--help']\n"
         "import kstream.cli.app as a\n"
         "try:\n a.main()\nexcept SystemExit: pass\n"
         "print('kubernetes' in sys.modules, file=sys.stderr)"],
        capture_output=True, text=True, check=False, env=CHILD_ENV,
    )  # fmt: skip
    imports_k8s = probe.stderr.strip().splitlines()[-1:] == ["True"]
    return {
        "median": statistics.median(walls),
        "runs": walls,
        "cpu_median": statistics.median(m.cpu for m in runs_m),
        "rss": max(m.rss for m in runs_m),
        "imports_kubernetes": imports_k8s,
    }


def startup_empty(cp: ControlPlane, work: Path, runs: int) -> dict[str, Any]:
    """Issue 15's start-up row: `kstream dump -r configmaps -n empty -o FILE -q` against
    `kubectl get configmaps -n empty -o json`, alternated, median of `runs` each (after
    one warm-up run of both: bytecode, page cache, kubectl's discovery cache)."""
    kc = str(cp.kubeconfig)
    subprocess.run([KUBECTL, "--kubeconfig", kc, "create", "namespace", "empty"],
                   capture_output=True, check=False)  # fmt: skip
    out = work / "startup-empty.ndjson"
    ks = [KSTREAM, "dump", "--kubeconfig", kc, "-r", "configmaps", "-n", "empty",
          "-o", str(out), "--force", "-q"]  # fmt: skip
    kctl = [KUBECTL, "--kubeconfig", kc, "get", "configmaps", "-n", "empty", "-o", "json"]
    measure(ks, env=CHILD_ENV)
    measure(kctl, env=CHILD_ENV)
    k_runs: list[Measured] = []
    c_runs: list[Measured] = []
    for _ in range(runs):
        k_runs.append(measure(ks, env=CHILD_ENV))
        c_runs.append(measure(kctl, env=CHILD_ENV))
    with contextlib.suppress(OSError):
        out.unlink()
    ok = [m for m in k_runs if m.ok]
    kw = statistics.median(m.wall for m in ok) if ok else float("nan")
    cw = statistics.median(m.wall for m in c_runs)
    return {
        "runs": [m.wall for m in k_runs],
        "failures": len(k_runs) - len(ok),
        "median": kw,
        "cpu_median": statistics.median(m.cpu for m in ok) if ok else float("nan"),
        "rss": max((m.rss for m in ok), default=0),
        "kubectl_runs": [m.wall for m in c_runs],
        "kubectl_median": cw,
        "kubectl_cpu_median": statistics.median(m.cpu for m in c_runs),
        "ratio": kw / cw,
    }


def redaction(objects: int, timeout: float) -> dict[str, Any]:
    """Issue 26's redaction row: `python -m tools.bench_redact --synthetic OBJECTS --json`,
    the CPU per Secret of the transform dump applies (best of 7 passes, in one process)
    on the Secrets of the benchmark's objects 0..OBJECTS-1 as the server sends them.
    Its JSON result, plus "objects"; or {"objects", "error"} when it fails."""
    cmd = [PY, "-m", "tools.bench_redact", "--synthetic", str(objects), "--json"]
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                           check=False, env=CHILD_ENV)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"objects": objects, "error": f"timed out after {timeout:.0f} s"}
    if p.returncode != 0:
        lines = p.stderr.strip().splitlines() or [f"exit code {p.returncode}"]
        return {"objects": objects, "error": lines[-1]}
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
        float(res["us_per_secret"])
    except (ValueError, IndexError, KeyError, TypeError):
        return {"objects": objects, "error": f"unreadable output: {p.stdout[:200]!r}"}
    return {"objects": objects, **res}


def log_line(msg: str) -> None:
    """Print MSG to stderr with the time of day (the side benches' progress log)."""
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def tee_log(f: TextIO) -> Callable[[str], None]:
    """A progress log like log_line that also appends each line to F (bench.log)."""

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, file=sys.stderr, flush=True)
        f.write(line + "\n")
        f.flush()

    return log


def side_bench_start(
    ap: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, Path, str, tuple[float, float, float]]:
    """Add --out/--work to a side bench's parser, parse ARGV, make the work directory.

    Returns the arguments, the work directory, the start time (UTC, ISO) and the load average.
    """
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    ap.add_argument("--work", default=str(REPO / "bench-out"))
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    return args, work, started, os.getloadavg()


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break

    def ver(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "-"

    kubectl = subprocess.run(
        [KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True
    )
    try:
        kubectl_v = json.loads(kubectl.stdout)["clientVersion"]["gitVersion"]
    except (ValueError, KeyError):
        kubectl_v = "?"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "kstream": ver("kstream"),
        "commit": commit.stdout.strip(),
        "kubectl": kubectl_v,
        "kubernetes_py": ver("kubernetes"),
        "urllib3": ver("urllib3"),
        "zstandard": ver("zstandard"),
        "kube_apiserver": KUBE_VERSION,
        "etcd": ETCD_VERSION,
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes", default="1000,10000", help="object counts, comma-separated (default 1000,10000)"
    )
    ap.add_argument(
        "--large", action="store_true", help="add N=100000 (seeding takes several minutes)"
    )
    ap.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="markdown output")
    ap.add_argument(
        "--work", default=str(REPO / "bench-out"), help="work directory (control planes, outputs)"
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs per contender at N <= 10k (median reported)"
    )
    ap.add_argument("--repeat-large", type=int, default=1, help="runs per contender at N > 10k")
    ap.add_argument(
        "--repeat-core",
        type=int,
        default=3,
        help="runs of the two raw readers and the two kstream NDJSON rows at every N "
        "(the 1.3x target, issue 26's)",
    )
    ap.add_argument(
        "--timeout", type=float, default=1800, help="seconds before a contender is killed"
    )
    ap.add_argument("--skip-models-above", type=int, default=100_000,
                    help="skip the Python client's model contender above this N (minutes of CPU, GBs)")  # fmt: skip
    ap.add_argument("-k", "--clients", type=int, default=8, help="server side: concurrent clients")
    ap.add_argument(
        "--server-secrets", type=int, default=200, help="server side: number of Secrets"
    )
    ap.add_argument(
        "--server-secret-kb", type=int, default=100, help="server side: size of each Secret (KB)"
    )
    ap.add_argument("--server-rounds", type=int, default=3, help="server side: rounds of K clients")
    ap.add_argument("--no-server-side", action="store_true", help="skip the server-side scenario")
    ap.add_argument("--help-runs", type=int, default=9, help="runs of `kstream --help` (median)")
    ap.add_argument("--startup-runs", type=int, default=9,
                    help="runs of the empty-namespace dump and kubectl get (median; 0: skip)")  # fmt: skip
    ap.add_argument("--journal-objects", type=int, default=100_000,
                    help="journal: objects in the base (the state-at-an-instant row)")  # fmt: skip
    ap.add_argument("--journal-events", type=int, default=1_000_000,
                    help="journal: change events (0: skip the journal row)")  # fmt: skip
    ap.add_argument("--export-objects", default="10000,100000",
                    help="export: archive sizes for the export row (empty: skip)")  # fmt: skip
    ap.add_argument("--no-s3", action="store_true", help="skip the upload to the local S3 server")
    ap.add_argument("--no-redact", action="store_true",
                    help="skip the redaction row (tools/bench_redact.py, after the dumps)")  # fmt: skip
    ap.add_argument("--redact-objects", type=int, default=20_000,
                    help="redaction: the Secrets of this many bench objects (--synthetic)")  # fmt: skip
    ap.add_argument(
        "--only-upload",
        action="store_true",
        help="at each N, run only the two archive rows (local file, local S3 server)",
    )
    ap.add_argument("--huge", action="store_true",
                    help="only the scale point: seed to each --huge-sizes N in turn, dump rows side by side "
                         "(tools/bench_huge.py; its own section of --out, the rest is kept; 15-30+ min)")  # fmt: skip
    ap.add_argument(
        "--huge-sizes",
        default="100000,300000",
        help="--huge: object counts (default 100000,300000)",
    )
    ap.add_argument(
        "--huge-repeat", type=int, default=3, help="--huge: runs per row at each N (median)"
    )
    ap.add_argument("--seed-procs", type=int, default=1,
                    help="--huge: client processes that seed (1: this process, 8 connections)")  # fmt: skip
    args = ap.parse_args(argv)
    global PEER
    from tools.bench_peer import build as build_peer

    PEER = build_peer()
    if args.huge:
        from tools.bench_huge import run as bench_huge

        hwork = Path(args.work).resolve()
        hwork.mkdir(parents=True, exist_ok=True)
        with open(hwork / "bench.log", "a") as hlog:
            log_huge = tee_log(hlog)
            bench_huge(hwork, Path(args.out), sorted({int(s) for s in args.huge_sizes.split(",") if s.strip()}),
                       args.huge_repeat, args.seed_procs, args.timeout, log_huge)  # fmt: skip
        return

    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.large and 100_000 not in sizes:
        sizes.append(100_000)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out_md = Path(args.out)
    results: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "args": vars(args),
        "load": {"start": os.getloadavg()},
        "sizes": [],
        "notes": [],
    }
    logf = open(work / "bench.log", "a")  # noqa: SIM115
    log = tee_log(logf)

    def publish() -> None:
        results["load"]["end"] = os.getloadavg()
        (work / "results.json").write_text(json.dumps(results, indent=2))
        from tools.bench_report import render

        previous = out_md.read_text() if out_md.exists() else ""
        out_md.write_text(render(results, previous))
        log(f"wrote {out_md}")

    def redact_step() -> None:
        if args.no_redact:
            return
        log(f"redaction: python -m tools.bench_redact --synthetic {args.redact_objects}")
        rd = results["redact"] = redaction(args.redact_objects, args.timeout)
        log(
            f"redaction: failed: {rd['error']}"
            if rd.get("error")
            else f"redaction: {rd['us_per_secret']:.1f} us per Secret ({rd['secrets']} Secrets)"
        )
        publish()

    log(f"machine: {results['machine']}")
    results["help"] = help_time(args.help_runs)
    log(f"kstream --help: median {results['help']['median']:.3f}s")

    if args.journal_events > 0:
        from tools.bench_journal import run as bench_journal

        log(f"journal: {args.journal_objects:,} objects, {args.journal_events:,} events")
        results["journal"] = bench_journal(
            work / "journal-bench", args.journal_objects, args.journal_events, log
        )
        publish()

    export_sizes = [int(x) for x in args.export_objects.split(",") if x.strip()]
    if export_sizes:
        from tools.bench_export import run as bench_export

        results["export"] = bench_export(work / "export-bench", export_sizes, log)
        publish()

    if not args.no_server_side:
        log(
            f"server side: K={args.clients}, {args.server_secrets} Secrets of {args.server_secret_kb} KB"
        )
        results["server_side"] = server_side(
            work,
            args.clients,
            args.server_secrets,
            args.server_secret_kb * 1024,
            args.server_rounds,
            log,
        )
        publish()

    if not sizes:
        redact_step()
        results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        publish()
        return
    cp = ControlPlane(work / "cp")
    if cp.state_file.exists():
        cp.stop()
    shutil.rmtree(work / "cp", ignore_errors=True)
    s3 = None
    try:
        if not args.no_s3:
            from tests.s3server import S3Server

            s3 = S3Server(work / "s3")
            s3.start()
            S3_ENV.update(s3.env())
            import botocore.session

            botocore.session.get_session().create_client(
                "s3",
                endpoint_url=s3.endpoint,
                region_name="us-east-1",
                aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
            ).create_bucket(Bucket=S3_BUCKET)
        cp.start()
        api = Api(cp)
        if args.startup_runs > 0:
            st = results["startup_empty"] = startup_empty(cp, work, args.startup_runs)
            log(f"empty-namespace dump: {st['median']:.3f}s, kubectl {st['kubectl_median']:.3f}s")
            publish()
        seeded = 0
        for n in sizes:
            t0 = time.monotonic()
            for a in range(seeded, n, 10_000):
                data.seed_range(api, a, min(n, a + 10_000))
                log(f"  seeded {min(n, a + 10_000):,} objects")
            rate = (n - seeded) / (time.monotonic() - t0)
            log(f"seeded objects {seeded}..{n} at {rate:.0f}/s")
            seeded = n
            entry: dict[str, Any] = {"n": n, "shape": data.shape(n), "seed_rate": rate, "load": {}}
            results["sizes"].append(entry)
            repeat = args.repeat if n <= 10_000 else args.repeat_large
            with tempfile.TemporaryDirectory(dir=work, prefix=f"out-{n}-") as tmp:
                tw = Path(tmp)
                warm_up(cp)
                cs = contenders_watchlist_server(cp)
                if s3 is not None:
                    cs += contenders_upload(cp)
                if args.only_upload:
                    cs = [c for c in cs if c.output.endswith("archive") or c.s3_key]
                    cs = [c for c in cs if "include" in c.name]
                if n > args.skip_models_above:
                    cs = [c for c in cs if c.name != "Python client, models"]
                    entry["skipped"] = [f"Python client, models (N > {args.skip_models_above})"]
                entry["load"]["before"] = os.getloadavg()
                log(f"N={n}: WatchList on, {len(cs)} contenders x {repeat}")
                rows = run_contenders(
                    cs,
                    "WatchList on",
                    tw,
                    repeat,
                    args.timeout,
                    log,
                    core_repeat=args.repeat_core,
                    server_pid=apiserver_pid(cp),
                )
                if args.only_upload:
                    entry["load"]["after"] = os.getloadavg()
                    entry["rows"] = [asdict(r) for r in rows]
                    publish()
                    continue
                log(f"N={n}: restarting kube-apiserver with WatchList=false")
                set_feature_gates(cp, "WatchList=false")
                try:
                    warm_up(cp)
                    rows += run_contenders(
                        contenders_list_server(cp),
                        "WatchList off",
                        tw,
                        repeat,
                        args.timeout,
                        log,
                        server_pid=apiserver_pid(cp),
                    )
                finally:
                    set_feature_gates(cp, "")
                entry["load"]["after"] = os.getloadavg()
            entry["rows"] = [asdict(r) for r in rows]
            publish()
    finally:
        cp.stop()
        if s3 is not None:
            s3.stop()
    redact_step()
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    publish()
    shutil.rmtree(work / "cp", ignore_errors=True)


if __name__ == "__main__":
    main()


__all__ = ["Measured", "main"]
