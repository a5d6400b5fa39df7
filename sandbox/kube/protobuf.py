"""Just enough of Kubernetes' protobuf encoding to read what kubectl sends that way: its typed
clients post SelfSubjectAccessReviews (`kubectl auth can-i`) as protobuf only, and client-go
does not fall back to JSON. A reader of the wire format for that one message, not a codec."""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"
# ResourceAttributes' field numbers (k8s.io/api/authorization/v1/generated.proto).
RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource",
                       6: "subresource", 7: "name"}  # fmt: skip


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if not byte & 0x80:
            return value, at


def fields(data: bytes) -> dict[int, list[bytes | int]]:
    """Field number -> values: bytes for length-delimited fields, ints for varints."""
    found: dict[int, list[bytes | int]] = {}
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, at = _varint(data, at)
            found.setdefault(number, []).append(value)
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ProtobufError("truncated field")
            found.setdefault(number, []).append(data[at : at + size])
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return found


def _message(data: bytes, number: int) -> bytes:
    values = fields(data).get(number) or [b""]
    value = values[-1]
    return value if isinstance(value, bytes) else b""


def access_review(body: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview as JSON would carry it: `spec.resourceAttributes`."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf envelope")
    raw = _message(body[len(MAGIC) :], 2)  # runtime.Unknown.raw
    spec = _message(raw, 2)
    attributes = fields(_message(spec, 1))
    resource = {
        name: value.decode()
        for number, name in RESOURCE_ATTRIBUTES.items()
        for value in attributes.get(number, [])[-1:]
        if isinstance(value, bytes)
    }
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": resource},
    }
