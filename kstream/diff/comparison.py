"""`Comparison`: the two sides opened, selected, prepared (verified, sorted), then
merged into changes. The jobs are its parts': `Side` prepares one snapshot,
`Selection` decides what is compared, `Merge` compares."""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from kstream.diff.merge import Merge
from kstream.diff.records import Change, Counts
from kstream.diff.selection import Selection
from kstream.diff.settings import Settings
from kstream.diff.side import ResInfo, Side
from kstream.store.snapshot import Snapshot


class Comparison:
    """Prepare both sides, then `changes()` yields one Change per differing
    object; `summary` is complete once `changes()` is exhausted.

    Use as a context manager: temporary files are removed on exit."""

    def __init__(
        self,
        old: Snapshot,
        new: Snapshot,
        settings: Settings,
        progress: Callable[[str], None] | None = None,
        live: str = "",
    ) -> None:
        self.settings = settings
        self.old = Side(old, "old")
        self.new = Side(new, "new")
        if live:  # "old" or "new": that side is a dump of the cluster just made
            (self.old if live == "old" else self.new).where = "the live cluster"
        self.progress = progress or (lambda _msg: None)
        self.resources: list[ResInfo] = []
        self.skipped: list[tuple[str, str]] = []
        self.warnings: list[str] = []
        self.selection = Selection(self.old, self.new, settings, self.warnings)
        self.merge = Merge(self.old, self.new, settings, self.selection.strip_ignores)
        # what the two dumps' selections leave out (Selection.note)
        self.selection_note = ""
        self._tmp: Path | None = None
        self._prepared = False

    # -- lifecycle
    def __enter__(self) -> Comparison:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @property
    def tmp(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="kstream-diff-", dir=self.settings.tmpdir))
        return self._tmp

    # -- the report
    @property
    def summary(self) -> dict[str, Counts]:
        return self.merge.summary

    @property
    def api_version_only(self) -> dict[str, int]:
        """Resource -> objects unchanged but for apiVersion (counted as unchanged)."""
        return self.merge.api_version_only

    @property
    def total(self) -> Counts:
        t = Counts()
        for c in self.summary.values():
            t.add(c)
        return t

    # -- preparation
    def prepare(self) -> None:
        """Read both snapshots through once: verify them, sort what needs it."""
        if self._prepared:
            return
        self._prepared = True
        sel = self.selection
        sel.from_dumps()
        # plain NDJSON sides learn their resources by reading; indexed ones from the manifest
        sel.merge_infos()
        for side in (self.old, self.new):
            if not side.indexed:
                self.progress(f"reading {side.where}")
                side.prepare_plain(
                    self.tmp,
                    functools.partial(sel.accept_read, side),
                    self.settings.sort_buffer,
                    self.progress,
                )
        self.merge.secrets_policy(self.warnings)
        sel.merge_infos()
        sel.check_names()
        infos = self._compared()
        for info in infos:
            for side in (self.old, self.new):
                if side.indexed and info.key in side.entries:
                    self.progress(f"checking {info.name} in {side.where}")
                    side.prepare_indexed(
                        info, sel.accept, self.tmp, self.settings.sort_buffer, self.progress
                    )
        self.resources = infos
        self.selection_note = sel.note()

    def _compared(self) -> list[ResInfo]:
        """The resources to compare, in (group, resource) order; those that
        cannot be compared go to `skipped` with the reason."""
        keys = set(self.old.infos) | set(self.new.infos)
        infos: list[ResInfo] = []
        for k in keys:
            info = self.new.infos.get(k) or self.old.infos[k]
            other = self.old.infos.get(k)
            if other is not None and other is not info:
                info.explicit = info.explicit or other.explicit
            if not self.selection.selected(info):
                continue
            why = self.old.incomplete.get(k) or self.new.incomplete.get(k)
            if why:
                which = self.old.where if k in self.old.incomplete else self.new.where
                self.skipped.append((info.name, f"incomplete in {which}: {why}"))
                continue
            # on one side only, and the other side's dump could not discover its
            # group: not known to be added or removed
            lacking = [sd for sd in (self.old, self.new) if k not in sd.infos]
            if lacking and info.group in lacking[0].undiscovered:
                sd = lacking[0]
                self.skipped.append(
                    (info.name, f"not in {sd.where}: {sd.undiscovered[info.group]}")
                )
                continue
            infos.append(info)
        infos.sort(key=lambda i: (i.group, i.resource or i.kind.lower()))
        return infos

    # -- merging
    def changes(self) -> Iterator[Change]:
        self.prepare()
        yield from self.merge.changes(self.resources)
