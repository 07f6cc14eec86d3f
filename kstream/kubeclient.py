"""Connection to the cluster: kubeconfig/in-cluster config, auth and a urllib3 pool.

The official `kubernetes` client does config, auth (tokens, client certificates,
exec plugins, refresh) and TLS; kstream uses its loaders and its pool manager but
makes raw requests with `preload_content=False`, so no body is ever read whole and
no model objects are built. Every transport and config error is translated here,
once, into kstream.errors.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from kstream import __version__, deepjson
from kstream.errors import (
    ApiError,
    AuthError,
    ConfigError,
    ConnectionFailed,
    TLSError,
    TransportError,
)

if TYPE_CHECKING:
    import urllib3

CHUNK = 256 * 1024
USER_AGENT = f"kstream/{__version__}"


@dataclass(frozen=True)
class ConnectSettings:
    kubeconfig: str | None = None
    context: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 60.0  # longest silence tolerated inside a response
    pool_size: int = 8


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


class Client:
    """One cluster connection, shared by all streams (thread-safe pool)."""

    def __init__(self, settings: ConnectSettings) -> None:
        self.settings = settings
        self.context: str = ""
        self._load(settings)

    # --------------------------------------------------------------- config
    def _load(self, s: ConnectSettings) -> None:
        from kubernetes import config as kconfig
        from kubernetes.client import Configuration
        from kubernetes.client.rest import RESTClientObject
        from kubernetes.config.config_exception import ConfigException

        cfg = Configuration()
        explicit = s.kubeconfig or os.environ.get("KUBECONFIG")
        paths = (
            [p for p in explicit.split(os.pathsep) if p]
            if explicit
            else [str(Path("~/.kube/config").expanduser())]
        )
        in_cluster = (
            not explicit and not Path(paths[0]).exists() and "KUBERNETES_SERVICE_HOST" in os.environ
        )
        try:
            if in_cluster:
                if s.context:
                    raise ConfigError(
                        "--context needs a kubeconfig; running with in-cluster config"
                    )
                kconfig.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
                self.context = "in-cluster"
            else:
                existing = [p for p in paths if Path(p).expanduser().exists()]
                if not existing:
                    where = s.kubeconfig or explicit or paths[0]
                    raise ConfigError(f"kubeconfig not found: {where}")
                for p in existing:
                    if Path(p).expanduser().is_dir():
                        raise ConfigError(f"kubeconfig is a directory: {p}")
                # Name the files explicitly: the client's default location is the
                # KUBECONFIG it saw when it was imported.
                config_file = os.pathsep.join(existing)
                from kubernetes.config.kube_config import KubeConfigMerger

                merged = KubeConfigMerger(config_file).config  # type: ignore[no-untyped-call]
                names = [str(c["name"]) for c in merged.safe_get("contexts") or []]
                current = merged.safe_get("current-context") or ""
                if s.context is not None and s.context not in names:
                    avail = ", ".join(names) or "none"
                    raise ConfigError(
                        f'context "{s.context}" not found in kubeconfig (available: {avail})'
                    )
                if s.context is None and not current:
                    raise ConfigError("kubeconfig has no current-context; pass --context")
                kconfig.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=config_file,
                    context=s.context,
                    client_configuration=cfg,
                    persist_config=False,
                )
                self.context = s.context or str(current)
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
        if not cfg.host:
            raise ConfigError("kubeconfig names no server for this context")
        if urlsplit(cfg.host).scheme not in ("https", "http") or not urlsplit(cfg.host).hostname:
            raise ConfigError(
                f"invalid kubeconfig: server {cfg.host[:100]!r} is not an https:// URL"
            )
        self.host = cfg.host.rstrip("/")
        self._cfg = cfg
        try:
            cfg.connection_pool_maxsize = s.pool_size
            rest = RESTClientObject(cfg)
        except (ssl.SSLError, OSError) as e:
            raise TLSError(
                f"cannot load TLS material from kubeconfig: {type(e).__name__}"
            ) from None
        self.pool: urllib3.PoolManager = rest.pool_manager

    # --------------------------------------------------------------- requests
    def _headers(self, accept: str) -> dict[str, str]:
        h = {"Accept": accept, "User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        settings: dict[str, Any] = dict(self._cfg.auth_settings())
        for auth in settings.values():
            if auth.get("in") == "header" and auth.get("value"):
                h[str(auth["key"])] = str(auth["value"])
        return h

    def url(self, path: str, query: Sequence[tuple[str, str]] = ()) -> str:
        q = urlencode(list(query), quote_via=quote) if query else ""
        return f"{self.host}{path}" + (f"?{q}" if q else "")

    def open(
        self,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        accept: str = "application/json",
        read_timeout: float | None = None,
        what: str = "",
    ) -> urllib3.BaseHTTPResponse:
        """GET with a streamed body. Raises ApiError for non-2xx (body read, small)."""
        import urllib3

        url = self.url(path, query)
        timeout = urllib3.Timeout(
            connect=self.settings.connect_timeout,
            read=read_timeout if read_timeout is not None else self.settings.read_timeout,
        )
        try:
            resp = self.pool.request(
                "GET",
                url,
                headers=self._headers(accept),
                preload_content=False,
                timeout=timeout,
                retries=False,
                redirect=False,
            )
        except Exception as e:
            raise translate(e, self.host) from None
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


def read_chunks(resp: urllib3.BaseHTTPResponse, host: str, size: int = CHUNK) -> Iterator[bytes]:
    """The body in chunks as they arrive; transport errors translated.

    Reads from the http.client response under urllib3's when there is one: the
    body is never content-encoded (we ask for identity), and urllib3's read1
    wrapper cost over a third of the stream threads' CPU in the benchmark."""
    fp = getattr(resp, "_fp", None)
    encoded = resp.headers.get("Content-Encoding", "identity") not in ("", "identity")
    read = fp.read1 if fp is not None and hasattr(fp, "read1") and not encoded else resp.read1
    try:
        while True:
            chunk = read(size)
            if not chunk:
                return
            yield chunk
    except Exception as e:
        raise translate(e, host) from None


def translate(e: BaseException, host: str) -> Exception:
    """urllib3/ssl/socket errors -> kstream errors (one line, no secrets)."""
    import urllib3.exceptions as ue

    inner: BaseException = e
    if isinstance(e, ue.MaxRetryError) and e.reason is not None:
        inner = e.reason
    if isinstance(inner, (ue.SSLError, ssl.SSLError)):
        detail = str(inner)
        if "CERTIFICATE_VERIFY_FAILED" in detail:
            detail = "certificate verify failed"
        elif "hostname" in detail.lower() or "match" in detail.lower():
            detail = "certificate does not match the server name"
        else:
            detail = type(inner).__name__
        return TLSError(f"TLS error talking to {host}: {detail}")
    if isinstance(inner, (ue.ReadTimeoutError, TimeoutError)):
        return TransportError(f"no data from {host} within the read timeout")
    # urllib3 2: NameResolutionError < NewConnectionError < ConnectTimeoutError
    if isinstance(inner, ue.NameResolutionError):
        return ConnectionFailed(f"cannot connect to {host}: name does not resolve")
    if isinstance(inner, (ue.NewConnectionError, ConnectionRefusedError)):
        return ConnectionFailed(f"cannot connect to {host}: connection refused or unreachable")
    if isinstance(inner, ue.ConnectTimeoutError):
        return ConnectionFailed(f"cannot connect to {host}: timed out")
    if isinstance(
        inner,
        (
            ue.ProtocolError,
            ue.IncompleteRead,
            ConnectionError,
            ue.HTTPError,
            OSError,
            HTTPException,
        ),
    ):
        return TransportError(f"connection to {host} broke: {type(inner).__name__}")
    return TransportError(f"request to {host} failed: {type(inner).__name__}")


def _safe(msg: str) -> str:
    """Config loader messages, trimmed to one line and without anything token-like."""
    line = msg.strip().splitlines()[0] if msg.strip() else "unknown problem"
    for marker in ("token", "password", "client-key", "BEGIN "):
        if marker in line:
            return line.split(marker)[0] + marker + " ...(hidden)"
    return line[:300]
