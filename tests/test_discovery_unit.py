"""Which version of each resource discovery picks, on recorded discovery documents
(no cluster): client-go's ServerPreferredResources rule, aggregated and legacy.

tests/test_discovery_recorded.json was recorded from the control plane with the
CRDs of tests/test_discovery_cluster.py (group multi.kstream.dev: gizmos at v1,
sprockets at v1alpha1 only, cogs at v1 and v1beta1, doohickeys at v1beta1 and
v1alpha1), with what the pinned kubectl's `api-resources` printed for it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from kstream.cluster.discovery import AGGREGATED_ACCEPT, Discovery, discover
from kstream.errors import ApiError, UnknownResourceError
from kstream.resources import Resource, match, select
from tests.fakes import FakeTransport

REC = json.loads((Path(__file__).parent / "test_discovery_recorded.json").read_text())
G = "multi.kstream.dev"
KUBECTL = {tuple(r) for r in REC["kubectl_api_resources"]}


class FakeClient(FakeTransport):
    """Answers from documents; records the paths asked for."""

    host = "https://recorded"

    def __init__(self, aggregated: bool, docs: dict[str, Any] | None = None) -> None:
        super().__init__(self._answer)
        self.aggregated = aggregated
        self.docs = copy.deepcopy(docs if docs is not None else REC)
        self.fail: dict[str, ApiError] = {}

    def _answer(self, path: str, accept: str) -> Any:
        if path in self.fail:
            return self.fail[path]
        if self.aggregated and accept == AGGREGATED_ACCEPT and path in ("/api", "/apis"):
            return self.docs["agg_" + path[1:]]
        if path in ("/api", "/apis"):
            return self.docs[path[1:]]
        return self.docs["per_gv"][path]


def gvr(resources: list[Resource]) -> set[tuple[str, str, str]]:
    return {(r.group, r.version, r.resource) for r in resources}


@pytest.mark.parametrize("aggregated", [True, False])
def test_recorded_discovery_picks_what_kubectl_picks(aggregated: bool) -> None:
    d = discover(FakeClient(aggregated))
    assert d.aggregated is aggregated and d.failures == []
    assert gvr(d.resources) == KUBECTL
    assert len(d.resources) == len(KUBECTL)
    assert (G, "v1alpha1", "sprockets") in gvr(d.resources)  # only in a non-preferred version
    assert gvr(d.other_versions) == {
        ("autoscaling", "v1", "horizontalpodautoscalers"),
        (G, "v1beta1", "cogs"),
        (G, "v1alpha1", "doohickeys"),
    }
    # group order, then version priority order; no subresources
    assert [r.resource for r in d.resources if r.group == G] == [
        "cogs",
        "gizmos",
        "doohickeys",
        "sprockets",
    ]
    assert not any("/" in r.resource for r in d.resources + d.other_versions)
    spk = next(r for r in d.resources if r.resource == "sprockets")
    assert (spk.kind, spk.namespaced, spk.singular, spk.short_names) == (
        "Sprocket",
        True,
        "sprocket",
        ("spk",),
    )
    assert spk.listable and spk.watchable
    assert spk.path("disc-multi") == f"/apis/{G}/v1alpha1/namespaces/disc-multi/sprockets"


def test_legacy_discovery_reads_every_group_version() -> None:
    c = FakeClient(aggregated=False)
    discover(c)
    assert sorted(p for p in c.paths if p not in ("/api", "/apis")) == sorted(REC["per_gv"])


def test_stale_version_is_a_failure_and_the_next_version_serves() -> None:
    """client-go leaves a stale version out (and reports it); the first version
    left is the preferred one."""
    docs = copy.deepcopy(REC)
    (item,) = [i for i in docs["agg_apis"]["items"] if i["metadata"]["name"] == G]
    item["versions"][0]["freshness"] = "Stale"  # v1
    d = discover(FakeClient(True, docs))
    assert [(f.group, f.error) for f in d.failures] == [
        (f"{G}/v1", "discovery is stale (the API service is unavailable)")
    ]
    assert {x for x in gvr(d.resources) if x[0] == G} == {
        (G, "v1beta1", "cogs"),
        (G, "v1beta1", "doohickeys"),
        (G, "v1alpha1", "sprockets"),
    }
    assert {x for x in gvr(d.other_versions) if x[0] == G} == {(G, "v1alpha1", "doohickeys")}


def test_failed_legacy_group_version_is_reported_and_others_serve() -> None:
    c = FakeClient(aggregated=False)
    c.fail[f"/apis/{G}/v1"] = ApiError(503, "service unavailable")
    d = discover(c)
    assert [f.group for f in d.failures] == [f"{G}/v1"]
    assert {x for x in gvr(d.resources) if x[0] == G} == {
        (G, "v1beta1", "cogs"),
        (G, "v1beta1", "doohickeys"),
        (G, "v1alpha1", "sprockets"),
    }
    assert ("", "v1", "configmaps") in gvr(d.resources)


def test_missing_core_v1_is_tolerated_like_client_go() -> None:
    c = FakeClient(aggregated=False)
    c.fail["/api/v1"] = ApiError(404, "not found")
    d = discover(c)
    assert d.failures == [] and not any(r.group == "" for r in d.resources)


def test_resource_without_kind_is_dropped_like_client_go() -> None:
    docs = copy.deepcopy(REC)
    (item,) = [i for i in docs["agg_apis"]["items"] if i["metadata"]["name"] == G]
    for r in item["versions"][0]["resources"]:
        if r["resource"] == "cogs":
            del r["responseKind"]
    d = discover(FakeClient(True, docs))
    assert (G, "v1beta1", "cogs") in gvr(d.resources)  # the next version serves it


def res(group: str, version: str, name: str) -> Resource:
    return Resource(group, version, name, name.title(), True, frozenset({"list", "watch"}))


def test_preferred_version_overrides_an_earlier_one() -> None:
    """client-go: a later version replaces an earlier pick only when it is the
    group's preferred version (legacy /apis may name any version preferred)."""
    from kstream.cluster.discovery import ApiGroup, preferred_resources

    g = ApiGroup(
        "x.dev",
        ["v1beta1", "v1", "v1alpha1"],
        "v1",
        {
            "v1beta1": [res("x.dev", "v1beta1", "a"), res("x.dev", "v1beta1", "b")],
            "v1": [res("x.dev", "v1", "a")],
            "v1alpha1": [res("x.dev", "v1alpha1", "b"), res("x.dev", "v1alpha1", "c")],
        },
    )
    best, others = preferred_resources([g])
    assert [(r.version, r.resource) for r in best] == [
        ("v1beta1", "b"),
        ("v1", "a"),
        ("v1alpha1", "c"),
    ]
    assert [(r.version, r.resource) for r in others] == [("v1beta1", "a"), ("v1alpha1", "b")]


def test_unread_version_is_skipped() -> None:
    from kstream.cluster.discovery import ApiGroup, preferred_resources

    g = ApiGroup("x.dev", ["v2", "v1"], "v2", {"v1": [res("x.dev", "v1", "a")]})
    best, others = preferred_resources([g])
    assert gvr(best) == {("x.dev", "v1", "a")} and others == []


# ------------------------------------------------------------------ names


@pytest.fixture(scope="module")
def disc() -> Discovery:
    return discover(FakeClient(True))


@pytest.mark.parametrize(
    "name,want",
    [
        ("sprockets", (G, "v1alpha1", "sprockets")),
        ("SPK", (G, "v1alpha1", "sprockets")),
        ("Sprocket", (G, "v1alpha1", "sprockets")),
        (f"sprockets.{G}", (G, "v1alpha1", "sprockets")),
        (f"sprockets.v1alpha1.{G}", (G, "v1alpha1", "sprockets")),
        ("cogs", (G, "v1", "cogs")),
        (f"cogs.{G}", (G, "v1", "cogs")),
        (f"cogs.v1.{G}", (G, "v1", "cogs")),
        (f"cogs.v1beta1.{G}", (G, "v1beta1", "cogs")),
        (f"cog.v1beta1.{G}", (G, "v1beta1", "cogs")),
        (f"CGZ.V1BETA1.{G}", (G, "v1beta1", "cogs")),
        (f"doohickeys.v1alpha1.{G}", (G, "v1alpha1", "doohickeys")),
        ("doohickeys", (G, "v1beta1", "doohickeys")),
        ("hpa", ("autoscaling", "v2", "horizontalpodautoscalers")),
        ("hpa.v1.autoscaling", ("autoscaling", "v1", "horizontalpodautoscalers")),
        ("configmaps.v1", ("", "v1", "configmaps")),
        ("configmaps.v1.", ("", "v1", "configmaps")),
    ],
)
def test_names_resolve_to_a_version(disc: Discovery, name: str, want: tuple[str, str, str]) -> None:
    (r,) = match(name, disc.resources, disc.other_versions)
    assert (r.group, r.version, r.resource) == want
    (s,) = select(disc.resources, [name], other_versions=disc.other_versions).resources
    assert s == r


@pytest.mark.parametrize(
    "name", [f"cogs.v1alpha1.{G}", f"gizmos.v1beta1.{G}", f"sprockets.v1.{G}", "cogs.v1beta1"]
)
def test_unserved_version_is_unknown(disc: Discovery, name: str) -> None:
    assert match(name, disc.resources, disc.other_versions) == []
    with pytest.raises(UnknownResourceError, match="the server has no resource type"):
        select(disc.resources, [name], other_versions=disc.other_versions)


def test_full_selection_reads_each_resource_once(disc: Discovery) -> None:
    sel = select(disc.resources, other_versions=disc.other_versions)
    picked = gvr(sel.resources)
    assert {x for x in picked if x[0] == G} == {
        (G, "v1", "gizmos"),
        (G, "v1alpha1", "sprockets"),
        (G, "v1", "cogs"),
        (G, "v1beta1", "doohickeys"),
    }
    assert len({(g, r) for g, _v, r in picked}) == len(picked)
    both = select(disc.resources, ["cogs", f"cogs.v1beta1.{G}"], other_versions=disc.other_versions)
    assert [r.version for r in both.resources] == ["v1", "v1beta1"]


def test_aggregated_discovery_is_two_requests() -> None:
    c = FakeClient(aggregated=True)
    discover(c)
    assert sorted(c.paths) == ["/api", "/apis"]
