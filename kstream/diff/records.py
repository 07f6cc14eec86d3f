"""What diff reports: `Change` (one object), `FieldChange` (one leaf), `Counts`
(per resource), and the identity types they share."""

from __future__ import annotations

from dataclasses import field
from typing import Any, Literal

from kstream.dataclass import dataclass

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

KindKey = tuple[str, str]  # (group, kind): a resource as both snapshot kinds know it
ChangeKind = Literal["added", "removed", "modified", "recreated"]


@dataclass
class FieldChange:
    path: str
    old: Any = MISSING
    new: Any = MISSING

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path}
        if self.old is not MISSING:
            d["old"] = self.old
        if self.new is not MISSING:
            d["new"] = self.new
        return d


@dataclass
class Change:
    change: ChangeKind
    group: str
    version: str
    resource: str
    kind: str
    namespace: str
    name: str
    fields: list[FieldChange] = field(default_factory=list)
    old_uid: str = ""
    new_uid: str = ""

    @property
    def resource_name(self) -> str:
        base = self.resource or self.kind
        return f"{base}.{self.group}" if self.group else base

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "change": self.change,
            "group": self.group,
            "version": self.version,
            "resource": self.resource,
            "kind": self.kind,
            "namespace": self.namespace or None,
            "name": self.name,
        }
        if self.change in ("modified", "recreated"):
            d["fields"] = [f.to_json() for f in self.fields]
        if self.change == "recreated":
            d["uid"] = {"old": self.old_uid, "new": self.new_uid}
        return d


@dataclass
class Counts:
    added: int = 0
    removed: int = 0
    modified: int = 0
    recreated: int = 0
    unchanged: int = 0

    @property
    def changed(self) -> int:
        return self.added + self.removed + self.modified + self.recreated

    def add(self, other: Counts) -> None:
        for k in ("added", "removed", "modified", "recreated", "unchanged"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)
