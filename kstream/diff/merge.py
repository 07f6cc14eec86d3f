"""Merging the two sorted streams of each resource into `Change`s: at most one
object of each side parsed and held at a time; byte-identical lines are equal
without parsing. Secrets go through `SecretMasker` (raw values redacted like the
other side, shown hidden)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kstream import paths
from kstream.diff.fields import SecretMasker, field_changes
from kstream.diff.records import Change, ChangeKind, Counts, FieldChange, KindKey
from kstream.diff.settings import Settings
from kstream.diff.side import ResInfo, Side, parse_line, uid_of
from kstream.errors import SnapshotError
from kstream.resources import split_api_version
from kstream.transform import redact_secret


class Merge:
    """The comparison proper, resource by resource (`changes(resources)`):
    `summary` (Counts per resource) and `api_version_only` fill as it goes."""

    def __init__(
        self, old: Side, new: Side, settings: Settings, strip_ignores: list[paths.FieldPath]
    ) -> None:
        self.old = old
        self.new = new
        self.settings = settings
        self.strip_ignores = strip_ignores  # the Selection's, filled before the merge
        self.summary: dict[str, Counts] = {}
        # resource -> objects unchanged but for apiVersion (counted as unchanged)
        self.api_version_only: dict[str, int] = {}

    def secrets_policy(self, warnings: list[str]) -> None:
        """What cannot be compared about Secret values, said once (after the
        sides without a manifest were read): raw values against HMAC digests
        without the key, two different digests."""
        o, n = self.old, self.new
        for side, other in ((o, n), (n, o)):
            if (
                side.raw_secrets
                and "hmac-sha256" in other.secret_digests
                and not self.settings.secret_key
            ):
                warnings.append(
                    f"{other.where} has HMAC-keyed Secret digests and {side.where} raw values: "
                    "give --secret-key-file to compare them"
                )
        if (
            o.secrets == n.secrets == "redact"
            and o.digest != n.digest
            and o.digest is not None
            and n.digest is not None
        ):
            warnings.append(
                f"the snapshots redact Secrets differently ({o.digest} vs {n.digest}): "
                "every Secret value will differ"
            )

    def _align_secrets(self, oa: dict[str, Any], ob: dict[str, Any]) -> None:
        """Raw Secret values on one side and digests on the other (whichever
        tool wrote them: kubectl's JSON, plain NDJSON, a dump with --secrets
        include): the raw side is digested with the other's rule (sha256, or
        HMAC under --secret-key-file), so equal values compare equal."""
        ra, rb = self.old.secret_rule(oa), self.new.secret_rule(ob)
        for obj, mine, theirs in ((oa, ra, rb), (ob, rb, ra)):
            if mine != "raw" or theirs not in ("sha256", "hmac-sha256"):
                continue
            key = self.settings.secret_key if theirs == "hmac-sha256" else None
            if theirs == "hmac-sha256" and not key:
                continue  # said by secrets_policy; the values show as "(changed)"
            redact_secret(obj, key)

    def changes(self, resources: list[ResInfo]) -> Iterator[Change]:
        for info in resources:
            counts = self.summary.setdefault(info.name, Counts())
            yield from self._diff_resource(info, counts)

    def _ignores(self, k: KindKey) -> list[paths.FieldPath]:
        out = [i.path for i in self.settings.ignore if i.kind is None or i.kind == k]
        return out + self.strip_ignores

    def _stream(self, side: Side, info: ResInfo) -> Iterator[tuple[str, bytes]]:
        src = side.sources.get(info.key)
        if src is None:
            return
        last: str | None = None
        for key, line in src():
            if last is not None and key <= last:
                if key == last:
                    ns, _, name = key.partition("/")
                    raise SnapshotError(
                        f"{side.where}: {info.name} {ns + '/' if ns else ''}{name} appears twice"
                    )
                raise SnapshotError(f"{side.where}: changed while being compared")
            last = key
            yield key, line

    def _diff_resource(self, info: ResInfo, counts: Counts) -> Iterator[Change]:
        ignores = self._ignores(info.key)
        secret = SecretMasker.applies_to(info.key)
        a = self._stream(self.old, info)
        b = self._stream(self.new, info)
        ka, la = next(a, (None, b""))
        kb, lb = next(b, (None, b""))
        while ka is not None or kb is not None:
            if kb is None or (ka is not None and ka < kb):
                assert ka is not None
                counts.removed += 1
                yield self._whole("removed", info, parse_line(la, self.old.where), ka)
                ka, la = next(a, (None, b""))
            elif ka is None or kb < ka:
                counts.added += 1
                yield self._whole("added", info, parse_line(lb, self.new.where), kb)
                kb, lb = next(b, (None, b""))
            else:
                if la == lb:
                    counts.unchanged += 1
                else:
                    ch = self._compare(info, ka, la, lb, ignores, secret)
                    if ch is None:
                        counts.unchanged += 1
                    else:
                        setattr(counts, ch.change, getattr(counts, ch.change) + 1)
                        yield ch
                ka, la = next(a, (None, b""))
                kb, lb = next(b, (None, b""))

    def _whole(self, change: ChangeKind, info: ResInfo, obj: dict[str, Any], key: str) -> Change:
        ns, _, name = key.partition("/")
        _, version = split_api_version(str(obj.get("apiVersion") or ""))
        uid = uid_of(obj)
        return Change(
            change,
            info.group,
            version or info.version,
            info.resource,
            info.kind,
            ns,
            name,
            old_uid=uid if change == "removed" else "",
            new_uid=uid if change == "added" else "",
        )

    def _compare(
        self,
        info: ResInfo,
        key: str,
        la: bytes,
        lb: bytes,
        ignores: list[paths.FieldPath],
        secret: bool,
    ) -> Change | None:
        oa = parse_line(la, self.old.where)
        ob = parse_line(lb, self.new.where)
        ns, _, name = key.partition("/")
        _, version = split_api_version(str(ob.get("apiVersion") or ""))
        ua, ub = uid_of(oa), uid_of(ob)
        recreated = ua and ub and ua != ub and self.settings.same_cluster
        change: ChangeKind = "recreated" if recreated else "modified"
        if secret:
            self._align_secrets(oa, ob)
        for p in ignores:
            paths.delete(oa, p, prune=True)
            paths.delete(ob, p, prune=True)
        diffs = field_changes(oa, ob)
        if (
            not self.settings.show_api_version_changes
            and diffs
            and all(path == ("apiVersion",) for path, _, _ in diffs)
        ):
            # the same object read through another version (a CRD's preferred
            # version changed): no content change
            diffs = []
            if change == "modified":
                self.api_version_only[info.name] = self.api_version_only.get(info.name, 0) + 1
        if not diffs and change == "modified":
            return None
        fields = []
        for path, old, new in diffs:
            if secret and SecretMasker.sensitive(path):
                old, new = SecretMasker.mask(old), SecretMasker.mask(new)
            fields.append(FieldChange(paths.render(path), old, new))
        return Change(
            change,
            info.group,
            version or info.version,
            info.resource,
            info.kind,
            ns,
            name,
            fields,
            ua,
            ub,
        )
