"""Connection to the cluster: kubeconfig/in-cluster config, auth and a connection pool.

kstream merges the kubeconfig files itself (client-go's rules, below); the common
credentials and TLS settings (tokens, client certificates, CA, exec plugins,
in-cluster) come from kstream.cluster.auth, everything else from the official
`kubernetes` package's loaders and pool manager, which are imported only then
(their import alone costs 0.2-0.4 s). The pool is kstream.cluster.httppool's
(http.client) for kstream's own settings, urllib3's for the `kubernetes` package's
and for a `proxy-url` (`Urllib3Pool`); urllib3 is imported only then. Requests are
raw, bodies streamed, so no body is ever read whole and no model objects are
built. Every transport and config error is translated here, once, into kstream.errors.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from kstream import __version__, deepjson
from kstream.dataclass import dataclass
from kstream.errors import (
    ApiError,
    AuthError,
    ConfigError,
    ConnectionFailed,
    TLSError,
    TransportError,
    UsageError,
)

if TYPE_CHECKING:
    import ssl

    import urllib3
    from kubernetes.client import Configuration

    from kstream.cluster.auth import Impersonation, TlsSettings, Transport
    from kstream.cluster.httppool import Pool

CHUNK = 256 * 1024
USER_AGENT = f"kstream/{__version__}"


@dataclass(frozen=True)
class ConnectSettings:
    kubeconfig: str | None = None
    context: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # longest silence tolerated inside a response
    pool_size: int = 8
    # --as, --as-uid, --as-group: over the kubeconfig user's own (client-go's overrides)
    impersonate: Impersonation | None = None


def _retry_after(headers: Mapping[str, str], body: dict[str, Any] | None) -> float | None:
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    if body:
        secs = (body.get("details") or {}).get("retryAfterSeconds")
        if isinstance(secs, (int, float)):
            return float(secs)
    return None


def api_error(status: int, headers: Mapping[str, str], raw: bytes, what: str) -> ApiError:
    """Turn an error answer (JSON Status, or APF's plain text) into ApiError."""
    body: dict[str, Any] | None = None
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    if body is not None:
        message = str(body.get("message") or "").strip()
        reason = str(body.get("reason") or "")
        causes = tuple(
            str(c.get("field", "")) for c in (body.get("details") or {}).get("causes") or []
        )
    else:
        message = raw.decode("utf-8", "replace").strip().splitlines()[0] if raw.strip() else ""
        reason = "TooManyRequests" if status == 429 else ""
        causes = ()
    message = message or f"HTTP {status}"
    return ApiError(
        status,
        f"{what}: {message} (HTTP {status})",
        reason=reason,
        retry_after=_retry_after(headers, body),
        causes=causes,
    )


# --------------------------------------------------------------- kubeconfig
# Which files, how they merge and which context, cluster and user win: client-go's
# rules (tools/clientcmd/loader.go, ClientConfigLoadingRules.Load), so kstream talks
# to the cluster kubectl talks to:
#   - --kubeconfig replaces $KUBECONFIG; it names ONE file, which must exist (a ':'
#     in it is part of the name, as in kubectl; only $KUBECONFIG is a list).
#   - $KUBECONFIG: os.pathsep-separated; empty entries and missing files are
#     skipped, a file named twice is read once. Neither is set: ~/.kube/config.
#   - clusters, users, contexts: the FIRST file that defines a name wins, with its
#     whole entry (nothing of a later entry of the same name is used); a name twice
#     in one file is an error.
#   - current-context: from the first file that sets a non-empty one.
#   - relative file references (certificate-authority, client-certificate,
#     client-key, tokenFile, an exec command with a path separator) are resolved
#     against the directory of the file the entry came from.
#   - --context (when not empty) overrides current-context.
# Paths are used as written: like kubectl, no `~` expansion.

_CLUSTER_FILES = ("certificate-authority",)
_USER_FILES = ("client-certificate", "client-key", "tokenFile")
_SECTIONS = (("clusters", "cluster"), ("users", "user"), ("contexts", "context"))


@dataclass(frozen=True)
class KubeconfigFiles:
    """The kubeconfig files to merge, in order of precedence."""

    paths: tuple[str, ...]
    explicit: bool = False  # from --kubeconfig: a missing file is an error


def kubeconfig_files(
    kubeconfig: str | None = None, environ: Mapping[str, str] | None = None
) -> KubeconfigFiles:
    env = os.environ if environ is None else environ
    if kubeconfig:
        names, explicit = [kubeconfig], True  # one file name, ':' and all (kubectl)
    elif env.get("KUBECONFIG"):
        names, explicit = env["KUBECONFIG"].split(os.pathsep), False
    else:
        names, explicit = [str(Path.home() / ".kube" / "config")], False
    return KubeconfigFiles(tuple(dict.fromkeys(n for n in names if n)), explicit)


@dataclass
class MergedKubeconfig:
    """The merged kubeconfig: each entry with the file it came from."""

    clusters: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    contexts: dict[str, tuple[dict[str, Any], str]] = field(default_factory=dict)
    current_context: str = ""
    read: list[str] = field(default_factory=list)  # the files that were read
    missing: list[str] = field(default_factory=list)


def _read_kubeconfig_file(path: str) -> dict[str, Any] | None:
    """One file's YAML (None if it does not exist); ConfigError if unusable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise ConfigError(f"kubeconfig is a directory: {path}") from None
    except OSError as e:
        raise ConfigError(
            f"cannot read kubeconfig {path}: {e.strerror or type(e).__name__}"
        ) from None
    if not data.strip():
        return {}  # an empty file is an empty config, as in kubectl
    if data.lstrip()[:1] == b"{":  # JSON (a subset of YAML): no need to import yaml
        try:
            doc = json.loads(data)
        except ValueError:
            pass
        else:
            if not isinstance(doc, dict):
                raise ConfigError(f"invalid kubeconfig {path}: not a mapping of settings")
            return doc
    import importlib

    yaml: Any = importlib.import_module("yaml")
    try:
        doc = yaml.load(data, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except Exception as e:  # yaml.YAMLError, decoding errors: never show the content
        raise ConfigError(f"invalid kubeconfig {path}: cannot parse ({type(e).__name__})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"invalid kubeconfig {path}: not a mapping of settings")
    return doc


def _entries(
    doc: dict[str, Any], section: str, body_key: str, path: str
) -> dict[str, dict[str, Any]]:
    items = doc.get(section)
    if items is None:
        return {}
    if not isinstance(items, list):
        raise ConfigError(f"invalid kubeconfig {path}: {section} is not a list")
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ConfigError(f"invalid kubeconfig {path}: an entry of {section} has no name")
        name = item["name"]
        if name in out:
            raise ConfigError(f'invalid kubeconfig {path}: duplicate name "{name}" in {section}')
        body = item.get(body_key)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ConfigError(f'invalid kubeconfig {path}: {section} "{name}" is not a mapping')
        out[name] = body
    return out


def _resolve_files(body: dict[str, Any], keys: Sequence[str], origin: str) -> dict[str, Any]:
    """A copy of body with its relative file references made absolute against the
    directory of the file it came from."""
    import copy

    base = os.path.abspath(os.path.dirname(origin))
    out = copy.deepcopy(body)
    for k in keys:
        v = out.get(k)
        if isinstance(v, str) and v and not os.path.isabs(v):
            out[k] = os.path.normpath(os.path.join(base, v))
    ex = out.get("exec")
    if isinstance(ex, dict):
        cmd = ex.get("command")
        if isinstance(cmd, str) and os.sep in cmd and not os.path.isabs(cmd):
            ex["command"] = os.path.normpath(os.path.join(base, cmd))
    return out


def merge_kubeconfigs(files: KubeconfigFiles) -> MergedKubeconfig:
    """Read and merge the files by client-go's rules (see above)."""
    m = MergedKubeconfig()
    for path in files.paths:
        doc = _read_kubeconfig_file(path)
        if doc is None:
            if files.explicit:
                raise ConfigError(f"kubeconfig not found: {path}")
            m.missing.append(path)
            continue
        m.read.append(path)
        for section, body_key in _SECTIONS:
            target: dict[str, tuple[dict[str, Any], str]] = getattr(m, section)
            for name, body in _entries(doc, section, body_key, path).items():
                target.setdefault(name, (body, path))
        current = doc.get("current-context")
        if not m.current_context and isinstance(current, str) and current:
            m.current_context = current
    return m


@dataclass(frozen=True)
class ResolvedConfig:
    """Where a kubeconfig points for a context: what kubectl would connect to."""

    context: str
    cluster: str
    user: str  # "" when the context names none (anonymous)
    server: str
    namespace: str  # the context's namespace, "default" when it sets none
    # the minified config (one context, cluster, user; absolute file references),
    # for the client library. Holds credentials: never printed.
    config: dict[str, Any] = field(repr=False, compare=False)


def resolve(
    files: KubeconfigFiles, context: str | None = None, merged: MergedKubeconfig | None = None
) -> ResolvedConfig:
    """The context, cluster, user and namespace kubectl would use for these files
    and --context (None or "" for the current context). Raises ConfigError."""
    m = merge_kubeconfigs(files) if merged is None else merged
    if not m.read:
        raise ConfigError(f"kubeconfig not found: {os.pathsep.join(files.paths) or '(none)'}")
    name = context or m.current_context
    if not name:
        raise ConfigError("kubeconfig has no current-context; pass --context")
    if name not in m.contexts:
        avail = ", ".join(m.contexts) or "none"
        raise ConfigError(f'context "{name}" not found in kubeconfig (available: {avail})')
    ctx, _ = m.contexts[name]
    cluster_name = ctx.get("cluster")
    if not isinstance(cluster_name, str) or not cluster_name:
        raise ConfigError(f'invalid kubeconfig: context "{name}" names no cluster')
    if cluster_name not in m.clusters:
        raise ConfigError(
            f'invalid kubeconfig: context "{name}" names cluster "{cluster_name}", '
            "which no kubeconfig file defines"
        )
    cbody, corigin = m.clusters[cluster_name]
    cluster = _resolve_files(cbody, _CLUSTER_FILES, corigin)
    user_name = ctx.get("user") if isinstance(ctx.get("user"), str) else ""
    users: list[dict[str, Any]] = []
    if user_name and user_name in m.users:
        ubody, uorigin = m.users[user_name]
        users = [{"name": user_name, "user": _resolve_files(ubody, _USER_FILES, uorigin)}]
    server = cluster.get("server")
    if not isinstance(server, str) or not server:
        raise ConfigError("kubeconfig names no server for this context")
    namespace = ctx.get("namespace")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": name,
        "contexts": [{"name": name, "context": dict(ctx)}],
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": users,
    }
    return ResolvedConfig(
        context=name,
        cluster=cluster_name,
        user=str(user_name or ""),
        server=server,
        namespace=namespace if isinstance(namespace, str) and namespace else "default",
        config=config,
    )


class Response(Protocol):
    """What the readers use of a streamed response (httppool's and urllib3's satisfy it)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def read1(self, amt: int = ..., /) -> bytes: ...

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


class ApiTransport(Protocol):
    """The seam between the cluster and Reader, discovery and planning: what they
    call on a connection. Client is the real one; tests/fakes.py has a fake."""

    host: str
    context: str

    def open(
        self,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        accept: str = "application/json",
        read_timeout: float | None = None,
        what: str = "",
    ) -> Response: ...

    def get_json(
        self,
        path: str,
        accept: str = "application/json",
        what: str = "",
        query: Sequence[tuple[str, str]] = (),
    ) -> Any: ...

    def server_version(self) -> str: ...


class Client:
    """One cluster connection, shared by all streams (thread-safe pool)."""

    def __init__(self, settings: ConnectSettings) -> None:
        self.settings = settings
        self.context: str = ""
        self._load(settings)

    # --------------------------------------------------------------- config
    def _load(self, s: ConnectSettings) -> None:
        files = kubeconfig_files(s.kubeconfig)
        merged = merge_kubeconfigs(files)
        in_cluster = (
            not files.explicit and not merged.read and "KUBERNETES_SERVICE_HOST" in os.environ
        )
        resolved: ResolvedConfig | None = None
        if in_cluster:  # no kubeconfig file at all, inside a pod
            if s.context:
                raise ConfigError("--context needs a kubeconfig; running with in-cluster config")
            self.context = "in-cluster"
        else:
            resolved = resolve(files, s.context, merged)
            self.context = resolved.context
        self.loader = "kstream"  # or "kubernetes": which loader made the connection settings
        self._auth: Callable[[], str | None]
        self._refresh: Callable[[str | None, bool], bool] | None = None
        from kstream.cluster import auth as kubeauth

        self._impersonate = _impersonation(resolved, s.impersonate).headers()
        transport: Transport | None = None
        if os.environ.get(LOADER_ENV, "") != "kubernetes":
            try:
                transport = (
                    kubeauth.in_cluster()
                    if resolved is None
                    else kubeauth.from_kubeconfig(resolved.config)
                )
            except kubeauth.Fallback:
                pass  # what the small resolver does not handle goes to the kubernetes package
        if transport is None:
            self.loader = "kubernetes"
            cfg = kubernetes_configuration(resolved)
            self.host = _check_host(cfg.host)
            self.pool: Pool | Urllib3Pool = Urllib3Pool(
                _kubernetes_pool(cfg, s.pool_size), self.host
            )
            self._auth = lambda: _kubernetes_auth(cfg)
        else:
            self.host = _check_host(transport.host)
            self.pool = build_pool(transport.tls, s.pool_size, self.host)
            self._auth = transport.auth
            self._refresh = transport.refresh

    # --------------------------------------------------------------- requests
    def _headers(self, accept: str) -> dict[str, str]:
        h = {"Accept": accept, "User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        auth = self._auth()
        if auth:
            h["authorization"] = auth  # the key the kubernetes package used
        return h

    def header_fields(self, accept: str) -> list[tuple[str, str]]:
        """Every header field of a request, in order: several Impersonate-Group
        lines are each a field of their own."""
        return [*self._headers(accept).items(), *self._impersonate]

    def target(self, path: str, query: Sequence[tuple[str, str]] = ()) -> str:
        """The request target below the server URL: path and query."""
        q = urlencode(list(query), quote_via=quote) if query else ""
        return path + (f"?{q}" if q else "")

    def url(self, path: str, query: Sequence[tuple[str, str]] = ()) -> str:
        return self.host + self.target(path, query)

    def open(
        self,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        accept: str = "application/json",
        read_timeout: float | None = None,
        what: str = "",
    ) -> Any:
        """GET with a streamed body (a `Response`). Raises ApiError for non-2xx
        (body read, small)."""
        target = self.target(path, query)
        read = read_timeout if read_timeout is not None else self.settings.read_timeout

        def request(headers: Mapping[str, str]) -> Any:
            fields = [*headers.items(), *self._impersonate]  # as header_fields()
            try:
                return self.pool.get(target, fields, self.settings.connect_timeout, read)
            except Exception as e:
                raise translate(e, self.host) from None

        headers = self._headers(accept)
        resp = request(headers)
        if resp.status == 401 and self._refresh is not None:
            # an exec plugin's token rejected before its expiry (revoked, rotated):
            # run the plugin again, as client-go does, and retry this request once
            resp.drain_conn()
            resp.release_conn()
            if self._refresh(headers.get("authorization"), False):
                headers = self._headers(accept)
                resp = request(headers)
                if resp.status == 401:  # rejected too: no more runs for this token
                    self._refresh(headers.get("authorization"), True)
        if resp.status >= 300:
            try:
                raw = resp.read(64 * 1024)
            except Exception:
                raw = b""
            finally:
                resp.release_conn()
            err = api_error(resp.status, resp.headers, raw, what or path)
            if resp.status == 401:
                raise AuthError(
                    f"the server rejected the credentials ({what or path}): 401 Unauthorized"
                )
            raise err
        return resp

    def get_json(
        self,
        path: str,
        accept: str = "application/json",
        what: str = "",
        query: Sequence[tuple[str, str]] = (),
    ) -> Any:
        """A small JSON document (discovery, version), retried on 429, 5xx and
        broken connections (3 attempts, honouring Retry-After)."""
        for attempt in range(1, 4):
            try:
                resp = self.open(path, query, accept=accept, what=what)
                try:
                    data = b"".join(read_chunks(resp, self.host))
                finally:
                    resp.release_conn()
                break
            except ApiError as e:
                if not e.retriable or attempt == 3:
                    raise
                time.sleep(min(e.retry_after if e.retry_after is not None else attempt, 10.0))
            except TransportError:
                if attempt == 3:
                    raise
                time.sleep(attempt * 0.5)
        try:
            return deepjson.loads(data)
        except ValueError:
            raise TransportError(f"{what or path}: the server sent invalid JSON") from None

    def server_version(self) -> str:
        try:
            v = self.get_json("/version", what="server version")
        except ApiError as e:
            if e.status in (401, 403):
                return "unknown"
            raise
        return str(v.get("gitVersion", "unknown")) if isinstance(v, dict) else "unknown"


def _impersonation(resolved: ResolvedConfig | None, flags: Impersonation | None) -> Impersonation:
    """Who the requests act as: the kubeconfig user's `as*` fields with the
    command line's over them; uid, groups or extra without a user to impersonate
    are refused, as kubectl refuses them."""
    from kstream.cluster import auth as kubeauth

    name = ""
    imp = kubeauth.Impersonation()
    if resolved is not None:
        users = resolved.config.get("users") or []
        if users:
            name = str(users[0].get("name") or "")
            imp = kubeauth.impersonation(users[0].get("user") or {}, name)
    merged = imp.override(flags)
    if merged and not merged.user:
        if flags is not None and (flags.uid or flags.groups):
            raise UsageError(
                "--as-group and --as-uid need a user to impersonate: add --as USER "
                "(kubectl refuses them alone too)"
            )
        raise ConfigError(
            f'invalid kubeconfig: user "{name}" asks for as-uid, as-groups or '
            "as-user-extra without a user to impersonate (as)"
        )
    return merged


# ------------------------------------------------------------------ transports
# Two ways to the same connection settings: kstream.cluster.auth (the common cases,
# without importing the `kubernetes` package) and the `kubernetes` package's
# loaders (everything else; KSTREAM_CONFIG_LOADER=kubernetes forces it). Both are
# compared by tests/test_kubeconfig_resolver.py.

LOADER_ENV = "KSTREAM_CONFIG_LOADER"


def _check_host(host: str | None) -> str:
    if not host:
        raise ConfigError("kubeconfig names no server for this context")
    parts = urlsplit(host)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"invalid kubeconfig: server {host[:100]!r} is not an https:// URL")
    return host.rstrip("/")


class Urllib3Pool:
    """httppool.Pool's `get` over a urllib3 PoolManager: what the kubernetes
    package's loader builds, and a `proxy-url`'s ProxyManager."""

    def __init__(self, manager: urllib3.PoolManager, host: str) -> None:
        self.manager = manager
        self.host = host

    def get(
        self,
        target: str,
        headers: Sequence[tuple[str, str]],
        connect_timeout: float,
        read_timeout: float | None,
    ) -> urllib3.BaseHTTPResponse:
        import urllib3

        fields = urllib3.HTTPHeaderDict()
        for name, value in headers:
            fields.add(name, value)
        return self.manager.request(
            "GET",
            self.host + target,
            headers=fields,
            preload_content=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,
            redirect=False,
        )


def build_pool(tls: TlsSettings, pool_size: int, host: str) -> Pool | Urllib3Pool:
    """The connections to `host` for these settings: an httppool.Pool, or with a
    `proxy-url` urllib3's ProxyManager as the kubernetes package's RESTClientObject
    would build it (same urllib3 arguments). Client certificate data goes through an
    SSLContext instead of a temporary file that stays on disk."""
    import ssl

    try:
        if not tls.proxy_url:
            from kstream.cluster.httppool import Pool

            if not host.startswith("https:"):
                return Pool(host, None, tls.server_name, pool_size)
            if tls.cert_data is not None and tls.key_data is not None:
                return Pool(host, tls_context(tls), tls.server_name, pool_size)
            # files are read on the first connection, as urllib3 did
            return Pool(host, lambda: tls_context(tls), tls.server_name, pool_size)
        import urllib3

        kw: dict[str, Any] = {
            "cert_reqs": ssl.CERT_REQUIRED if tls.verify else ssl.CERT_NONE,
            "ca_certs": tls.ca_file,
            "ca_cert_data": tls.ca_data.decode("ascii", "replace") if tls.ca_data else None,
            "cert_file": tls.cert_file,
            "key_file": tls.key_file,
            "maxsize": pool_size,
        }
        if tls.server_name:
            kw["server_hostname"] = tls.server_name
        if tls.cert_data is not None and tls.key_data is not None:
            kw["ssl_context"] = tls_context(tls)
        return Urllib3Pool(urllib3.ProxyManager(proxy_url=tls.proxy_url, **kw), host)
    except (ssl.SSLError, OSError, ValueError) as e:
        raise TLSError(f"cannot load TLS material from kubeconfig: {type(e).__name__}") from None


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """The TLS context of these settings, made as urllib3 makes its own (TLS 1.2 or
    later, no compression, no session tickets; the system's CAs when the kubeconfig
    names none). Certificate and key data are loaded through a private temporary
    directory, removed before returning."""
    import shutil
    import ssl
    import tempfile

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_TICKET
    ctx.post_handshake_auth = True
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.ca_file or tls.ca_data:
        ctx.load_verify_locations(
            cafile=tls.ca_file,
            cadata=tls.ca_data.decode("ascii", "replace") if tls.ca_data else None,
        )
    else:
        ctx.load_default_certs()
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    elif tls.cert_data is not None and tls.key_data is not None:
        d = tempfile.mkdtemp(prefix="kstream-")  # 0700; removed before returning
        try:
            cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            for path, data in ((cert, tls.cert_data), (key, tls.key_data)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data or b"")
            ctx.load_cert_chain(cert, key)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return ctx


def kubernetes_configuration(resolved: ResolvedConfig | None) -> Configuration:
    """The `kubernetes` package's Configuration for a resolved context (None: in-cluster),
    its errors translated. The path for everything kstream.cluster.auth leaves to it."""
    from kubernetes import config as kconfig
    from kubernetes.client import Configuration
    from kubernetes.config.config_exception import ConfigException

    cfg = Configuration()
    try:
        if resolved is None:
            kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            kconfig.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                config_dict=resolved.config,
                context=resolved.context,
                client_configuration=cfg,
                persist_config=False,
            )
    except ConfigException as e:
        raise ConfigError(f"invalid kubeconfig: {_safe(str(e))}") from None
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, OSError) as e:
        # yaml errors, bad base64 and the like: say what kind, never the content.
        import binascii

        if isinstance(e, binascii.Error):
            what = "bad base64 data"
        elif isinstance(e, (TypeError, AttributeError)):
            what = "unexpected structure"
        elif isinstance(e, KeyError):
            what = "a required field is missing"
        else:
            what = type(e).__name__
        raise ConfigError(f"invalid kubeconfig: {what}") from None
    except Exception as e:  # yaml.YAMLError and friends
        raise ConfigError(f"invalid kubeconfig: cannot parse ({type(e).__name__})") from None
    return cfg


def _kubernetes_pool(cfg: Configuration, pool_size: int) -> urllib3.PoolManager:
    import ssl

    from kubernetes.client.rest import RESTClientObject

    try:
        cfg.connection_pool_maxsize = pool_size
        rest = RESTClientObject(cfg)
    except ImportError:  # urllib3.contrib.socks without PySocks
        raise ConfigError(
            "invalid kubeconfig: a SOCKS proxy-url needs the PySocks package"
        ) from None
    except (ssl.SSLError, OSError) as e:
        raise TLSError(f"cannot load TLS material from kubeconfig: {type(e).__name__}") from None
    return rest.pool_manager


def _kubernetes_auth(cfg: Configuration) -> str | None:
    """The Authorization header the kubernetes package would send (refreshed by its hooks)."""
    settings: dict[str, Any] = dict(cfg.auth_settings())
    for auth in settings.values():
        if auth.get("in") == "header" and auth.get("value"):
            return str(auth["value"])
    return None


def reader(fp: Any, size: int = CHUNK) -> Callable[[int], bytes]:
    """`fp.read1`, but into one buffer of `size` bytes reused for every read,
    handing on a copy of just what arrived.

    A socket read returns one TLS record (about 4-6 KB from kube-apiserver),
    and `read1(256 KiB)` allocates a fresh 256 KiB object for each, which glibc
    may map, shrink and unmap every time (issue 26 measured that churn at a
    quarter of kstream's native samples; on the benchmark machine it showed in
    the raw reader, not in kstream: docs/benchmarks.md). `readinto1` reads
    straight into the reused buffer (or copies from the file's own buffer
    first), so no read allocates more than it returns."""
    readinto1 = getattr(fp, "readinto1", None)
    if readinto1 is None:
        read1: Callable[[int], bytes] = fp.read1
        return read1
    view = memoryview(bytearray(size))

    def read(_: int) -> bytes:
        n = readinto1(view)
        return view[:n].tobytes()

    return read


def read_chunks(
    resp: Response, host: str, size: int = CHUNK, fill: bool = False
) -> Iterator[bytes]:
    """The body in chunks as they arrive; transport errors translated.

    Reads from the http.client response under urllib3's when there is one: the
    body is never content-encoded (we ask for identity), and urllib3's read1
    wrapper cost over a third of the stream threads' CPU in the benchmark.
    `fill`: chunks of `size` bytes (but the last), for a body that is parsed in
    batches anyway (a LIST page: the server sends about one HTTP chunk per
    item, and each chunk handed on costs CPU)."""
    fp = getattr(resp, "_fp", None)
    encoded = resp.headers.get("Content-Encoding", "identity") not in ("", "identity")
    read = (
        reader(fp, size) if fp is not None and hasattr(fp, "read1") and not encoded else resp.read1
    )
    if fill and fp is not None and hasattr(fp, "read") and not encoded:
        read = fp.read
    try:
        while True:
            chunk = read(size)
            if not chunk:
                return
            yield chunk
    except Exception as e:
        raise translate(e, host) from None


def translate(e: BaseException, host: str) -> Exception:
    """httppool/urllib3/ssl/socket errors -> kstream errors (one line, no secrets)."""
    import socket
    import ssl
    import sys
    from http.client import HTTPException

    from kstream.cluster.httppool import ConnectFailed

    inner: BaseException = e
    if isinstance(e, ConnectFailed):
        return _connect_failed(e.reason, host)
    if "urllib3" in sys.modules:  # the kubernetes package's pool, or a proxy's
        inner, from_urllib3 = _translate_urllib3(e, host)
        if from_urllib3 is not None:
            return from_urllib3
    if isinstance(inner, ssl.SSLError):
        return _tls_error(inner, host)
    if isinstance(inner, (TimeoutError, socket.timeout)):
        return TransportError(f"no data from {host} within the read timeout")
    if isinstance(inner, (ConnectionError, OSError, HTTPException)):
        return TransportError(f"connection to {host} broke: {type(inner).__name__}")
    return TransportError(f"request to {host} failed: {type(inner).__name__}")


def _tls_error(inner: BaseException, host: str) -> TLSError:
    detail = str(inner)
    if "CERTIFICATE_VERIFY_FAILED" in detail:
        detail = "certificate verify failed"
    elif "hostname" in detail.lower() or "match" in detail.lower():
        detail = "certificate does not match the server name"
    else:
        detail = type(inner).__name__
    return TLSError(f"TLS error talking to {host}: {detail}")


def _connect_failed(reason: OSError, host: str) -> ConnectionFailed:
    """What httppool's connect phase raised, as urllib3's were reported."""
    import socket

    if isinstance(reason, socket.gaierror):
        return ConnectionFailed(f"cannot connect to {host}: name does not resolve")
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return ConnectionFailed(f"cannot connect to {host}: timed out")
    return ConnectionFailed(f"cannot connect to {host}: connection refused or unreachable")


def _translate_urllib3(e: BaseException, host: str) -> tuple[BaseException, Exception | None]:
    """urllib3's errors (the kubernetes package's pool, a proxy's): the error
    inside a MaxRetryError, and its translation (None: not urllib3's own)."""
    import urllib3.exceptions as ue

    inner: BaseException = e
    if isinstance(e, ue.MaxRetryError) and e.reason is not None:
        inner = e.reason
    if isinstance(inner, ue.SSLError):
        return inner, _tls_error(inner, host)
    if isinstance(inner, ue.ReadTimeoutError):
        return inner, TransportError(f"no data from {host} within the read timeout")
    # urllib3 2: NameResolutionError < NewConnectionError < ConnectTimeoutError
    if isinstance(inner, ue.NameResolutionError):
        return inner, ConnectionFailed(f"cannot connect to {host}: name does not resolve")
    if isinstance(inner, (ue.NewConnectionError, ConnectionRefusedError)):
        return inner, ConnectionFailed(
            f"cannot connect to {host}: connection refused or unreachable"
        )
    if isinstance(inner, ue.ConnectTimeoutError):
        return inner, ConnectionFailed(f"cannot connect to {host}: timed out")
    if isinstance(inner, ue.HTTPError):
        return inner, TransportError(f"connection to {host} broke: {type(inner).__name__}")
    return inner, None


def _safe(msg: str) -> str:
    """Config loader messages, trimmed to one line and without anything token-like."""
    line = msg.strip().splitlines()[0] if msg.strip() else "unknown problem"
    for marker in ("token", "password", "client-key", "BEGIN "):
        if marker in line:
            return line.split(marker)[0] + marker + " ...(hidden)"
    return line[:300]
