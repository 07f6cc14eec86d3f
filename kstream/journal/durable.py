"""Every step by which a journal's writer changes the disk, counted, so a test can
crash the writer at each one in turn.

The writer, the recovery and the directory's code go through `step()` just before
each creat, write, fsync, truncate, rename, unlink, mkdir or rmdir of a journal's
file (never per event: the events of a frame reach the file through zstd, and the
frame's end is one step). With `KSTREAM_CRASH_AT=N` in the environment (tests only)
the process ends with `os._exit(CRASH_EXIT)` just before its Nth step, as a
`kill -9` would leave it; with `KSTREAM_STOP_AT=N` it stops there (sleeps until
killed: a test races a second writer against it at that step); with
`KSTREAM_CRASH_TRACE=FILE` each step's name is appended to FILE (how a test
learns how many steps a run takes, and when a stopped one got there).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

CRASH_EXIT = 86  # the exit status of a crash point (never one of kstream's codes)

_AT = int(os.environ.get("KSTREAM_CRASH_AT") or 0)
_STOP = int(os.environ.get("KSTREAM_STOP_AT") or 0)
_TRACE = os.environ.get("KSTREAM_CRASH_TRACE") or ""
_count = 0


def step(what: str) -> None:
    """One step that changes the disk is about to happen."""
    if not (_AT or _STOP or _TRACE):
        return
    global _count
    _count += 1
    if _TRACE:
        with open(_TRACE, "a") as f:
            f.write(f"{_count} {what}\n")
    if _count == _AT:
        os._exit(CRASH_EXIT)
    if _count == _STOP:  # held there (a test races another process with it), until killed
        with open(_TRACE or os.devnull, "a") as f:
            f.write("stopped\n")
        while True:
            time.sleep(60)


def fsync_dir(path: Path) -> None:
    """Make a rename or a creation in `path` durable (a power cut, not only a kill)."""
    step(f"fsync-dir {path.name}")
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(src: Path, dst: Path) -> None:
    step(f"rename {src.name} {dst.name}")
    os.replace(src, dst)


def unlink(path: Path) -> None:
    step(f"unlink {path.name}")
    path.unlink(missing_ok=True)


def mkdir(path: Path) -> None:
    step(f"mkdir {path.name}")
    path.mkdir(mode=0o700, exist_ok=True)


def rmtree(path: Path) -> None:
    """Remove a directory: its files one step each, then itself."""
    if not path.is_dir() or path.is_symlink():
        unlink(path)
        return
    for p in sorted(path.iterdir()):
        rmtree(p) if p.is_dir() and not p.is_symlink() else unlink(p)
    step(f"rmdir {path.name}")
    path.rmdir()
