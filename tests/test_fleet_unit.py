"""Output names with placeholders (kstream.store.outputname) and the choice of contexts
(kstream.fleet): no cluster needed."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kstream import fleet
from kstream.errors import ConfigError, UsageError
from kstream.exitcodes import ExitCode
from kstream.store import outputname
from tests.conftest import NOWHERE, kstream, one_line

T0 = dt.datetime(2026, 11, 29, 5, 7, 9, tzinfo=dt.timezone.utc)


def test_expand_every_placeholder() -> None:
    name = outputname.expand(
        "b/{context}/{cluster}/{date}/{time:%Y-%m-%dT%H%MZ}-{time}.ndjson.zst",
        context="prod-eu",
        cluster="https://api.example.com:6443",
        started=T0,
    )
    assert (
        name
        == "b/prod-eu/api.example.com:6443/2026-11-29/2026-11-29T0507Z-20261129T050709Z.ndjson.zst"
    )


def test_time_is_utc_whatever_the_zone_of_started() -> None:
    cet = T0.astimezone(dt.timezone(dt.timedelta(hours=1)))
    assert outputname.expand("{time:%H%M}", started=cet) == "0507"


def test_cluster_without_port_is_the_host() -> None:
    assert outputname.expand("{cluster}", cluster="https://10.0.0.1", started=T0) == "10.0.0.1"


def test_literal_braces_and_plain_names() -> None:
    assert outputname.expand("a{{b}}.zst", started=T0) == "a{b}.zst"
    assert outputname.expand("plain.ndjson", started=T0) == "plain.ndjson"
    assert not outputname.has_placeholders("plain.ndjson")


@pytest.mark.parametrize(
    ("context", "safe"),
    [
        ("arn:aws:eks:eu-west-1:1234:cluster/prod", "arn:aws:eks:eu-west-1:1234:cluster_prod"),
        ("../../etc", ".._.._etc"),
        ("..", "_"),
        (".", "_"),
        ("", "_"),
        ("a b\\c\nd", "a_b_c_d"),
        ("user@gke_proj_zone_name", "user@gke_proj_zone_name"),
    ],
)
def test_context_made_safe_for_one_path_component(context: str, safe: str) -> None:
    got = outputname.expand("out/{context}.zst", context=context, started=T0)
    assert got == f"out/{safe}.zst"
    assert Path(got).parent == Path("out")


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{ctx}.zst", ["unknown placeholder {ctx}"]),
        ("{context!r}.zst", ["unknown placeholder"]),
        ("{time:%Q}.zst", ["unknown strftime directive %Q"]),
        ("{time:%Y%}.zst", ["a lone %"]),
        ("{date:%Y}.zst", ["{date} takes no format"]),
        ("a{.zst", ["literal braces"]),
        ("a}.zst", ["literal braces"]),
    ],
)
def test_bad_templates_are_usage_errors(template: str, words: list[str]) -> None:
    with pytest.raises(UsageError) as e:
        outputname.fields(template)
    for w in words:
        assert w in str(e.value)


def test_bad_template_exit_2_before_reading_the_kubeconfig(tmp_path: Path) -> None:
    r = kstream("dump", "-o", str(tmp_path / "{nope}.zst"), env=NOWHERE)
    one_line(r, 2, "unknown placeholder {nope}")
    assert list(tmp_path.iterdir()) == []


def test_check_unique() -> None:
    with pytest.raises(UsageError, match="would both write"):
        outputname.check_unique([("a/b", "x/a_b.zst"), ("a_b", "x/a_b.zst")])


def test_make_parents_only_with_placeholders(tmp_path: Path) -> None:
    outputname.make_parents("x/{date}/s.zst", str(tmp_path / "x" / "2026" / "s.zst"))
    assert (tmp_path / "x" / "2026").is_dir()
    outputname.make_parents("y/s.zst", str(tmp_path / "y" / "s.zst"))
    assert not (tmp_path / "y").exists()
    made = outputname.make_parents("{date}/{context}/s", str(tmp_path / "x" / "a" / "b" / "s"))
    assert made == [tmp_path / "x" / "a" / "b", tmp_path / "x" / "a"]  # x existed already
    (tmp_path / "x" / "keep").write_text("")
    outputname.remove_empty(made)
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["2026", "keep"]


# --------------------------------------------------------------------------- contexts


def _kubeconfig(path: Path, names: list[str], current: str = "") -> Path:
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": f"c-{n}", "cluster": {"server": f"https://{i}.example:6443"}}
            for i, n in enumerate(names)
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": n, "context": {"cluster": f"c-{n}", "user": "u"}} for n in names],
        "current-context": current or names[0],
    }
    path.write_text(json.dumps(cfg))
    return path


def test_select_exact_glob_and_all(tmp_path: Path) -> None:
    kc = str(_kubeconfig(tmp_path / "kc", ["prod-eu", "prod-us", "staging", "prod-[x]"]))
    got = fleet.select_targets(kc, ["prod-*"], False)
    assert [t.context for t in got] == ["prod-eu", "prod-us", "prod-[x]"]
    assert got[0].server == "https://0.example:6443"
    # an exact name wins over its reading as a glob; each context once
    got = fleet.select_targets(kc, ["prod-[x]", "staging", "prod-[x]"], False)
    assert [t.context for t in got] == ["prod-[x]", "staging"]
    assert [t.context for t in fleet.select_targets(kc, [], True)] == [
        "prod-eu",
        "prod-us",
        "staging",
        "prod-[x]",
    ]


def test_select_merges_files_as_kubectl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = _kubeconfig(tmp_path / "a", ["one", "two"])
    b = _kubeconfig(tmp_path / "b", ["two", "three"])
    monkeypatch.setenv("KUBECONFIG", f"{a}:{b}")  # a list: $KUBECONFIG (--kubeconfig is one file)
    got = fleet.select_targets(None, [], True)
    assert [t.context for t in got] == ["one", "two", "three"]
    assert got[1].server == "https://1.example:6443"  # the first file's "two" wins


def test_select_nothing_matches(tmp_path: Path) -> None:
    kc = str(_kubeconfig(tmp_path / "kc", ["a", "b"]))
    with pytest.raises(ConfigError, match=r'"x-\*" matches no context .*available: a, b'):
        fleet.select_targets(kc, ["x-*"], False)
    with pytest.raises(ConfigError, match='"c" not found'):
        fleet.select_targets(kc, ["a", "c"], False)
    with pytest.raises(UsageError):
        fleet.select_targets(kc, ["a"], True)


def test_is_many() -> None:
    assert not fleet.is_many([], False)
    assert not fleet.is_many(["a"], False)
    assert fleet.is_many(["a", "b"], False)
    assert fleet.is_many(["a-*"], False)
    assert fleet.is_many([], True)


def test_worst() -> None:
    assert fleet.worst([ExitCode.OK, ExitCode.CONNECTION, ExitCode.PARTIAL]) == ExitCode.CONNECTION
    assert fleet.worst([]) == ExitCode.OK


def test_several_contexts_need_context_in_the_name(tmp_path: Path) -> None:
    kc = _kubeconfig(tmp_path / "kc", ["a", "b"])
    r = kstream("dump", "--all-contexts", "-o", str(tmp_path / "{date}.zst"), kubeconfig=kc)
    one_line(r, 2, "must contain {context}")
    r = kstream("dump", "--context", "a", "--context", "b", "-o", "-", kubeconfig=kc)
    one_line(r, 2, "stdout")
    r = kstream("count", "--context", "*", "snap.zst", kubeconfig=kc)
    one_line(r, 2, "counted alone")
    r = kstream("count", "--context", "zz*", kubeconfig=kc)
    one_line(r, 4, "matches no context")


def test_fleet_outcomes_keep_going() -> None:
    targets = [fleet.Target(n, "") for n in ("ok", "bad", "boom", "ok2")]

    def work(t: fleet.Target, stop: fleet.Stop, warn: object) -> tuple[str, ExitCode]:
        if t.context == "bad":
            raise ConfigError("credentials rejected")
        if t.context == "boom":
            raise RuntimeError("bug")
        return t.context.upper(), ExitCode.OK

    out = fleet.Fleet(targets, work, parallel=2).run()
    assert [(o.context, o.value, int(o.code)) for o in out] == [
        ("ok", "OK", 0),
        ("bad", None, 4),
        ("boom", None, 70),
        ("ok2", "OK2", 0),
    ]
    assert out[1].error == "credentials rejected"


def test_contexts_and_servers_as_kubectl_merges_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Differential: the contexts --all-contexts takes, and each one's server,
    are kubectl's (`config get-contexts`, `config view --minify`) for a
    KUBECONFIG of two files that both define a context "two"."""
    import subprocess

    from tests.conftest import KUBECTL

    a = _kubeconfig(tmp_path / "a", ["one", "two"])
    b = _kubeconfig(tmp_path / "b", ["two", "three", "prod-x"])
    env = {"KUBECONFIG": f"{a}:{b}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def kubectl(*args: str) -> str:
        p = subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, check=True)
        return p.stdout.strip()

    monkeypatch.setenv("KUBECONFIG", env["KUBECONFIG"])
    ours = fleet.select_targets(None, [], True)
    assert sorted(t.context for t in ours) == sorted(
        kubectl("config", "get-contexts", "-o", "name").split()
    )
    for t in ours:
        server = kubectl(
            "config", "view", "--minify", "--context", t.context,
            "-o", "jsonpath={.clusters[0].cluster.server}",
        )  # fmt: skip
        assert t.server == server, t.context


def _interrupt_main() -> None:
    """Ctrl-C, as the terminal sends it: SIGINT, handled in the main thread."""
    import signal
    import threading

    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)


@pytest.fixture
def one_ctrl_c() -> Iterator[None]:
    """For the tests that press Ctrl-C: Python's own SIGINT handler (KeyboardInterrupt)
    in place. A process started in the background by a non-interactive shell
    (`nohup make test &`) inherits SIGINT ignored, and Python then installs no
    handler: the signal vanished and the run waited for ever (three full runs hung
    here). kstream's CLI sets its own handler; these tests call fleet directly."""
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.mark.usefixtures("one_ctrl_c")
def test_ctrl_c_stops_running_jobs_and_abandons_connecting_ones() -> None:
    import threading

    never = threading.Event()  # a server that never answers

    def work(t: fleet.Target, stop: fleet.Stop, warn: object) -> tuple[str, ExitCode]:
        if t.context == "quick":
            return "done", ExitCode.OK
        if t.context == "hang":
            never.wait()  # still connecting when the run is stopped
            return "late", ExitCode.OK
        assert stop.running()
        _interrupt_main()
        while not stop.is_set():
            threading.Event().wait(0.01)
        return "partial", stop.code

    out = fleet.Fleet([fleet.Target(n, "") for n in ("quick", "hang", "reading")], work, 3).run()
    got = {o.context: (o.value, int(o.code), o.error) for o in out}
    assert got["quick"] == ("done", 0, "")
    assert got["hang"] == (None, 130, "stopped while connecting; nothing written")
    assert got["reading"] == ("partial", 130, "")
    never.set()


def test_ctrl_c_just_after_a_context_settled_loses_no_count() -> None:
    """A Ctrl-C that lands between run()'s wake-up and its bookkeeping (here: raised
    from the wake-up itself, just after a context settled) must not leave run()
    waiting for ever: it once counted contexts where it woke, and hung."""
    import threading

    class Wakeup(threading.Semaphore):
        fired = False

        def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
            got = super().acquire(blocking, timeout)
            if got and not Wakeup.fired:
                Wakeup.fired = True
                raise KeyboardInterrupt
            return got

    def work(t: fleet.Target, stop: fleet.Stop, warn: object) -> tuple[str, ExitCode]:
        if t.context == "one":
            return "done", ExitCode.OK
        while not stop.is_set():  # "two" runs until the Ctrl-C, so run() must wake for "one"
            threading.Event().wait(0.01)
        return "partial", stop.code

    f = fleet.Fleet([fleet.Target(n, "") for n in ("one", "two")], work, 1)
    f._done = Wakeup(0)
    out: list[Any] = []
    runner = threading.Thread(target=lambda: out.extend(f.run()), daemon=True)
    runner.start()
    runner.join(60)  # a hang detector, not a timing: it returns at once when right
    assert not runner.is_alive(), "run() waits for a context that has settled"
    assert Wakeup.fired
    assert out[0].value == "done" and int(out[0].code) == 0
    assert int(out[1].code) == 130


@pytest.mark.usefixtures("one_ctrl_c")
def test_ctrl_c_leaves_waiting_contexts_not_started() -> None:
    import threading

    def work(t: fleet.Target, stop: fleet.Stop, warn: object) -> tuple[str, ExitCode]:
        assert stop.running()
        _interrupt_main()
        while not stop.is_set():
            threading.Event().wait(0.01)
        return "partial", stop.code

    out = fleet.Fleet([fleet.Target(n, "") for n in ("first", "second")], work, 1).run()
    assert [(o.context, int(o.code)) for o in out] == [("first", 130), ("second", 130)]
    assert out[0].value == "partial" and out[1].error == "not started: the run was stopped"


def test_bad_selection_is_refused_before_the_kubeconfig_is_read(tmp_path: Path) -> None:
    """Names with placeholders read the kubeconfig; a bad selector still says
    so first (exit 2), as with a plain name."""
    r = kstream("dump", "-o", str(tmp_path / "{context}.zst"), "-l", "a in", env=NOWHERE)
    one_line(r, 2, "selector")
    r = kstream(
        "dump", "--all-contexts", "-o", str(tmp_path / "{context}.zst"), "-l", "a in", env=NOWHERE
    )
    one_line(r, 2, "selector")
    r = kstream("dump", "-o", str(tmp_path / "{context}.zst"), env=NOWHERE)
    one_line(r, 4, "kubeconfig not found")
    assert list(tmp_path.iterdir()) == []
