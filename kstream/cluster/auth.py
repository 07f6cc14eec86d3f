"""A small kubeconfig resolver: credentials and TLS settings for one resolved
context, for the cases almost everyone has, without importing the `kubernetes`
package (whose import alone costs 0.2-0.4 s).

Handled here (client-go's meaning, differential-tested against the `kubernetes`
package's loader and, for exec plugins, against kubectl):
  - bearer `token`, `tokenFile` (token wins when both are set, as in the loaders);
  - client certificate and key, as file or base64 data;
  - certificate authority, as file or base64 data; `insecure-skip-tls-verify`;
    `tls-server-name`; `proxy-url` (http/https proxies);
  - exec credential plugins, client.authentication.k8s.io/v1 and v1beta1: `args`,
    `env`, `provideClusterInfo` (KUBERNETES_EXEC_INFO as kubectl sends it),
    `interactiveMode`, `installHint`; the credential (token or certificate) is
    kept until its `expirationTimestamp`, then the plugin runs again;
  - in-cluster: service-account token (re-read every minute) and CA from the
    mount directory, KUBERNETES_SERVICE_HOST/PORT.

Impersonation (`as`, `as-uid`, `as-groups`, `as-user-extra`, and kubectl's --as,
--as-uid, --as-group) is read by `impersonation()` whichever loader makes the
connection (the `kubernetes` package knows nothing of it): the Client sends
client-go's Impersonate-* headers with every request.

Everything else raises `Fallback` and the caller uses the `kubernetes` package as
before: auth-provider plugins (oidc, gcp, azure), username/password, other exec
API versions, socks proxies, proxies from the environment, values of an
unexpected type, and bad values (a missing file, bad base64): the `kubernetes`
loader then reports them exactly as it always did. Nothing is ever rejected
because this resolver does not know it. The one exception is an exec plugin that
fails: like kubectl, that is an error (AuthError), where the `kubernetes` package
would log it and go on without credentials.

Core module: imports neither typer nor rich (nor urllib3: the caller builds the pool).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import field, replace
from typing import Any

from kstream.dataclass import dataclass
from kstream.errors import AuthError, ConfigError

EXEC_VERSIONS = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# For tests only: another directory in place of SERVICE_ACCOUNT_DIR, so that the
# in-cluster path can run outside a pod (tests/test_deploy_cluster.py). A pod
# never sets it; the `kubernetes` package's in-cluster loader ignores it.
SERVICE_ACCOUNT_DIR_ENV = "KSTREAM_SERVICEACCOUNT_DIR"
IN_CLUSTER_TOKEN_REFRESH = 60.0  # seconds; the projected token file is rotated
EXPIRY_SKEW = 0.0  # client-go uses a credential until its expirationTimestamp

_USER_KEYS = frozenset(
    {
        "token",
        "tokenFile",
        "client-certificate",
        "client-certificate-data",
        "client-key",
        "client-key-data",
        "exec",
        "extensions",
        # impersonation: headers, read by impersonation() for either loader
        "as",
        "as-uid",
        "as-groups",
        "as-user-extra",
    }
)


class Fallback(Exception):
    """This config is not for the small resolver: use the `kubernetes` package.
    The message says why (never a secret)."""


@dataclass(frozen=True)
class TlsSettings:
    """What the connection pool needs. PEM bytes for data, absolute paths for files."""

    verify: bool = True
    ca_file: str | None = None
    ca_data: bytes | None = None
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)
    server_name: str | None = None
    proxy_url: str | None = None


@dataclass
class Transport:
    """Where and how to connect: the server URL, TLS, and the Authorization header."""

    host: str
    tls: TlsSettings
    auth: Callable[[], str | None] = field(repr=False)  # the Authorization header value
    kind: str = "anonymous"  # token, tokenFile, client-certificate, exec, in-cluster
    # After a 401 answered to the Authorization value given: True when a new
    # credential is there to retry the request with once (exec plugins); called
    # with retried=True when the retry got 401 too.
    refresh: Callable[[str | None, bool], bool] | None = field(default=None, repr=False)


# ------------------------------------------------------------------ helpers


def _str(body: Mapping[str, Any], key: str) -> str | None:
    """A string field; absent or empty -> None; any other type -> Fallback."""
    v = body.get(key)
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise Fallback(f"{key} is not a string")
    return v


def _b64(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise Fallback(f"{what}: bad base64") from None


def _file(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise Fallback(f"{what}: not a file")
    return path


def _proxy_env(environ: Mapping[str, str], proxy_url: bool = False) -> bool:
    """Proxy variables in the environment (urllib's getproxies: any *_proxy): the
    kubernetes package honours them, with its own NO_PROXY rules, which also apply
    to a kubeconfig's proxy-url; leave those runs to it. NO_PROXY alone changes
    nothing when no proxy is used."""
    for k, v in environ.items():
        name = k.lower()
        if v and name.endswith("_proxy") and (name != "no_proxy" or proxy_url):
            return True
    return False


def _tls(cluster: Mapping[str, Any], user: Mapping[str, Any], host: str) -> TlsSettings:
    verify = True
    skip = cluster.get("insecure-skip-tls-verify")
    if skip is not None:
        if not isinstance(skip, bool):
            raise Fallback("insecure-skip-tls-verify is not a boolean")
        verify = not skip
    server_name = _str(cluster, "tls-server-name")
    proxy = _str(cluster, "proxy-url")
    if proxy is not None and not proxy.lower().startswith(("http://", "https://")):
        raise Fallback("proxy-url is not an http(s) proxy")
    if not host.startswith("https"):  # as the kubernetes loader: no TLS material for http
        return TlsSettings(verify=verify, server_name=server_name, proxy_url=proxy)
    ca_file = ca_data = cert_file = key_file = cert_data = key_data = None
    # data wins over the file when set (non-empty), as in the kubernetes loader
    if (d := _str(cluster, "certificate-authority-data")) is not None:
        ca_data = _b64(d, "certificate-authority-data")
    elif (f := _str(cluster, "certificate-authority")) is not None:
        ca_file = _file(f, "certificate-authority")
    if (d := _str(user, "client-certificate-data")) is not None:
        cert_data = _b64(d, "client-certificate-data")
    elif (f := _str(user, "client-certificate")) is not None:
        cert_file = _file(f, "client-certificate")
    if (d := _str(user, "client-key-data")) is not None:
        key_data = _b64(d, "client-key-data")
    elif (f := _str(user, "client-key")) is not None:
        key_file = _file(f, "client-key")
    if (cert_data or cert_file) and not (key_data or key_file):
        raise Fallback("client certificate without key")
    if (key_data or key_file) and not (cert_data or cert_file):
        raise Fallback("client key without certificate")
    return TlsSettings(
        verify=verify,
        ca_file=ca_file,
        ca_data=ca_data,
        cert_file=cert_file,
        key_file=key_file,
        cert_data=cert_data,
        key_data=key_data,
        server_name=server_name,
        proxy_url=proxy,
    )


# ------------------------------------------------------------------ kubeconfig


def from_kubeconfig(
    config: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Transport:
    """The transport for a minified config (kubeclient.resolve(...).config: one
    context, cluster and user, file references absolute). Raises Fallback."""
    env = os.environ if environ is None else environ
    cluster = config["clusters"][0]["cluster"]
    if _proxy_env(env, bool(cluster.get("proxy-url"))):
        raise Fallback("proxy variables in the environment")
    users = config.get("users") or []
    user: Mapping[str, Any] = users[0]["user"] if users else {}
    host = cluster.get("server")
    if not isinstance(host, str) or not host:
        raise Fallback("no server")
    host = host.rstrip("/")
    unknown = set(user) - _USER_KEYS
    if unknown:  # auth-provider, username/password, anything new
        raise Fallback("user entry has " + ", ".join(sorted(unknown)))
    token = _str(user, "token")
    token_file = _str(user, "tokenFile")
    ex = user.get("exec")
    if token is None and token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip() or None  # client-go trims the file's content
        except (OSError, UnicodeDecodeError):
            raise Fallback("tokenFile cannot be read") from None
        kind = "tokenFile" if token else "anonymous"
    else:
        kind = "token" if token else "anonymous"
    plugin: ExecPlugin | None = None
    if token is None and ex is not None:
        if not isinstance(ex, dict):
            raise Fallback("exec is not a mapping")
        plugin = ExecPlugin(ex, cluster, env)
        kind = "exec"
    tls = _tls(cluster, user, host)
    if plugin is not None:
        cred = plugin.credential()
        if cred.cert_data is not None:
            # an exec plugin's client certificate replaces the kubeconfig's
            tls = replace(
                tls,
                cert_file=None,
                key_file=None,
                cert_data=cred.cert_data,
                key_data=cred.key_data,
            )
        return Transport(host, tls, plugin.header, kind, plugin.refresh)
    if kind == "anonymous" and (tls.cert_file or tls.cert_data):
        kind = "client-certificate"
    header = f"Bearer {token}" if token else None
    return Transport(host, tls, lambda: header, kind)


# ------------------------------------------------------------------ exec plugins


@dataclass(frozen=True)
class Credential:
    token: str | None = field(default=None, repr=False)
    cert_data: bytes | None = field(default=None, repr=False)
    key_data: bytes | None = field(default=None, repr=False)
    expires: float | None = None  # epoch seconds; None: never

    @property
    def bearer(self) -> str | None:
        """The Authorization header value of a token credential."""
        return f"Bearer {self.token}" if self.token else None


def _rfc3339(value: str) -> float:
    from datetime import datetime

    v = value.strip()
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError("bad expirationTimestamp") from None
    if dt.tzinfo is None:
        raise ValueError("expirationTimestamp has no time zone")
    return dt.timestamp()


class ExecPlugin:
    """One exec credential plugin (client-go's exec authenticator, the parts kubectl
    users rely on). The credential is cached until its expirationTimestamp."""

    def __init__(
        self, spec: Mapping[str, Any], cluster: Mapping[str, Any], environ: Mapping[str, str]
    ) -> None:
        version = spec.get("apiVersion")
        if version not in EXEC_VERSIONS:
            raise Fallback("exec apiVersion not handled here")
        self.version: str = version
        command = spec.get("command")
        if not isinstance(command, str) or not command:
            raise Fallback("exec has no command")
        self.command = command
        args = spec.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise Fallback("exec args are not a list of strings")
        self.args: list[str] = args
        env = spec.get("env") or []
        if not isinstance(env, list):
            raise Fallback("exec env is not a list")
        self.env: list[tuple[str, str]] = []
        for item in env:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("name"), str)
                or not isinstance(item.get("value"), str)
            ):
                raise Fallback("exec env entry is not a name and a value")
            self.env.append((item["name"], item["value"]))
        mode = spec.get("interactiveMode")
        if mode in (None, ""):
            if version.endswith("/v1"):  # client-go: required for v1
                raise AuthError(
                    f'exec plugin "{command}": interactiveMode must be specified for {version}'
                )
            mode = "IfAvailable"
        if mode not in ("Never", "IfAvailable", "Always"):
            raise AuthError(f'exec plugin "{command}": invalid interactiveMode "{mode}"')
        self.mode: str = mode
        hint = spec.get("installHint")
        self.install_hint = " ".join(hint.split()) if isinstance(hint, str) else ""
        pci = spec.get("provideClusterInfo", False)
        if not isinstance(pci, bool):
            raise Fallback("provideClusterInfo is not a boolean")
        self.cluster_info = _exec_cluster(cluster) if pci else None
        self.environ = dict(environ)
        self._cred: Credential | None = None
        self._rejected: str | None = None  # a fresh run's token, rejected too
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- running
    def _interactive(self) -> bool:
        try:
            tty = sys.stdin is not None and os.isatty(sys.stdin.fileno())
        except (ValueError, OSError, AttributeError):
            tty = False
        if self.mode == "Never":
            return False
        if self.mode == "Always" and not tty:
            raise AuthError(
                f'exec plugin "{self.command}" needs an interactive terminal '
                "(interactiveMode: Always), but standard input is not a terminal"
            )
        return tty

    def exec_info(self, interactive: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.cluster_info is not None:
            spec["cluster"] = self.cluster_info
        spec["interactive"] = interactive
        return {"kind": "ExecCredential", "apiVersion": self.version, "spec": spec}

    def run(self) -> Credential:
        interactive = self._interactive()
        env = dict(self.environ)
        env.update(self.env)
        env["KUBERNETES_EXEC_INFO"] = json.dumps(self.exec_info(interactive))
        name = f'exec plugin "{self.command}"'
        try:
            p = subprocess.run(
                [self.command, *self.args],
                env=env,
                stdin=None if interactive else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=None,  # the plugin talks to the user on stderr, as with kubectl
                check=False,
            )
        except FileNotFoundError:
            hint = f" ({self.install_hint})" if self.install_hint else ""
            raise AuthError(f"cannot get credentials: {name} not found{hint}") from None
        except OSError as e:
            raise AuthError(
                f"cannot get credentials: {name} cannot run: {e.strerror or type(e).__name__}"
            ) from None
        if p.returncode != 0:
            raise AuthError(f"cannot get credentials: {name} failed with exit code {p.returncode}")
        return self._parse(p.stdout, name)

    def _parse(self, out: bytes, name: str) -> Credential:
        bad = f"cannot get credentials: {name} printed "
        try:
            doc = json.loads(out)
        except ValueError:
            raise AuthError(bad + "no valid JSON") from None
        if not isinstance(doc, dict) or doc.get("kind") != "ExecCredential":
            raise AuthError(bad + "no ExecCredential")
        if doc.get("apiVersion") != self.version:
            raise AuthError(
                bad + f"apiVersion {str(doc.get('apiVersion'))[:80]!r}, not {self.version}"
            )
        status = doc.get("status")
        if not isinstance(status, dict):
            raise AuthError(bad + "no status")
        expires = None
        ts = status.get("expirationTimestamp")
        if ts not in (None, ""):
            try:
                expires = _rfc3339(str(ts))
            except ValueError as e:
                raise AuthError(bad + str(e)) from None
        token = status.get("token")
        cert = status.get("clientCertificateData")
        key = status.get("clientKeyData")
        if isinstance(token, str) and token:
            return Credential(token=token, expires=expires)
        if isinstance(cert, str) and cert and isinstance(key, str) and key:
            return Credential(cert_data=cert.encode(), key_data=key.encode(), expires=expires)
        if cert or key:
            raise AuthError(bad + "only one of clientCertificateData and clientKeyData")
        raise AuthError(bad + "neither a token nor a client certificate")

    # ---------------------------------------------------------------- caching
    def credential(self) -> Credential:
        with self._lock:
            c = self._cred
            if c is None or (c.expires is not None and time.time() >= c.expires - EXPIRY_SKEW):
                c = self._cred = self.run()
            return c

    def header(self) -> str | None:
        c = self._cred
        if c is not None and c.cert_data is not None:
            return None  # a certificate lives in the pool, set up once (as in kubernetes)
        return self.credential().bearer

    def refresh(self, used: str | None, retried: bool = False) -> bool:
        """The server answered 401 to the Authorization value `used`: run the
        plugin again, unless another request has already replaced that credential
        (client-go's maybeRefreshCreds: the token may be revoked or rotated before
        its expirationTimestamp). True when there is a different token to retry
        with; the caller retries once, and says so (retried=True) when the retry
        got 401 too: a token the plugin has just given that the server rejects
        does not make it run again (until the credential expires). A certificate
        credential is not refreshed here (it lives in the connection pool)."""
        with self._lock:
            if retried:
                self._rejected = used
                return False
            c = self._cred
            if c is not None and c.cert_data is not None:
                return False
            if used is not None and used == self._rejected:
                return False
            if c is None or c.bearer == used:
                c = self._cred = self.run()
            new = c.bearer
            return new is not None and new != used


def _exec_cluster(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """spec.cluster of KUBERNETES_EXEC_INFO, as client-go fills it (omitempty)."""
    out: dict[str, Any] = {"server": cluster.get("server")}
    if cluster.get("tls-server-name"):
        out["tls-server-name"] = cluster["tls-server-name"]
    if cluster.get("insecure-skip-tls-verify"):
        out["insecure-skip-tls-verify"] = True
    ca: bytes | None = None
    if cluster.get("certificate-authority-data"):
        ca = _b64(str(cluster["certificate-authority-data"]), "certificate-authority-data")
    elif cluster.get("certificate-authority"):
        try:
            with open(str(cluster["certificate-authority"]), "rb") as f:
                ca = f.read()
        except OSError:
            raise Fallback("certificate-authority cannot be read") from None
    if ca:
        out["certificate-authority-data"] = base64.b64encode(ca).decode()
    if cluster.get("proxy-url"):
        out["proxy-url"] = cluster["proxy-url"]
    if cluster.get("disable-compression"):
        out["disable-compression"] = True
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == "client.authentication.k8s.io/exec":
            out["config"] = ext.get("extension")
            break
    return out


# ------------------------------------------------------------------ impersonation


@dataclass(frozen=True)
class Impersonation:
    """Who the requests act as: client-go's rest.ImpersonationConfig, from a
    kubeconfig user entry (`as`, `as-uid`, `as-groups`, `as-user-extra`) and
    kubectl's --as, --as-uid and --as-group flags. Empty: no impersonation."""

    user: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.user or self.uid or self.groups or self.extra)

    def override(self, flags: Impersonation | None) -> Impersonation:
        """The command line over the kubeconfig, as client-go merges its overrides:
        each field the flags set (non-empty) replaces the kubeconfig's."""
        if flags is None:
            return self
        return Impersonation(
            user=flags.user or self.user,
            uid=flags.uid or self.uid,
            groups=flags.groups or self.groups,
            extra=flags.extra or self.extra,
        )

    def headers(self) -> list[tuple[str, str]]:
        """client-go's impersonatingRoundTripper: Impersonate-User always (the
        marker), then Impersonate-Uid, one Impersonate-Group per group and one
        Impersonate-Extra-KEY per value, the key %-escaped."""
        if not self:
            return []
        out = [("Impersonate-User", self.user)]
        if self.uid:
            out.append(("Impersonate-Uid", self.uid))
        out.extend(("Impersonate-Group", g) for g in self.groups)
        for key, values in self.extra:
            out.extend(("Impersonate-Extra-" + _header_key_escape(key), v) for v in values)
        return out


# client-go's legalHeaderKeyBytes (net/http's token characters); '%' is escaped too
_HEADER_KEY_BYTES = frozenset(
    b"!#$&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


def _header_key_escape(key: str) -> str:
    return "".join(chr(b) if b in _HEADER_KEY_BYTES else f"%{b:02X}" for b in key.encode("utf-8"))


def impersonation(user: Mapping[str, Any], name: str) -> Impersonation:
    """The impersonation a kubeconfig user entry asks for. A value of the wrong
    type is an error (kubectl cannot load such a file either): ConfigError,
    naming the field, never the value."""

    def bad(key: str, want: str) -> ConfigError:
        return ConfigError(f'invalid kubeconfig: user "{name}": {key} is not {want}')

    def string(key: str) -> str:
        v = user.get(key)
        if v is None:
            return ""
        if not isinstance(v, str):
            raise bad(key, "a string")
        return v

    def strings(key: str, v: Any) -> tuple[str, ...]:
        if v is None:
            return ()
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise bad(key, "a list of strings")
        return tuple(v)

    extra_doc = user.get("as-user-extra")
    if extra_doc is not None and not isinstance(extra_doc, dict):
        raise bad("as-user-extra", "a mapping of lists of strings")
    extra = tuple((str(k), strings("as-user-extra", v)) for k, v in (extra_doc or {}).items())
    return Impersonation(
        user=string("as"),
        uid=string("as-uid"),
        groups=strings("as-groups", user.get("as-groups")),
        extra=extra,
    )


# ------------------------------------------------------------------ in-cluster


def in_cluster(environ: Mapping[str, str] | None = None, mount: str | None = None) -> Transport:
    """client-go's rest.InClusterConfig. Raises Fallback when something is off, so
    the kubernetes package reports it as before."""
    env = os.environ if environ is None else environ
    if _proxy_env(env):
        raise Fallback("proxy variables in the environment")
    h, p = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not h or not p:
        raise Fallback("service host/port not set")
    host = f"https://[{h}]:{p}" if ":" in h else f"https://{h}:{p}"
    mount = mount or env.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR
    token_path = os.path.join(mount, "token")
    ca_path = os.path.join(mount, "ca.crt")
    if not os.path.isfile(token_path) or not os.path.isfile(ca_path):
        raise Fallback("service-account files missing")
    if os.path.getsize(ca_path) == 0:
        raise Fallback("service-account CA is empty")
    token = _SAToken(token_path)
    token.header()  # read now: an empty or unreadable token falls back
    return Transport(host, TlsSettings(ca_file=ca_path), token.header, "in-cluster")


class _SAToken:
    def __init__(self, path: str) -> None:
        self.path = path
        self._value = ""
        self._read_at = -1e18
        self._lock = threading.Lock()

    def header(self) -> str | None:
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= IN_CLUSTER_TOKEN_REFRESH:
                try:
                    with open(self.path, encoding="utf-8") as f:
                        value = f.read().strip()
                except (OSError, UnicodeDecodeError):
                    value = ""
                if not value and not self._value:
                    raise Fallback("service-account token is empty or unreadable")
                if value:
                    self._value, self._read_at = value, now
            return f"Bearer {self._value}"
