"""Measure one command as a whole process: wall time, CPU time, peak RSS.

The command runs as a child; a poller (psutil for the process tree) reads every
SAMPLE seconds the kernel's RSS high-water mark (VmHWM in /proc/PID/status) of
the child and all its descendants and sums them (a shell pipeline counts whole).
VmHWM is monotonic for the life of a program image, so a peak between two
samples is not missed. (rusage's ru_maxrss is not used: Linux carries the
parent's high-water mark across fork+exec, so it would report the benchmark
process's own size for small children.) When the child ends it is reaped with
os.wait4, whose rusage gives the exact CPU time (user + system, including
descendants it waited for).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE = 0.01


@dataclass
class Measured:
    wall: float = 0.0  # seconds, spawn to exit
    cpu: float = 0.0  # seconds, user + system
    rss: int = 0  # peak bytes
    rc: int = 0
    out_bytes: int = 0  # size of the output file, when there is one
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.error


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _tree_hwm(p: psutil.Process, seen: dict[int, int]) -> int:
    """Sum over the tree of each process's high-water mark; processes that have
    exited keep the last value seen for them."""
    try:
        procs = [p, *p.children(recursive=True)]
    except psutil.Error:
        procs = []
    for q in procs:
        v = _hwm(q.pid)
        if v:
            seen[q.pid] = max(seen.get(q.pid, 0), v)
    return sum(seen.values())


def measure(
    cmd: list[str] | str,
    *,
    stdout: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 1800.0,
    shell: bool = False,
    out_file: Path | None = None,
) -> Measured:
    """Run cmd to completion and measure it. stdout goes to the file `stdout`
    (else /dev/null); out_file (or stdout) is the output whose size is reported."""
    out = open(stdout, "wb") if stdout else open(os.devnull, "wb")  # noqa: SIM115
    err = tempfile.TemporaryFile()  # noqa: SIM115
    t0 = time.perf_counter()
    try:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, shell=shell
        )
    finally:
        out.close()
    ps = psutil.Process(proc.pid)
    peak = 0
    seen: dict[int, int] = {}
    status = 0
    ru = None
    deadline = t0 + timeout
    killed = False
    try:
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            peak = max(peak, _tree_hwm(ps, seen))
            if time.perf_counter() > deadline and not killed:
                killed = True
                for q in [ps, *ps.children(recursive=True)]:
                    try:
                        q.kill()
                    except psutil.Error:
                        pass
            time.sleep(SAMPLE)
    finally:
        proc.returncode = os.waitstatus_to_exitcode(status) if ru is not None else -9
    wall = time.perf_counter() - t0
    err.seek(0)
    stderr = err.read().decode("utf-8", "replace")
    err.close()
    m = Measured(wall=wall, rc=proc.returncode)
    if ru is not None:
        m.cpu = ru.ru_utime + ru.ru_stime
    m.rss = peak
    if killed:
        m.error = f"killed after {timeout:.0f}s"
    elif m.rc != 0:
        last = stderr.strip().splitlines()[-1:] or [""]
        m.error = f"exit {m.rc}: {last[0][:200]}"
    target = out_file or stdout
    if target is not None:
        try:
            p = Path(target)
            m.out_bytes = (
                sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                if p.is_dir()
                else p.stat().st_size
            )
        except OSError:
            pass
    return m
