"""The files of a journal, wherever it is: a local directory or an object-storage
prefix (`s3://BUCKET/PREFIX/`, the same names as keys under PREFIX/, see
docs/objectstorage.md). `kstream/journal/reader.py` reads a journal only through
this layer, so every journal reader (count, count --events, diff, log, serve,
export, with `@T` and `@~T`) takes both; commands never see it.

Names are relative to the journal: `journal.json`, `base.ndjson.zst`,
`segments/000001.events.zst`, `bases/000001.ndjson.zst`.

- `LocalFiles(directory)`: plain files.
- `RemoteFiles(prefix)`: the prefix is listed once (LIST, which also gives each
  object's size and ETag, so no HEAD per segment); `open()` is a seekable file
  whose small reads are ranged GETs of a few KB (`objstore.RemoteObject.reader()`:
  a segment's header, footer and manifest take two); `range()` one streamed
  GET of a byte range (all the frames of a segment being read). Nothing is
  downloaded whole. A journal in object storage
  has no open segment (the writer stages it locally and uploads it sealed) and
  no lock. Errors of the store (unknown bucket, no permission ...) come from
  `objstore.translate`: one line, their exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from kstream.errors import SnapshotError
from kstream.journal.format import META_NAME

if TYPE_CHECKING:
    from kstream.store.objstore import Location, RemoteObject


class JournalFiles:
    """The files of one journal (a local directory; `RemoteFiles` for s3://)."""

    remote = False

    def __init__(self, root: str) -> None:
        self.root = root  # the journal's name as given (a directory, s3://BUCKET/PREFIX)

    def where(self, name: str) -> str:
        """How messages name a file of the journal (a path, or s3://BUCKET/KEY)."""
        return str(Path(self.root) / name)

    def exists(self, name: str) -> bool:
        return Path(self.root, name).is_file()

    def names(self, sub: str) -> list[str]:
        """The names of the files directly under `sub` (`segments`, `bases`),
        unsorted; none when there is no such directory."""
        d = Path(self.root, sub)
        if not d.is_dir():
            return []
        return [c.name for c in d.iterdir()]

    def read(self, name: str) -> bytes:
        """A small file, whole (journal.json)."""
        try:
            return Path(self.root, name).read_bytes()
        except OSError as e:
            raise SnapshotError(f"{self.where(name)}: {e.strerror}") from None

    def open(self, name: str) -> IO[bytes]:
        """A seekable binary file."""
        try:
            return open(Path(self.root, name), "rb")
        except OSError as e:
            raise SnapshotError(f"{self.where(name)}: {e.strerror}") from None

    def range(self, name: str, start: int, end: int) -> IO[bytes]:
        """Bytes [start, end) of a file to read() in order (reads may go on past
        `end` on a local file: callers read no more than they asked for)."""
        f = self.open(name)
        f.seek(start)
        return f

    def snapshot_name(self, name: str) -> str:
        """What `store.snapshot.open_snapshot` takes for a file of the journal."""
        return str(Path(self.root) / name)


class RemoteFiles(JournalFiles):
    """A journal under an object-storage prefix."""

    remote = True

    def __init__(self, root: str, prefix: Location) -> None:
        super().__init__(root)
        self.prefix = prefix.as_prefix()
        self._listing: dict[str, dict[str, Any]] | None = None
        self._objects: dict[str, RemoteObject] = {}

    def where(self, name: str) -> str:
        return self.prefix.child(name).url

    def _listed(self) -> dict[str, dict[str, Any]]:
        """Every key under the prefix (relative name -> size and ETag), listed once."""
        if self._listing is None:
            from kstream.store import objstore

            n = len(self.prefix.key)
            self._listing = {
                o["Key"][n:]: o for o in objstore.list_objects(self.prefix) if o["Key"][n:]
            }
        return self._listing

    def exists(self, name: str) -> bool:
        return name in self._listed()

    def names(self, sub: str) -> list[str]:
        head = sub.rstrip("/") + "/"
        return [
            k[len(head) :]
            for k in self._listed()
            if k.startswith(head) and "/" not in k[len(head) :]
        ]

    def object(self, name: str) -> RemoteObject:
        """The object of a file (from the listing; a HEAD for one not listed)."""
        from kstream.store import objstore

        obj = self._objects.get(name)
        if obj is not None:
            return obj
        loc = self.prefix.child(name)
        listed = self._listed().get(name)
        if listed is not None:
            obj = objstore.RemoteObject(
                loc, {"ContentLength": listed.get("Size"), "ETag": listed.get("ETag")}
            )
        else:
            obj = objstore.RemoteObject.open(loc)
            if obj is None:
                raise SnapshotError(f"{loc.url}: no such object")
        self._objects[name] = obj
        return obj

    def read(self, name: str) -> bytes:
        obj = self.object(name)
        return obj.get(0, obj.size)

    def open(self, name: str) -> IO[bytes]:
        return self.object(name).reader()

    def range(self, name: str, start: int, end: int) -> IO[bytes]:
        return self.object(name).stream(start, end)

    def snapshot_name(self, name: str) -> str:
        return self.where(name)


def journal_files(root: str) -> JournalFiles:
    """The files of the journal `root` names (a directory or s3://BUCKET/PREFIX)."""
    from kstream.store.objstore import is_url

    if is_url(root):
        from kstream.store import objstore

        return RemoteFiles(root, objstore.parse(root))
    return JournalFiles(root)


def is_journal(root: str) -> bool:
    """Whether `root` holds a journal (its journal.json): a local directory, or an
    object-storage prefix (one HEAD; errors of the store are raised)."""
    from kstream.store.objstore import is_url

    if is_url(root):
        from kstream.store import objstore

        return objstore.exists(objstore.parse(root).as_prefix().child(META_NAME))
    p = Path(root)
    return p.is_dir() and (p / META_NAME).is_file()
