"""A real local Kubernetes control plane (etcd + kube-apiserver) on loopback.

Built from the Go module proxy at pinned versions (see versions.py), cached outside
the repository, started in a fresh directory per run:

    cp = ControlPlane(Path("/tmp/cp"))
    cp.start()                      # returns once /readyz answers ok
    cp.kubeconfig                   # admin (system:masters) kubeconfig
    cp.add_user("limited")          # a client-certificate identity with no rights
    cp.stop()

The same code backs `python -m tests.controlplane start|stop DIR` and the pytest
session fixture.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.controlplane.versions import (
    ETCD_DIR,
    ETCD_VERSION,
    GO_BUILD_ENV,
    GO_MODULES,
    KUBE_VERSION,
    apiserver_module,
    bin_dir,
    watch_list_by_default,
)

READY_TIMEOUT = 120.0


class ControlPlaneError(RuntimeError):
    pass


# --------------------------------------------------------------------------- build


def binaries(version: str = KUBE_VERSION) -> dict[str, Path]:
    return {"etcd": ETCD_DIR / "etcd", "kube-apiserver": bin_dir(version) / "kube-apiserver"}


def build(verbose: bool = True, version: str = KUBE_VERSION) -> dict[str, Path]:
    """Build etcd and kube-apiserver `version` once; later calls reuse the cached
    binaries (one cache directory per version)."""
    bins = binaries(version)
    if all(p.is_file() and os.access(p, os.X_OK) for p in bins.values()):
        return bins
    module = apiserver_module(version)
    if not (module / "go.mod").is_file():
        raise ControlPlaneError(
            f"no wrapper module for kube-apiserver {version} ({module}/go.mod); "
            f"write it with: python -m tests.controlplane.genmod --kube-version {version}"
        )
    for p in bins.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    major, minor = version.lstrip("v").split(".")[:2]
    version_pkg = "k8s.io/component-base/version"
    kube_ldflags = " ".join(
        [
            "-s -w",
            f"-X {version_pkg}.gitVersion={version}",
            f"-X {version_pkg}.gitMajor={major}",
            f"-X {version_pkg}.gitMinor={minor}",
            f"-X {version_pkg}.gitTreeState=clean",
        ]
    )
    targets = [
        ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", kube_ldflags, version, module),
        ("etcd", "go.etcd.io/etcd/server/v3", "-s -w", ETCD_VERSION, GO_MODULES / "etcd"),
    ]
    for name, pkg, ldflags, v, mod in targets:
        out = bins[name]
        if out.is_file():
            continue
        go_build(out, pkg, name, v, ldflags, verbose, ControlPlaneError, module=mod)
    return bins


def go_build(
    out: Path,
    pkg: str,
    name: str,
    version: str,
    ldflags: str,
    verbose: bool,
    error: type[Exception],
    module: Path | None = None,
) -> None:
    """`go build` `pkg` into `out` (through out.tmp: a failed build leaves nothing)
    in the pinned wrapper module `module` (default GO_MODULES/`name`); raises
    `error` if it fails."""
    if verbose:
        print(
            f"building {name} ({version}) into {out.parent}; the first build takes several minutes",
            file=sys.stderr,
            flush=True,
        )
    tmp = out.with_suffix(".tmp")
    cmd = ["go", "build", "-trimpath", "-pgo=off", "-ldflags", ldflags, "-o", str(tmp), pkg]
    started = time.monotonic()
    res = subprocess.run(cmd, cwd=module or GO_MODULES / name, env=GO_BUILD_ENV)
    if res.returncode != 0:
        raise error(f"building {name} failed (exit {res.returncode})")
    tmp.rename(out)
    if verbose:
        print(f"built {name} in {time.monotonic() - started:.0f}s", file=sys.stderr)


def spawn_logged(args: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start `args` in a session of its own (killed as a group), its output
    appended to `log`."""
    with open(log, "ab") as f:
        return subprocess.Popen(
            args,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ControlPlaneError(f"openssl {args[0]} failed: {res.stderr.strip()}")


def _b64(path: Path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _pid_is_ours(pid: int, marker: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read()
    except OSError:
        return False


# --------------------------------------------------------------------------- control plane


@dataclass
class ControlPlane:
    dir: Path
    feature_gates: str = ""
    kube_version: str = KUBE_VERSION
    extra_apiserver_args: list[str] = field(default_factory=list)
    url: str = ""
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def watch_list(self) -> bool:
        """Whether this server serves watch-list (its WatchList gate, as set or
        by the version's default)."""
        gates = dict(g.split("=", 1) for g in self.feature_gates.split(",") if "=" in g)
        if "WatchList" in gates:
            return gates["WatchList"].strip().lower() == "true"
        return watch_list_by_default(self.kube_version)

    # paths ---------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def certs(self) -> Path:
        return self.dir / "certs"

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def ca_file(self) -> Path:
        return self.certs / "ca.crt"

    @property
    def admin_token(self) -> str:
        return (self.dir / "admin.token").read_text().strip()

    # lifecycle -----------------------------------------------------------
    def start(self) -> Path:
        bins = build(version=self.kube_version)
        self.dir = self.dir.resolve()
        if self.state_file.exists():
            raise ControlPlaneError(f"{self.dir} already holds a control plane; stop it first")
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in ("etcd", "certs", "logs"):
            d = self.dir / sub
            if d.exists():
                shutil.rmtree(d)
            d.mkdir()
        self._make_certs()
        token = secrets.token_hex(24)
        (self.dir / "admin.token").write_text(token + "\n")
        tokens = self.dir / "tokens.csv"
        tokens.write_text(f'{token},kstream-admin,kstream-admin,"system:masters"\n')
        tokens.chmod(0o600)

        etcd_client, etcd_peer, secure = free_port(), free_port(), free_port()
        self.url = f"https://127.0.0.1:{secure}"
        try:
            self._spawn(
                "etcd",
                [
                    str(bins["etcd"]),
                    "--name=kstream",
                    f"--data-dir={self.dir / 'etcd'}",
                    f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                    f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                    f"--initial-cluster=kstream=http://127.0.0.1:{etcd_peer}",
                    "--listen-metrics-urls=",
                    "--quota-backend-bytes=8589934592",
                    "--unsafe-no-fsync=true",
                    "--log-level=warn",
                ],
            )
            self._wait_etcd(etcd_client)
            args = [
                str(bins["kube-apiserver"]),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                # 1.37 refuses a loopback advertise address with the default (lease)
                # endpoint reconciler; no reconciler at all is the same on every version.
                "--endpoint-reconciler-type=none",
                f"--secure-port={secure}",
                f"--cert-dir={self.certs}",
                f"--tls-cert-file={self.certs / 'server.crt'}",
                f"--tls-private-key-file={self.certs / 'server.key'}",
                f"--client-ca-file={self.ca_file}",
                f"--token-auth-file={tokens}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.certs / 'sa.pub'}",
                f"--service-account-signing-key-file={self.certs / 'sa.key'}",
                "--enable-priority-and-fairness=true",
                "--profiling=false",
                "--v=0",
            ]
            if self.feature_gates:
                args.append(f"--feature-gates={self.feature_gates}")
            args += self.extra_apiserver_args
            self._spawn("kube-apiserver", args)
            self._write_state()
            self._write_kubeconfig(self.kubeconfig, "kstream-admin", token=token)
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.kubeconfig

    def stop(self) -> None:
        pids: dict[str, int] = {n: p.pid for n, p in self._procs.items()}
        if not pids and self.state_file.exists():
            pids = json.loads(self.state_file.read_text()).get("pids", {})
        marker = str(self.dir)
        # apiserver first, then etcd.
        for name in ("kube-apiserver", "etcd"):
            pid = pids.get(name)
            if pid is None:
                continue
            proc = self._procs.get(name)
            if proc is None and not _pid_is_ours(pid, marker):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if proc is not None and proc.poll() is not None:
                    break
                if proc is None and not _pid_alive(pid):
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                if proc is not None:
                    proc.wait(5)
        self._procs.clear()
        if self.state_file.exists():
            self.state_file.unlink()

    def kill_apiserver(self) -> None:
        pid = json.loads(self.state_file.read_text())["pids"]["kube-apiserver"]
        os.kill(pid, signal.SIGKILL)
        proc = self._procs.get("kube-apiserver")
        if proc is not None:
            proc.wait(10)

    def start_apiserver_again(self) -> None:
        state = json.loads(self.state_file.read_text())
        self._spawn("kube-apiserver", state["apiserver_args"])
        self._write_state()
        self._wait_ready()

    # identities ----------------------------------------------------------
    def add_user(self, name: str, groups: tuple[str, ...] = ()) -> Path:
        """A client-certificate identity (no rights until RBAC grants some)."""
        d = self.certs / "users"
        d.mkdir(exist_ok=True)
        subj = "/CN=" + name + "".join(f"/O={g}" for g in groups)
        key, csr, crt = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt"
        _openssl("genrsa", "-out", str(key), "2048", cwd=d)
        _openssl("req", "-new", "-key", str(key), "-subj", subj, "-out", str(csr), cwd=d)
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_file),
            "-CAkey", str(self.certs / "ca.key"), "-CAcreateserial",
            "-days", "2", "-out", str(crt), cwd=d,
        )  # fmt: skip
        path = self.dir / f"kubeconfig-{name}"
        self._write_kubeconfig(path, name, cert=crt, key=key)
        return path

    # internals -----------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> None:
        self._procs[name] = spawn_logged(args, self.dir / "logs" / f"{name}.log", self.dir)
        if name == "kube-apiserver":
            self._apiserver_args = args

    def _write_state(self) -> None:
        state = {
            "url": self.url,
            "pids": {n: p.pid for n, p in self._procs.items()},
            "apiserver_args": getattr(self, "_apiserver_args", []),
            "kube_version": self.kube_version,
            "etcd_version": ETCD_VERSION,
        }
        if self.state_file.exists():
            old = json.loads(self.state_file.read_text())
            state["pids"] = {**old["pids"], **state["pids"]}
            state["apiserver_args"] = state["apiserver_args"] or old["apiserver_args"]
        self.state_file.write_text(json.dumps(state, indent=2))

    def _make_certs(self) -> None:
        c = self.certs
        _openssl("genrsa", "-out", "ca.key", "2048", cwd=c)
        _openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=kstream-test-ca",
            "-days", "2", "-out", "ca.crt", cwd=c,
        )  # fmt: skip
        (c / "san.cnf").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
        )
        _openssl("genrsa", "-out", "server.key", "2048", cwd=c)
        _openssl("req", "-new", "-key", "server.key", "-subj", "/CN=kube-apiserver",
                 "-out", "server.csr", cwd=c)  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "server.crt", cwd=c,
        )  # fmt: skip
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=c)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=c)

    def _write_kubeconfig(
        self,
        path: Path,
        user: str,
        token: str | None = None,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> None:
        creds: dict[str, str] = {}
        if token is not None:
            creds["token"] = token
        if cert is not None and key is not None:
            creds["client-certificate-data"] = _b64(cert)
            creds["client-key-data"] = _b64(key)
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kstream-local",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": _b64(self.ca_file),
                    },
                }
            ],
            "users": [{"name": user, "user": creds}],
            "contexts": [
                {"name": "kstream-local", "context": {"cluster": "kstream-local", "user": user}}
            ],
            "current-context": "kstream-local",
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(cfg, f, indent=2)

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                tail = (self.dir / "logs" / f"{name}.log").read_text(errors="replace")[-3000:]
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _wait_etcd(self, port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if b'"true"' in r.read():
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise ControlPlaneError("etcd did not become healthy within 30s")

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self, path: str, token: str | None = None, timeout: float = 10
    ) -> tuple[int, bytes]:
        req = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {token or self.admin_token}"}
        )
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                status, body = self.request("/readyz", timeout=3)
                if status == 200:
                    return
                last = body.decode(errors="replace")[-500:]
            except (OSError, urllib.error.URLError) as e:
                last = str(e)
            time.sleep(0.2)
        raise ControlPlaneError(f"kube-apiserver not ready after {READY_TIMEOUT:.0f}s: {last}")
