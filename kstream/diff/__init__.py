"""What changed between two snapshots: added, removed, modified and recreated
objects, resource by resource, in bounded memory.

Identity of an object: (API group, kind) for its resource, then namespace and
name. The same identity with another `metadata.uid` is *recreated*, not
modified. Kind rather than the plural resource name is the resource key so that
an archive (whose manifest knows both) compares with a plain NDJSON file (whose
objects only carry apiVersion and kind).

How memory stays bounded: each side is first *prepared*, resource by resource,
into a stream of `(key, line)` sorted by `namespace/name` (the server's order):

- archive / directory: the resource's entries are read once to check the order
  (which also verifies every checksum and count); when in order they are read
  again for the merge, otherwise they are sorted externally (sorted runs in
  temporary files, merged with heapq).
- plain NDJSON (no manifest): one pass partitions the lines into a temporary
  file per resource, tracking the order; unsorted partitions are sorted
  externally.

Every input byte is therefore verified before the first change is yielded: a
truncated or corrupted snapshot raises SnapshotError, never a partial diff.
Then the two sorted streams of each resource are merged; at most one object of
each side is held at a time (plus one external-sort buffer while preparing).

Modules, one job each: `settings` (what is compared: ignores, Settings, what a
dump selected, `dump_like` for --live), `side` (one snapshot prepared into sorted
sources; the external sort), `selection` (which resources and objects both sides
are compared on, and the note about different selections), `merge` (the sorted
streams merged into changes, Secrets redacted and masked), `fields` (two objects
compared leaf by leaf; `SecretMasker`), `records` (`Change`, `FieldChange`,
`Counts`), `comparison` (`Comparison`, which runs them in order).
"""

from __future__ import annotations

from kstream.diff.comparison import Comparison
from kstream.diff.fields import DIGEST_PREFIXES, HIDDEN, LAST_APPLIED, SecretMasker, field_changes
from kstream.diff.records import MISSING, Change, ChangeKind, Counts, FieldChange, KindKey
from kstream.diff.settings import (
    DEFAULT_IGNORES,
    DUMP_OPTIONS,
    KIND_IGNORES,
    SORT_BUFFER,
    STATUS_IGNORE,
    DumpSelection,
    Ignore,
    Settings,
    dump_like,
    field_selector_matches,
    ignore_list,
    namespaces_held,
    parse_field_selector,
)
from kstream.diff.side import ResInfo, Side, name_key

__all__ = [
    "DEFAULT_IGNORES",
    "DIGEST_PREFIXES",
    "DUMP_OPTIONS",
    "HIDDEN",
    "KIND_IGNORES",
    "LAST_APPLIED",
    "MISSING",
    "SORT_BUFFER",
    "STATUS_IGNORE",
    "Change",
    "ChangeKind",
    "Comparison",
    "Counts",
    "DumpSelection",
    "FieldChange",
    "Ignore",
    "KindKey",
    "ResInfo",
    "SecretMasker",
    "Settings",
    "Side",
    "dump_like",
    "field_changes",
    "field_selector_matches",
    "ignore_list",
    "name_key",
    "namespaces_held",
    "parse_field_selector",
]
