"""kstream serve keeps serving what it opened (issue 22.6): the snapshot's files
are held open from start (an archive; a directory's every unit file), so a newer
dump written over the name, or a deleted file, changes nothing served; the change
is logged once. Resources the dump knew but left out (events by default) are in
discovery and list empty, so `kubectl get events` says "No resources found" and
exits 0, as against the real server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kstream.serve import api as s
from kstream.serve import catalog
from kstream.sources import open_source
from tests.conftest import KUBECTL, VENV_BIN
from tests.test_diff_unit import cm, write_snapshot

EXCLUDED = {"excludedByDefault": ["events"]}  # as dump writes it: core events only


def snapshot(path: Path, names: list[str], fmt: str = "zst") -> Path:
    return write_snapshot(path, [cm("a", n) for n in names], fmt, manifest_extra=EXCLUDED)


def get(api: s.Api, path: str) -> tuple[int, Any]:
    resp = api.handle(s.Request("GET", path, {}))
    body = resp.body if resp.chunks is None else b"".join(resp.chunks)
    return resp.code, json.loads(body)


def names(api: s.Api) -> list[str]:
    code, doc = get(api, "/api/v1/configmaps")
    assert code == 200, doc
    return [o["metadata"]["name"] for o in doc["items"]]


def served(path: Path, tmp: Path) -> s.Api:
    snap = open_source(str(path))
    snap.hold()
    tmp.mkdir(exist_ok=True)
    return s.Api(catalog.open_catalog(snap, str(tmp)), "kstream-x", bookmark_interval=0.01)


@pytest.mark.parametrize("fmt", ["zst", "dir"])
def test_a_newer_dump_over_the_name_changes_nothing_served(tmp_path: Path, fmt: str) -> None:
    name = tmp_path / ("snap.ndjson.zst" if fmt == "zst" else "snap")
    snapshot(name, ["old-1", "old-2"], fmt)
    api = served(name, tmp_path / "tmp")
    assert api.catalog.disk_changes() == ""
    # a nightly `dump --force` to the same name: a new file (or directory) renamed
    # over it, the old one gone; nothing was read from the snapshot yet
    newer = snapshot(tmp_path / ("new.ndjson.zst" if fmt == "zst" else "new"), ["new"], fmt)
    if fmt == "dir":
        shutil.rmtree(name)
    os.replace(newer, name)
    assert names(api) == ["old-1", "old-2"]
    note = api.catalog.disk_changes()
    assert "was replaced" in note and "still serving the snapshot as it was opened" in note
    # deleted altogether: still served (another resource's first read included)
    if fmt == "dir":
        shutil.rmtree(name)
    else:
        name.unlink()
    assert get(api, "/api/v1/namespaces/a/configmaps/old-1")[0] == 200
    assert "is gone" in api.catalog.disk_changes()
    api.catalog.snap.release()


def test_events_left_out_by_the_dump_are_listed_empty(tmp_path: Path) -> None:
    api = served(snapshot(tmp_path / "s.ndjson.zst", ["c"]), tmp_path / "tmp")
    _, core = get(api, "/api/v1")
    assert "events" in [r["name"] for r in core["resources"]]
    _, groups = get(api, "/apis")
    assert "events.k8s.io" in [g["name"] for g in groups["groups"]]
    code, doc = get(api, "/api/v1/namespaces/default/events")
    assert (code, doc["kind"], doc["items"]) == (200, "EventList", [])
    code, doc = get(api, "/apis/events.k8s.io/v1/events")
    assert (code, doc["items"]) == (200, [])
    # a dump that named its resources (-r cm) knew nothing of events: not listed
    only = write_snapshot(tmp_path / "r.ndjson.zst", [cm("a", "c")])
    api = served(only, tmp_path / "tmp2")
    _, core = get(api, "/api/v1")
    assert "events" not in [r["name"] for r in core["resources"]]
    assert get(api, "/api/v1/namespaces/a/events")[0] == 200  # still answered (describe)


# ---------------------------------------------------------------- with kubectl


class Serve:
    def __init__(self, snap: Path, tmp: Path) -> None:
        self.kubeconfig = tmp / "kubeconfig"
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "kstream"),
                "serve",
                str(snap),
                "--kubeconfig-out",
                str(self.kubeconfig),
            ],
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self.banner = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.banner.wait(120):
            self.proc.kill()
            pytest.fail("".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.append(raw.decode())
            if "Ctrl-C" in self.lines[-1]:
                self.banner.set()

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def wait_for(self, words: str, limit: float = 120) -> None:
        end = time.monotonic() + limit  # a guard against hanging, not a measure
        while not any(words in x for x in self.lines):
            assert time.monotonic() < end, "".join(self.lines)
            time.sleep(0.2)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def test_kubectl_get_events_and_a_replaced_file(tmp_path: Path) -> None:
    snap = snapshot(tmp_path / "snap.ndjson.zst", ["old"])
    srv = Serve(snap, tmp_path)
    try:
        p = srv.kubectl("get", "events")
        assert (p.returncode, p.stdout, p.stderr) == (
            0,
            "",
            "No resources found in default namespace.\n",
        )
        p = srv.kubectl("get", "events", "-A")
        assert (p.returncode, p.stderr) == (0, "No resources found\n")
        newer = snapshot(tmp_path / "new.ndjson.zst", ["new"])
        os.replace(newer, snap)
        srv.wait_for("was replaced")
        p = srv.kubectl("get", "cm", "-A", "-o", "name")
        assert (p.returncode, p.stdout) == (0, "configmap/old\n"), p.stderr
        snap.unlink()
        time.sleep(5)  # two more looks at the disk (2 s apart): still one line
        p = srv.kubectl("get", "cm", "-n", "a", "old", "-o", "name")
        assert (p.returncode, p.stdout) == (0, "configmap/old\n"), p.stderr
    finally:
        code = srv.stop()
    assert code == 0
    warnings = [x for x in srv.lines if "warning:" in x]
    assert len(warnings) == 1 and "still serving" in warnings[0], srv.lines


@pytest.mark.parametrize("fmt", ["zst", "dir"])
def test_replaced_between_open_and_hold_is_refused(tmp_path: Path, fmt: str) -> None:
    """The manifest read at open must be the one of the files held: a dump
    swapped in between would have its units read at the old one's offsets."""
    from kstream.errors import SnapshotError

    name = tmp_path / ("snap.ndjson.zst" if fmt == "zst" else "snap")
    snapshot(name, ["old"], fmt)
    snap = open_source(str(name))
    newer = snapshot(tmp_path / ("new.ndjson.zst" if fmt == "zst" else "new"), ["new"], fmt)
    if fmt == "dir":
        shutil.rmtree(name)
    os.replace(newer, name)
    with pytest.raises(SnapshotError, match="changed while it was being opened"):
        snap.hold()
    assert snap.held == {}
    fresh = open_source(str(name))
    fresh.hold()
    assert [json.loads(x)["metadata"]["name"] for x in fresh.lines()] == ["new"]
    fresh.release()
