"""Every source a user may name, opened by one function above the store and the
journal: `open_source()` is what count, diff, serve and log call.

- a snapshot file (archive, NDJSON, compressed NDJSON, a JSON List document), a
  snapshot directory, `-` (stdin), `s3://BUCKET/KEY` or `s3://BUCKET/PREFIX/`:
  `kstream/store/snapshot.py`'s `open_snapshot()`;
- a journal (`JOURNAL/`: its latest state; `JOURNAL/@TIME`: its state at that
  instant), a local directory or `s3://BUCKET/PREFIX/` (`kstream/journal/files.py`):
  `kstream/journal/reader.py`'s `open_state()`, which folds the journal into a
  temporary archive and opens that as a snapshot.
"""

from __future__ import annotations

from pathlib import Path

from kstream.errors import SnapshotError
from kstream.journal.reader import INSTANT_SEP, is_journal, open_state
from kstream.store.format import MANIFEST_NAME
from kstream.store.objstore import is_url
from kstream.store.snapshot import Snapshot, open_snapshot


def is_journal_name(path: str) -> bool:
    """Whether `path` may name a journal (`JOURNAL/@TIME`, a directory that holds
    no snapshot manifest, `s3://BUCKET/PREFIX/` or `s3://BUCKET/PREFIX/@TIME`);
    `open_state` decides whether it is one (in object storage: a HEAD of
    PREFIX/journal.json)."""
    if path == "-":
        return False
    if is_url(path):
        return path.endswith("/") or INSTANT_SEP in path
    p = Path(path)
    return "@" in path or (p.is_dir() and not (p / MANIFEST_NAME).exists())


def open_source(path: str) -> Snapshot:
    """Open what `path` names (see the module docstring) as a `Snapshot`; raise
    SnapshotError for what is none of them."""
    if is_journal_name(path):
        state = open_state(path)
        if state is not None:
            return state
    try:
        return open_snapshot(path)
    except SnapshotError as e:
        # s3://BUCKET/PREFIX (no slash) naming no object may be a journal's prefix
        absent = str(e).endswith(": no such object")
        if absent and is_url(path) and not is_journal_name(path) and is_journal(path):
            state = open_state(path)
            if state is not None:
                return state
        if absent and is_url(path) and INSTANT_SEP in path:
            head = path.rpartition(INSTANT_SEP)[0].rstrip("/")
            raise SnapshotError(
                f"{path}: no journal under {head}/ (no journal.json) and no object of that name"
            ) from None
        raise
