"""Staging directories beside an output, and the ones killed runs left behind.

A local output is made in a private directory beside its target and renamed
into place at the end: dump's `.NAME.XXXXXXXX.kstream-tmp` (`kstream/store/writers.py`),
export's `.NAME.kstream-export-XXXXXXXX` (`kstream/export.py`), `XXXXXXXX` being
`tempfile.mkdtemp`'s eight random characters. A run killed with `kill -9` (or a
power loss) leaves that directory behind, with up to the whole output in it.

`Staging.make` removes those a dead run left for the same target, then makes
the run's own and takes an exclusive `flock(2)` on it (an open O_DIRECTORY
descriptor) at once; the writer holds it until it has removed or renamed the
directory (`Staging.release`). The kernel drops the lock with the process,
however it ends, so "in use" is exactly "locked". Stale ones are removed only
when all of these hold (`remove_stale`):

- the name is exactly that of a staging directory of this target (another
  target's, or anything else with a similar name, is not);
- it is a real directory owned by this user (a symlink is never followed);
- a non-blocking flock on it succeeds (no live run holds it);
- its mtime is older than `GRACE` seconds, so that one another run has just
  made and not yet locked is never taken;
- no `.NAME.XXXXXXXX.kstream-old` is beside it: a directory output's swap cut
  between its two renames leaves the old snapshot there and the complete new
  one in the staging directory; both are kept for the user.

The cleanup is best effort: whatever fails (a permission error, a directory
gone meanwhile) leaves that directory and the run goes on. Journals are not
concerned (their directory's own recovery is `kstream/journal/directory.py`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kstream.dataclass import dataclass
from kstream.errors import OutputError
from kstream.printable import human_bytes

GRACE = 10.0  # seconds: a younger unlocked staging directory may be a live run's, not yet locked
TMP_SUFFIX = ".kstream-tmp"
EXPORT_INFIX = ".kstream-export-"
_RANDOM = "[a-z0-9_]{8}"  # tempfile's names


@dataclass
class Cleaned:
    """What `remove_stale` removed: directories, and the bytes of their files."""

    removed: int = 0
    freed: int = 0

    def message(self, target: Path) -> str:
        """One line for stderr ("" when nothing was removed)."""
        if not self.removed:
            return ""
        what = "directory" if self.removed == 1 else "directories"
        return (
            f"note: removed {self.removed} staging {what} of killed runs beside "
            f"{target} ({human_bytes(self.freed)} freed)"
        )


def stale_pattern(name: str, export: bool = False) -> re.Pattern[str]:
    """The names of the staging directories of the target `name`."""
    if export:
        return re.compile(re.escape(f".{name}{EXPORT_INFIX}") + _RANDOM)
    return re.compile(re.escape(f".{name}.") + _RANDOM + re.escape(TMP_SUFFIX))


def lock(path: Path) -> int:
    """An exclusive flock on the directory `path`, taken at once (OSError if
    another holds it: BlockingIOError); returns the descriptor that holds it."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    return fd


def remove_stale(target: Path, export: bool = False, now: float | None = None) -> Cleaned:
    """Remove the staging directories of `target` that no live run uses (see the
    module docstring); never raises for a directory it could not remove."""
    done = Cleaned()
    parent = target.parent
    pattern = stale_pattern(target.name, export)
    try:
        names = os.listdir(parent)
    except OSError:
        return done
    old = re.compile(re.escape(f".{target.name}.") + _RANDOM + re.escape(".kstream-old"))
    if not export and any(old.fullmatch(n) for n in names):
        return done  # a directory swap was cut: its two halves are the user's
    now = time.time() if now is None else now
    uid = os.getuid()
    for name in sorted(n for n in names if pattern.fullmatch(n)):
        path = parent / name
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
                continue
            fd = lock(path)
        except OSError:
            continue  # gone, a symlink, or a live run's
        try:
            if now - os.fstat(fd).st_mtime < GRACE:
                continue
            size = _tree_bytes(path)
            shutil.rmtree(path)
        except OSError:
            continue
        finally:
            os.close(fd)
        done.removed += 1
        done.freed += size
    return done


def _tree_bytes(path: Path) -> int:
    total = 0
    for top, _, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, f)).st_size
    return total


class Staging:
    """A run's own staging directory beside its target, locked while it exists."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def make(
        cls,
        target: Path,
        export: bool = False,
        note: Callable[[str], None] | None = None,
    ) -> Staging:
        """Remove the stale staging directories of `target` (saying so to `note`),
        then make this run's and lock it. OutputError when it cannot be made."""
        cleaned = remove_stale(target, export)
        if note is not None and cleaned.removed:
            note(cleaned.message(target))
        prefix, suffix = (
            (f".{target.name}{EXPORT_INFIX}", "") if export else (f".{target.name}.", TMP_SUFFIX)
        )
        try:
            path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
        except OSError as e:
            raise OutputError(f"cannot write {target}: {e.strerror or e}") from None
        try:
            fd: int | None = lock(path)
        except OSError:  # a file system without flock: no run can lock it, so
            fd = None  # no run's cleanup removes it either (best effort, as before)
        return cls(path, fd)

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock: after the directory was removed or renamed (again: nothing)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
