"""SelfSubjectAccessReview for kstream serve (`kubectl auth can-i`, k9s before
it shows a view): reading is allowed, nothing else; JSON or kubectl's protobuf
(decoded just enough to find the resource attributes). Nothing is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from kstream.jsonlines import go_json
from kstream.serve.protocol import READ_VERBS, Response, bad_request

PROTOBUF_MAGIC = b"k8s\x00"  # runtime.Unknown envelope of the protobuf encoding


def _pb_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of one protobuf message: varints as int,
    length-delimited fields as bytes; fixed-width fields skipped."""
    i = 0

    def varint() -> int:
        nonlocal i
        shift = n = 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return n

    while i < len(buf):
        key = varint()
        wire = key & 7
        if wire == 0:
            yield key >> 3, varint()
        elif wire == 2:
            n = varint()
            yield key >> 3, buf[i : i + n]
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
        else:
            raise ValueError("unsupported protobuf wire type")


def _pb_message(buf: bytes, field_no: int) -> bytes:
    for f, v in _pb_fields(buf):
        if f == field_no and isinstance(v, bytes):
            return v
    return b""


RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
                       6: "subresource", 7: "name"}  # fmt: skip


def review_attrs_pb(body: bytes) -> dict[str, str]:
    """spec.resourceAttributes of a protobuf SelfSubjectAccessReview
    (runtime.Unknown.raw -> SelfSubjectAccessReview.spec -> .resourceAttributes)."""
    raw = _pb_message(body[len(PROTOBUF_MAGIC) :], 2)
    attrs = _pb_message(_pb_message(raw, 2), 1)
    return {
        RESOURCE_ATTRIBUTES[f]: v.decode()
        for f, v in _pb_fields(attrs)
        if f in RESOURCE_ATTRIBUTES and isinstance(v, bytes)
    }


def access_review(body: bytes, name: str) -> Response:
    """A SelfSubjectAccessReview (`kubectl auth can-i`, k9s before it shows
    a view): reading is allowed, nothing else. Nothing is stored."""
    try:
        if body.startswith(PROTOBUF_MAGIC):  # kubectl sends built-in types as protobuf
            review = {"spec": {"resourceAttributes": review_attrs_pb(body)}}
        else:
            review = json.loads(body)
        attrs = review["spec"].get("resourceAttributes") or {}
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        raise bad_request("the request body is not a SelfSubjectAccessReview") from None
    allowed = str(attrs.get("verb", "")) in READ_VERBS
    reason = "" if allowed else f"this server is a read-only snapshot ({name})"
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    doc = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": review.get("spec") or {},
        "status": status,
    }
    return Response(201, body=go_json(doc))
