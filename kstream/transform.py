"""What dump may change in an object: Secret values (redacted by default) and
fields the user asked to strip. Objects pass through untouched, as the bytes the
server sent, unless one of these applies to their resource."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kstream import deepjson, paths
from kstream.jsonlines import go_json
from kstream.resources import Resource

# what dump does with Secret values (--secrets)
SecretsMode = Literal["redact", "include", "exclude"]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CLEAN_PATHS = ("metadata.managedFields", f'metadata.annotations["{LAST_APPLIED}"]')


@dataclass(frozen=True)
class TransformOptions:
    secrets: SecretsMode = "redact"
    secret_key: bytes | None = None  # HMAC key; None = plain sha256
    strip: tuple[paths.FieldPath, ...] = ()


def is_secret(r: Resource) -> bool:
    return r.group == "" and r.resource == "secrets"


def digest(value: bytes, key: bytes | None) -> str:
    if key:
        return "hmac-sha256:" + hmac.new(key, value, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(value).hexdigest()


def _redact_values(obj: dict[str, Any], key: bytes | None) -> None:
    data = obj.get("data")
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, str):
                try:
                    raw = base64.b64decode(v, validate=True)
                except (binascii.Error, ValueError):
                    raw = v.encode()
                data[k] = digest(raw, key)
    sdata = obj.get("stringData")
    if isinstance(sdata, dict):
        for k, v in sdata.items():
            if isinstance(v, str):
                sdata[k] = digest(v.encode(), key)


def redact_secret(obj: dict[str, Any], key: bytes | None) -> None:
    """Replace every Secret value by its digest, in data, stringData and the
    copy kubectl keeps in the last-applied-configuration annotation."""
    _redact_values(obj, key)
    ann = (obj.get("metadata") or {}).get("annotations")
    if isinstance(ann, dict) and isinstance(ann.get(LAST_APPLIED), str):
        try:
            inner = deepjson.loads(ann[LAST_APPLIED])
            if not isinstance(inner, dict):
                raise ValueError
            _redact_values(inner, key)
            ann[LAST_APPLIED] = deepjson.dumps(inner, separators=(",", ":"), sort_keys=True) + "\n"
        except ValueError:
            ann[LAST_APPLIED] = digest(ann[LAST_APPLIED].encode(), key)


def make_transform(r: Resource, opts: TransformOptions) -> Callable[[bytes], bytes] | None:
    """The per-object transform for a resource, or None (bytes pass through)."""
    redact = is_secret(r) and opts.secrets == "redact"
    if not redact and not opts.strip:
        return None
    key, strip = opts.secret_key, opts.strip

    def transform(raw: bytes) -> bytes:
        obj = deepjson.loads(raw)
        if redact:
            redact_secret(obj, key)
        for p in strip:
            paths.delete(obj, p)
        return go_json(obj)

    return transform
