"""A resource on one side only because the other side's dump could not discover
its group (the manifest's discoveryFailures) is not compared: it is neither
added nor removed, and diff says why (exit 3, like an incomplete resource)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_diff_unit import _cli, cm, compare, deploy, summary, write_snapshot

FAILED = {"discoveryFailures": [{"groupVersion": "apps/v1", "error": "503 Service Unavailable"}]}
OBJS = [cm("a", "keep"), deploy("a", "web"), deploy("b", "api")]


@pytest.mark.parametrize("failed_side", ["new", "old"])
def test_resource_of_an_undiscovered_group_is_not_compared(
    tmp_path: Path, failed_side: str
) -> None:
    full = write_snapshot(tmp_path / "full.zst", OBJS)
    cut = write_snapshot(
        tmp_path / "cut.zst", [cm("a", "keep")], status="partial", manifest_extra=FAILED
    )
    old, new = (full, cut) if failed_side == "new" else (cut, full)
    changes, c = compare(old, new)
    assert changes == []  # no Deployment added or removed
    assert [name for name, _ in c.skipped] == ["deployments.apps"]
    why = c.skipped[0][1]
    assert str(cut) in why and "discovery of apps/v1 failed: 503 Service Unavailable" in why
    r = _cli(str(old), str(new))
    assert r.code == 3, r.err
    assert "deployments.apps not compared" in r.err and "discovery of apps/v1" in r.err
    assert b"web" not in r.out and b"api" not in r.out


def test_other_groups_still_compared_and_a_real_removal_still_reported(tmp_path: Path) -> None:
    """The failure covers its group only: a core resource missing is removed."""
    full = write_snapshot(tmp_path / "full.zst", [*OBJS, cm("a", "gone")])
    cut = write_snapshot(
        tmp_path / "cut.zst", [cm("a", "keep")], status="partial", manifest_extra=FAILED
    )
    changes, c = compare(full, cut)
    assert summary(changes) == {("removed", "ConfigMap", "a/gone")}
    assert [name for name, _ in c.skipped] == ["deployments.apps"]
    # without the discovery failure the Deployments are simply gone
    plain = write_snapshot(tmp_path / "plain.zst", [cm("a", "keep")])
    changes, c = compare(full, plain)
    assert ("removed", "Deployment", "a/web") in summary(changes) and c.skipped == []
