"""Unit.notes (what the reader noted: changes folded before the end marker, a
410 restart, a recount) reach the user: under the summary table, as a field of
the plain layout's line, and in the manifest's entry."""

from __future__ import annotations

import re

from kstream.cli import render
from kstream.cluster.stream import Unit
from kstream.dump import _entry
from kstream.store.format import Entry
from tests.test_render import draw, unit

FOLDED = "3 changes folded before the marker"
RESTARTED = "resource version expired (410): restarted"


def noted() -> list[Unit]:
    cms = unit("configmaps", "default", objects=40, size=4000)
    cms.notes.append(FOLDED)
    leases = unit("leases", None)  # complete and empty: no row of its own
    leases.notes += [RESTARTED, RESTARTED]
    plain = unit("secrets", "default", objects=2, size=200)
    return [cms, leases, plain]


def test_notes_under_the_summary_table() -> None:
    text = draw(render.summary(noted(), "kstream dump → x.zst"), 120)
    assert f"configmaps -n default: {FOLDED}" in text
    assert f"leases: {RESTARTED}; {RESTARTED}" in text  # its row is hidden, not its notes
    assert "secrets -n default:" not in text


def test_notes_on_the_plain_summary_line() -> None:
    lines = render.summary_lines(noted(), "kstream dump → x.zst")
    fields = [dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', ln)) for ln in lines[1:4]]
    assert fields[0]["notes"] == f'"{FOLDED}"'
    assert fields[1]["notes"] == f'"{RESTARTED}; {RESTARTED}"'
    assert "notes" not in fields[2]


def test_notes_in_the_manifest_entry() -> None:
    cms, _, plain = noted()
    e = _entry(cms, None)
    assert e.to_json()["notes"] == [FOLDED]
    assert Entry.from_json(e.to_json()).notes == [FOLDED]
    assert "notes" not in _entry(plain, None).to_json()  # none: left out
