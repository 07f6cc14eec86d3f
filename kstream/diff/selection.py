"""Which resources and objects a diff compares: this command line's selection
(`-r`, `--exclude`, `-n`, `-l`), and, when the two dumps selected differently,
only what both selected, with one note saying what was left out and why."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from kstream import paths
from kstream.diff.fields import SecretMasker
from kstream.diff.records import KindKey
from kstream.diff.settings import (
    DUMP_OPTIONS,
    DumpSelection,
    Settings,
    field_selector_matches,
    parse_field_selector,
)
from kstream.diff.side import ResInfo, Side, is_named
from kstream.errors import UsageError
from kstream.selector import LabelSelector


class Selection:
    """What both sides are compared on. `selected(info)` for a resource,
    `accept(info, obj)` for an object; `from_dumps()` reads the two manifests'
    selections (their `--strip` paths end in `strip_ignores`), `note()` says what
    they left out. Warnings go to the Comparison's list."""

    def __init__(self, old: Side, new: Side, settings: Settings, warnings: list[str]) -> None:
        self.old = old
        self.new = new
        self.settings = settings
        self.warnings = warnings
        self.labels = LabelSelector(settings.scope.label_selector)
        self.namespaces = frozenset(settings.scope.namespaces)
        self.strip_ignores: list[paths.FieldPath] = []
        self._cache: dict[KindKey, bool] = {}
        # what the two dumps' selections leave out (see from_dumps)
        self._filters: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], bool]]] = []
        self._left_objects: dict[str, int] = {}
        self._left_resources: dict[KindKey, tuple[ResInfo, str, str]] = {}  # (info, where, why)
        self._strip_note = ""
        self._differ: list[str] = []

    def merge_infos(self) -> None:
        """Share what one side's manifest knows (plural, scope) with the other."""
        for a, b in ((self.old, self.new), (self.new, self.old)):
            for k, info in a.infos.items():
                other = b.infos.get(k)
                if other is None:
                    continue
                if not info.resource and other.resource:
                    info.resource = other.resource
                if info.namespaced is None:
                    info.namespaced = other.namespaced

    def selected(self, info: ResInfo) -> bool:
        s = self.settings.scope
        if s.resources:
            if not any(info.matches(t) for t in s.resources):
                return False
            info.explicit = True
        if any(info.matches(t) for t in s.exclude):
            return False
        for side in (self.old, self.new):
            why = self._outside(side, info)
            if why:
                if not (self.namespaces and info.namespaced is False and not info.explicit):
                    # (else this command's own -n leaves it out anyway: nothing to say)
                    self._left_resources[info.key] = (info, side.where, why)
                return False
        return True

    def _outside(self, side: Side, info: ResInfo) -> str:
        """Why `info` was not selected by `side`'s dump ("" when it was, or
        when it simply did not exist then: a real addition or removal)."""
        sel = side.selection
        if sel is None or info.key in side.infos:
            return ""
        if sel.resources:
            return f"-r {','.join(sel.resources)}"
        if any(info.matches(t) for t in sel.exclude):
            return f"--exclude {','.join(sel.exclude)}"
        if any(is_named(info, n) for n in sel.by_default):
            return "excluded by default"
        if any(is_named(info, n) for n in sel.not_watchable):
            return "cannot be watched, read only when named with -r"
        if sel.namespaces and info.namespaced is False:
            return "-n leaves cluster-scoped resources out"
        if SecretMasker.applies_to(info.key) and sel.secrets == "exclude":
            return "--secrets exclude"
        return ""

    def accept(self, info: ResInfo, obj: dict[str, Any], tally: bool = False) -> bool:
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = {}
        if self.namespaces:
            ns = md.get("namespace")
            if ns:
                if ns not in self.namespaces:
                    return False
            elif not info.explicit:
                return False  # cluster-scoped: only when named with -r, as dump does
        if not self.labels.matches(md.get("labels")):
            return False
        for what, keep in self._filters:
            if not keep(md, obj):
                if tally:
                    self._left_objects[what] = self._left_objects.get(what, 0) + 1
                return False
        return True

    def check_names(self) -> None:
        known = list(self.old.infos.values()) + list(self.new.infos.values())
        both_indexed = self.old.indexed and self.new.indexed
        for opt, tokens in (
            ("--resource", self.settings.scope.resources),
            ("--exclude", self.settings.scope.exclude),
        ):
            for t in tokens:
                if not any(i.matches(t) for i in known):
                    msg = f'{opt}: no resource "{t}" in either snapshot'
                    if both_indexed:
                        raise UsageError(msg)
                    self.warnings.append(msg)

    def from_dumps(self) -> None:
        """When the two dumps selected differently, compare only what both
        selected: each known side's -n, -l and --field-selector filter the
        objects of both, its --strip paths are ignored, and a resource only one
        side has is left out when the other's selection did not include it
        (`_outside`)."""
        for side, other in ((self.old, self.new), (self.new, self.old)):
            sel = side.selection
            if sel is None:
                continue
            osel = other.selection

            def differs(key: str, sel: DumpSelection = sel, osel: Any = osel) -> bool:
                return bool(sel.option(key)) and (
                    osel is None or osel.option(key) != sel.option(key)
                )

            if differs("namespaces"):

                def in_namespaces(
                    md: dict[str, Any], _o: Any, nss: frozenset[str] = frozenset(sel.namespaces)
                ) -> bool:
                    return not md.get("namespace") or md["namespace"] in nss

                self._filters.append(
                    (f"outside {side.where}'s -n {','.join(sel.namespaces)}", in_namespaces)
                )
            if differs("label_selector"):
                try:
                    reqs = LabelSelector(sel.label_selector)
                except UsageError:
                    self.warnings.append(
                        f"cannot evaluate {side.where}'s label selector {sel.label_selector!r}"
                    )
                else:

                    def by_labels(md: dict[str, Any], _o: Any, reqs: Any = reqs) -> bool:
                        return bool(reqs.matches(md.get("labels")))

                    self._filters.append(
                        (f"outside {side.where}'s -l {sel.label_selector}", by_labels)
                    )
            if differs("field_selector"):
                try:
                    freqs = parse_field_selector(sel.field_selector)
                except UsageError:
                    self.warnings.append(
                        f"cannot evaluate {side.where}'s field selector {sel.field_selector!r}"
                    )
                else:

                    def by_fields(_md: Any, o: dict[str, Any], freqs: Any = freqs) -> bool:
                        return field_selector_matches(freqs, o)

                    self._filters.append(
                        (
                            f"outside {side.where}'s --field-selector {sel.field_selector}",
                            by_fields,
                        )
                    )
            stripped = [p for p in sel.strip if osel is None or p not in osel.strip]
            for p in stripped:
                with contextlib.suppress(ValueError):
                    self.strip_ignores.append(paths.parse(p))
            if stripped and osel is not None:
                self._strip_note += (
                    f"{'; ' if self._strip_note else ''}fields {', '.join(stripped)} "
                    f"(--strip of {side.where})"
                )
        o, n = self.old.selection, self.new.selection
        if o is not None and n is not None:
            self._differ = [opt for key, opt in DUMP_OPTIONS if o.option(key) != n.option(key)]

    def note(self) -> str:
        """One line: what the dumps' different selections left out, and why."""
        left: list[str] = []
        by_why: dict[tuple[str, str], list[str]] = {}
        for info, where, why in sorted(self._left_resources.values(), key=lambda x: x[0].name):
            by_why.setdefault((where, why), []).append(info.name)
        for (where, why), names in by_why.items():
            left.append(f"{', '.join(names)} (not selected by {where}: {why})")
        for what, count in self._left_objects.items():
            left.append(f"{count} object{'s' if count != 1 else ''} {what}")
        if self._strip_note:
            left.append(self._strip_note)
        unknown = [s for s in (self.old, self.new) if s.selection is None]
        tail = f"left out: {'; '.join(left)}" if left else "nothing left out"
        if len(unknown) == 1:
            return (
                f"{unknown[0].where} has no manifest, so what its dump selected is unknown: "
                "only this command line's selection applies to it" + (f"; {tail}" if left else "")
            )
        if self._differ:
            return (
                f"the snapshots were dumped with different {', '.join(self._differ)}: "
                f"only what both selected is compared; {tail}"
            )
        return tail if left else ""

    def accept_read(self, side: Side, k: KindKey, obj: dict[str, Any]) -> bool:
        """A side without a manifest, read through once: whether `obj` is
        compared (its resource's selection decided at its first object)."""
        info = side.infos[k]
        if k not in self._cache:
            self.merge_infos()
            self._cache[k] = self.selected(info)
        return self._cache[k] and self.accept(info, obj, tally=True)
