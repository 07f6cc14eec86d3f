"""diff's outputs take any string a JSON document may hold (issue 22.3, diff's
part): a valid "\\ud800" escape (a lone surrogate, which UTF-8 cannot encode) in a
value, a key, a name or a multi-line value is written visibly as that escape,
with the normal exit code, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import kstream

OLD = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c\ud83d", "namespace": "a"},
    "data": {"k": "v", "lines": "one\ntwo\n"},
}
NEW = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c\ud83d", "namespace": "a"},
    "data": {"k": "\ud800x", "k\udc00": "y", "lines": "one\nt\udfffo\n"},
}


def write(path: Path, obj: dict[str, object]) -> Path:
    path.write_text(json.dumps(obj) + "\n")  # ensure_ascii: the escapes as written
    assert "\\ud8" in path.read_text()
    return path


def test_text_output_shows_lone_surrogates_escaped(tmp_path: Path) -> None:
    a, b = write(tmp_path / "a.ndjson", OLD), write(tmp_path / "b.ndjson", NEW)
    r = kstream("diff", str(a), str(b), "--color", "never")
    assert r.code == 1, r.err
    text = r.out.decode("utf-8")  # valid UTF-8 throughout
    assert "~ ConfigMap a/c\\ud83d  modified" in text
    assert 'data.k: "v" → "\\ud800x"' in text
    assert '+ data["k\\udc00"]: "y"' in text
    assert "+t\\udfffo" in text
    assert "internal error" not in r.err


@pytest.mark.parametrize("fmt", ["ndjson", "json"])
def test_json_outputs_keep_the_strings_exactly(tmp_path: Path, fmt: str) -> None:
    a, b = write(tmp_path / "a.ndjson", OLD), write(tmp_path / "b.ndjson", NEW)
    r = kstream("diff", str(a), str(b), "-o", fmt)
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    rec = doc if fmt == "ndjson" else doc["changes"][0]
    assert rec["name"] == "c\ud83d"
    fields = {f["path"]: f.get("new") for f in rec["fields"]}
    assert fields['data["k\udc00"]'] == "y" and fields["data.k"] == "\ud800x"
