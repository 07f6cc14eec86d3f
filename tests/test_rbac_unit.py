"""kstream rbac without a cluster: the rules from a plan's units, the YAML, the
options, and deploy/'s role being exactly what `kstream rbac --wildcard` prints."""

from __future__ import annotations

import io

import pytest
import yaml

from kstream.cli.app import run
from kstream.cluster import rbac
from kstream.cluster.plan import make_plan, plan_units
from kstream.errors import UsageError
from kstream.resources import Resource
from tests.conftest import REPO
from tests.test_discovery_unit import FakeClient

RW = frozenset({"get", "list", "watch", "create", "delete"})
CM = Resource("", "v1", "configmaps", "ConfigMap", True, RW)
SECRET = Resource("", "v1", "secrets", "Secret", True, RW)
NODE = Resource("", "v1", "nodes", "Node", False, RW)
DEPLOY = Resource("apps", "v1", "deployments", "Deployment", True, RW)
LISTONLY = Resource(
    "metrics.k8s.io", "v1beta1", "pods", "PodMetrics", True, frozenset({"get", "list"})
)


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_rules_name_each_resource_read_with_list_and_watch() -> None:
    a = rbac.access(plan_units([CM, SECRET, NODE, DEPLOY, LISTONLY], []), [])
    assert a.namespaces == () and a.namespace_rules == [] and a.resources == 5
    assert a.cluster_rules == [
        rbac.Rule(("",), ("configmaps", "nodes", "secrets"), ("list", "watch")),
        rbac.Rule(("apps",), ("deployments",), ("list", "watch")),
        rbac.Rule(("metrics.k8s.io",), ("pods",), ("list",)),  # serves no watch
    ]
    verbs = {v for r in a.cluster_rules for v in r.verbs}
    assert verbs == {"list", "watch"}  # no get, no write verb
    assert not [n for r in a.cluster_rules for n in r.resources if "/" in n or n == "*"]


def test_namespaces_are_granted_where_they_are_read() -> None:
    """-n: namespaced resources in those namespaces only (RoleBindings), with get
    of the namespace (dump's warning for one that does not exist); cluster-scoped
    resources named with -r cluster-wide."""
    a = rbac.access(plan_units([CM, NODE, DEPLOY], ["shop", "web"], explicit=True), ["shop", "web"])
    assert a.namespaces == ("shop", "web")
    assert a.namespace_rules == [
        rbac.Rule(("",), ("configmaps",), ("list", "watch")),
        rbac.Rule(("apps",), ("deployments",), ("list", "watch")),
        rbac.Rule(("",), ("namespaces",), ("get",)),
    ]
    assert a.cluster_rules == [rbac.Rule(("",), ("nodes",), ("list", "watch"))]
    docs = list(yaml.safe_load_all(rbac.render(a, "r", ("ops", "backup"))))
    assert [(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")) for d in docs] == [
        ("ClusterRole", "r", None),
        ("RoleBinding", "r", "shop"),
        ("RoleBinding", "r", "web"),
        ("ClusterRole", "r-cluster", None),
        ("ClusterRoleBinding", "r-cluster", None),
    ]
    assert docs[1]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "r",
    }
    assert docs[1]["subjects"] == [{"kind": "ServiceAccount", "name": "backup", "namespace": "ops"}]
    assert docs[3]["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]}
    ]


def test_render_is_yaml_kubectl_reads() -> None:
    a = rbac.access(plan_units([CM, DEPLOY], []), [])
    text = rbac.render(a, header="kstream rbac\nfor https://x")
    assert text.startswith("# kstream rbac\n# for https://x\n# What `kstream dump`")
    (doc,) = yaml.safe_load_all(text)
    assert doc["kind"] == "ClusterRole" and doc["metadata"] == {"name": "kstream-reader"}
    assert doc["rules"][1] == {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["list", "watch"],
    }


def test_deploy_role_is_what_rbac_wildcard_prints() -> None:
    """deploy/base/clusterrole.yaml and clusterrolebinding.yaml are `kstream rbac
    --wildcard --service-account kstream/kstream`, byte for byte: list and watch on
    "*", no get (which on "*" grants pods/exec, pods/log, nodes/proxy ...)."""
    code, out, err = cli("rbac", "--wildcard", "--service-account", "kstream/kstream")
    assert code == 0, err
    role, binding = out.split("---\n")
    assert (REPO / "deploy" / "base" / "clusterrole.yaml").read_text() == role
    assert (REPO / "deploy" / "base" / "clusterrolebinding.yaml").read_text() == binding
    doc = yaml.safe_load(role)
    assert doc["rules"] == [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["list", "watch"]}]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--wildcard", "-r", "configmaps"], "cannot leave any out"),
        (["--wildcard", "--exclude", "secrets"], "cannot leave any out"),
        (["--wildcard", "--service-account", "kstream"], "NAMESPACE/NAME"),
        (["--wildcard", "--service-account", "Bad/x"], "NAMESPACE/NAME"),
        (["-n", "a", "-A"], "cannot be used together"),
        (["--wildcard", "--name", "x\ny: 1"], "not a valid role name"),
    ],
)
def test_refused_options(args: list[str], words: str) -> None:
    code, out, err = cli("rbac", *args)
    assert code == 2 and out == ""
    assert words in err and len(err.splitlines()) == 1, err


def test_parse_service_account() -> None:
    assert rbac.parse_service_account("kstream/kstream") == ("kstream", "kstream")
    with pytest.raises(UsageError):
        rbac.parse_service_account("/x")


class Recorded(FakeClient):
    """The recorded discovery of the control plane (tests/test_discovery_recorded.json)."""

    def server_version(self) -> str:
        return "v1.37.2"


def test_the_role_from_discovery_names_what_dump_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """`kstream rbac` plans as dump plans (same discovery, same default selection):
    the rules name exactly the planned resources, core events left out as dump
    leaves them out, every resource once, none a subresource."""
    monkeypatch.setattr(rbac, "connect", lambda live: Recorded(True))
    code, out, err = cli("rbac")
    assert code == 0, err
    assert out.startswith("# kstream rbac\n# for https://recorded (Kubernetes v1.37.2): ")
    (doc,) = yaml.safe_load_all(out)
    named = [(rule["apiGroups"][0], r) for rule in doc["rules"] for r in rule["resources"]]
    planned = make_plan(Recorded(True), (), (), ()).units
    assert sorted(named) == sorted((u.resource.group, u.resource.resource) for u in planned)
    assert len(named) == len(set(named))
    assert ("", "configmaps") in named
    assert ("multi.kstream.dev", "sprockets") in named  # served at v1alpha1 only
    assert {v for rule in doc["rules"] for v in rule["verbs"]} == {"list", "watch"}
    assert not [r for _, r in named if "/" in r or r == "*"]
    # --exclude: a role without them
    code, out, err = cli("rbac", "--exclude", "configmaps")
    assert code == 0, err
    assert '"configmaps"' not in out and '"pods"' in out
    assert out.startswith("# kstream rbac --exclude configmaps\n")
