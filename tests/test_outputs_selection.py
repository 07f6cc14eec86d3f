"""Selection options that used to select the wrong thing silently, for every
command that takes them (dump, count, diff):

- a namespace named twice (-n a,a or -n a -n a) is read once;
- an empty -r/-n/--exclude value (an unset shell variable) is refused (exit 2);
- an invalid namespace name is refused (exit 2), by the server's rule (DNS-1123
  label, checked here against the API server's own validation);
- a namespace that does not exist: exit 0, one line on stderr per namespace
  (nothing when the identity may not GET namespaces);
- an empty --strip/--ignore path or one with an empty segment is refused (exit 2)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kstream import paths
from kstream.cli.common import names, namespace_names
from kstream.errors import UsageError
from kstream.store.snapshot import open_snapshot
from tests.conftest import KUBECTL, NOWHERE, Cluster, kstream, one_line
from tests.seed import grant


@pytest.fixture(scope="module")
def snaps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny NDJSON snapshots, so diff gets as far as its options."""
    d = tmp_path_factory.mktemp("snaps")
    for n in ("a.ndjson", "b.ndjson"):
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "n"}}
        (d / n).write_text(json.dumps(obj) + "\n")
    return d / "a.ndjson", d / "b.ndjson"


def commands(snaps: tuple[Path, Path], tmp: Path) -> dict[str, list[str]]:
    return {
        "dump": ["dump", "-o", str(tmp / "out.ndjson")],
        "count": ["count"],
        "count-snapshot": ["count", str(snaps[0])],
        "diff": ["diff", str(snaps[0]), str(snaps[1])],
    }


# ---------------------------------------------------------------- empty values

EMPTY = [
    ("-r", ""),
    ("-r", " "),
    ("-r", ","),
    ("-r", "pods,,configmaps"),
    ("--exclude", ""),
    ("-n", ""),
    ("-n", "a,"),
]


@pytest.mark.parametrize("command", ["dump", "count", "count-snapshot", "diff"])
@pytest.mark.parametrize(("option", "value"), EMPTY)
def test_empty_names_are_refused(
    command: str, option: str, value: str, snaps: tuple[Path, Path], tmp_path: Path
) -> None:
    """Before: -r '' selected every resource, -n '' every namespace."""
    args = commands(snaps, tmp_path)[command]
    r = kstream(*args, option, value, env=NOWHERE)
    one_line(r, 2, option)
    assert not (tmp_path / "out.ndjson").exists()


def test_names_rule() -> None:
    with pytest.raises(UsageError, match="unset shell variable"):
        names([""], "-r", "")
    with pytest.raises(UsageError, match="empty name"):
        names(["a,,b"], "-r", "")
    assert names(None, "-r", "") == []
    assert names([" a , b", "c"], "-r", "") == ["a", "b", "c"]


@given(st.lists(st.lists(st.sampled_from(["a", "b", "kube-system", "x1"]), min_size=1), max_size=6))
def test_names_are_deduplicated_in_order(groups: list[list[str]]) -> None:
    values = [",".join(g) for g in groups]
    flat = [n for g in groups for n in g]
    assert names(values, "-n", "") == list(dict.fromkeys(flat))
    assert namespace_names(values) == list(dict.fromkeys(flat))


# ---------------------------------------------------------------- namespace names

NS_NAMES = [
    "ok",
    "a",
    "0abc",
    "a-b-c",
    "a" * 63,
    "a" * 64,
    "Bad_Name",
    "UPPER",
    "-lead",
    "trail-",
    "a.b",
    "a_b",
    "a b",
    "ñandu",
    "a/b",
]


def _valid(name: str) -> bool:
    try:
        namespace_names([name])
        return True
    except UsageError:
        return False


@pytest.mark.cluster
def test_namespace_name_rule_is_the_servers(cluster: Cluster) -> None:
    """kstream accepts exactly the names the API server accepts for a namespace
    (server-side dry run of `kubectl create namespace`)."""
    for name in NS_NAMES:
        p = subprocess.run(
            [KUBECTL, "--kubeconfig", str(cluster.kubeconfig), "create", "namespace", name,
             "--dry-run=server", "-o", "name"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert _valid(name) == (p.returncode == 0), (name, p.stderr)


@pytest.mark.parametrize("command", ["dump", "count", "diff"])
@pytest.mark.parametrize("name", ["Bad_Name", "-lead", "a.b"])
def test_invalid_namespace_is_refused(
    command: str, name: str, snaps: tuple[Path, Path], tmp_path: Path
) -> None:
    r = kstream(*commands(snaps, tmp_path)[command], "-n", f"demo-0,{name}", env=NOWHERE)
    one_line(r, 2, name, "namespace name")


# ---------------------------------------------------------------- repeated namespaces


def ndjson_names(p: Path) -> list[str]:
    return [
        f"{json.loads(x)['kind']}/{json.loads(x)['metadata']['name']}"
        for x in p.read_text().splitlines()
    ]


@pytest.mark.cluster
@pytest.mark.parametrize("spelling", [["-n", "demo-0,demo-0"], ["-n", "demo-0", "-n", "demo-0"]])
def test_repeated_namespace_is_read_once(
    cluster: Cluster, tmp_path: Path, spelling: list[str]
) -> None:
    """Before: each repetition read the namespace again (objects twice, counts
    doubled) and diff refused the snapshot."""
    kc = cluster.kubeconfig
    sel = ["-r", "configmaps,secrets"]
    once, twice = tmp_path / "once.zst", tmp_path / "twice.zst"
    assert kstream("dump", "-q", "-n", "demo-0", *sel, "-o", str(once), kubeconfig=kc).code == 0
    r = kstream("dump", "-q", *spelling, *sel, "-o", str(twice), kubeconfig=kc)
    assert r.code == 0, r.err
    s1, s2 = open_snapshot(str(once)), open_snapshot(str(twice))
    assert [(e.resource, e.namespace) for e in s2.entries] == [
        (e.resource, e.namespace) for e in s1.entries
    ]
    assert sorted(s2.lines()) == sorted(s1.lines())
    assert s2.manifest is not None and s2.manifest.options is not None
    assert s2.manifest.options.namespaces == ("demo-0",)
    # count, live and from the snapshot
    for src in ([], [str(twice)]):
        r = kstream("count", *src, "-q", "-o", "json", *spelling, *sel, kubeconfig=kc)
        assert r.code == 0, r.err
        total = sum(row["objects"] for row in json.loads(r.out)["rows"])
        assert total == len(list(s1.lines()))
    # diff accepts the snapshot, and with a repeated -n too
    r = kstream("diff", str(once), str(twice), *spelling, "-q", kubeconfig=kc)
    assert r.code == 0, r.err


# ---------------------------------------------------------------- missing namespaces


def missing_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if "does not exist" in ln]


@pytest.mark.cluster
def test_missing_namespace_is_said_once_each(cluster: Cluster, tmp_path: Path) -> None:
    kc = cluster.kubeconfig
    ns = ["-n", "demo-0,nosuch-one", "-n", "nosuch-two,nosuch-one", "-r", "configmaps"]
    out = tmp_path / "s.ndjson"
    runs = {  # dump says it under its summary: test_missing_namespace_is_said_in_the_summary
        "count": kstream("count", *ns, kubeconfig=kc),
        "count --estimate": kstream("count", "--estimate", *ns, kubeconfig=kc),
    }
    r = kstream("dump", "-q", *ns, "-o", str(out), kubeconfig=kc)
    assert (r.code, r.err) == (0, "")  # -q: errors only
    for what, r in runs.items():
        assert r.code == 0, (what, r.err)
        assert missing_lines(r.err) == [
            'warning: namespace "nosuch-one" does not exist',
            'warning: namespace "nosuch-two" does not exist',
        ], (what, r.err)
    assert len(ndjson_names(out)) > 0  # demo-0 was read
    r = kstream("diff", str(out), "--live", *ns, kubeconfig=kc)
    assert r.code == 0, r.err
    assert len(missing_lines(r.err)) == 2, r.err
    r = kstream("count", "-n", "demo-0", "-r", "configmaps", kubeconfig=kc)
    assert missing_lines(r.err) == []


@pytest.mark.cluster
def test_missing_namespace_not_said_when_forbidden(cluster: Cluster, tmp_path: Path) -> None:
    user = "sel-no-ns-get"
    kc = cluster.cp.add_user(user)
    grant(
        cluster.api, user, ["configmaps"], ["list", "watch"]
    )  # everywhere, but no GET of namespaces
    r = kstream("dump", "-n", "demo-0,nosuch-one", "-r", "configmaps",
                "-o", str(tmp_path / "s.ndjson"), kubeconfig=kc)  # fmt: skip
    assert r.code == 0, r.err
    assert missing_lines(r.err) == [], r.err
    assert len(ndjson_names(tmp_path / "s.ndjson")) > 0


@pytest.mark.cluster
def test_missing_namespace_is_said_in_the_summary(cluster: Cluster, tmp_path: Path) -> None:
    """Without -q the dump's summary says it, under the totals (before: a line
    above the progress display, which the summary then pushed out of sight)."""
    r = kstream("dump", "-n", "demo-0,nosuch-one", "-r", "configmaps",
                "-o", str(tmp_path / "s.ndjson"), kubeconfig=cluster.kubeconfig)  # fmt: skip
    assert r.code == 0, r.err
    lines = r.err.splitlines()
    assert missing_lines(r.err) == ['warning: namespace "nosuch-one" does not exist'], r.err
    said = lines.index('warning: namespace "nosuch-one" does not exist')
    title = next(i for i, ln in enumerate(lines) if ln.startswith("kstream dump → "))
    totals = next(i for i, ln in enumerate(lines) if ln.startswith("complete: 2/2 resources"))
    assert title < totals < said, r.err


# ---------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "value", ["", " ", ",", "metadata..name", "metadata.", ".", "a,,b", 'a[""]', "a[b]"]
)
def test_bad_strip_paths_are_refused(value: str, tmp_path: Path) -> None:
    """Before: --strip '' stripped nothing and metadata..name stripped metadata.name."""
    r = kstream("dump", "-o", str(tmp_path / "x.ndjson"), "--strip", value, env=NOWHERE)
    one_line(r, 2, "--strip")


@pytest.mark.parametrize("value", ["", "metadata..name", "spec.", 'a["x"]b'])
def test_bad_ignore_paths_are_refused(value: str, snaps: tuple[Path, Path]) -> None:
    r = kstream("diff", str(snaps[0]), str(snaps[1]), "--ignore", value, env=NOWHERE)
    one_line(r, 2, "--ignore")


SEGMENT = st.one_of(
    st.just("*"),
    st.from_regex(r"[A-Za-z0-9_-]{1,8}", fullmatch=True),
    st.text(min_size=1, max_size=8).filter(lambda s: not s.isspace()),
)


@given(st.lists(SEGMENT, min_size=1, max_size=5))
def test_path_grammar_round_trip(segs: list[str]) -> None:
    path = tuple(segs)
    text = paths.render(path)
    assert paths.parse(text) == path
    assert paths.parse("." + text) == path  # kubectl's leading dot
    assert paths.parse_list([text + "," + text]) == [path, path]


@given(st.lists(st.from_regex(r"[a-z]{1,5}", fullmatch=True), min_size=1, max_size=4), st.data())
def test_path_grammar_rejects_empty_segments(segs: list[str], data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(segs)))
    broken = ".".join([*segs[:at], "", *segs[at:]])  # one empty segment anywhere
    if at == 0:
        broken = "." + broken  # one leading dot is allowed (kubectl's habit), two are not
    with pytest.raises(ValueError):
        paths.parse(broken)
