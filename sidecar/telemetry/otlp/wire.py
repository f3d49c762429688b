"""Protocol-buffers wire format for OTLP, written by hand: the pieces every signal shares.

Why not the generated classes (opentelemetry-proto) or the SDK's encoder: building a message
field by field through them costs about 2 µs per attribute, 39 µs for one GenAI span of 15
attributes (measured, upb backend); writing the bytes directly costs a fifth of that (see
bench/telemetry.py). The exporter threads pay this, but they share the GIL with the event loop,
so it is CPU every request pays. The layout follows opentelemetry-proto v1 (common.proto,
resource.proto); tests/unit/telemetry/otlp/test_wire.py parses our bytes back with the official
classes.

Only what OTLP needs: varints, fixed64/fixed32, doubles, length-delimited fields, `AnyValue`
(string, bool, int, double, array, key-value list) and `KeyValue` lists. Strings that are not
valid UTF-8 are replaced rather than sent: a collector rejects the whole request otherwise.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["AttributeEncoder", "field", "fixed32", "fixed64", "tag", "text", "varint"]

_SMALL = [bytes((i,)) for i in range(128)]
_DOUBLE = struct.Struct("<d").pack
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_KEY_CACHE_MAX = 4096  # attribute keys come from a fixed vocabulary; a cap in case they do not
_CACHED_TEXT_MAX = 64  # longer string values are not cached (ids fit; content does not)

# Wire types (protobuf encoding spec).
VARINT, I64, LEN, I32 = 0, 1, 2, 5


def varint(n: int) -> bytes:
    if n < 0x80:
        if n >= 0:
            return _SMALL[n]
        n += 1 << 64  # int64: negative numbers take ten bytes, two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def field(tag_bytes: bytes, payload: bytes) -> bytes:
    """A length-delimited field (a string, bytes or an embedded message)."""
    return tag_bytes + varint(len(payload)) + payload


def text(value: str) -> bytes:
    return value.encode("utf-8", "replace")


def fixed64(tag_bytes: bytes, value: int) -> bytes:
    return tag_bytes + _FIXED64(value)


def fixed32(tag_bytes: bytes, value: int) -> bytes:
    return tag_bytes + _FIXED32(value)


def double(tag_bytes: bytes, value: float) -> bytes:
    return tag_bytes + _DOUBLE(value)


# AnyValue fields
_ANY_STRING = tag(1, LEN)
_ANY_BOOL = tag(2, VARINT)
_ANY_INT = tag(3, VARINT)
_ANY_DOUBLE = tag(4, I64)
_ANY_ARRAY = tag(5, LEN)
_ANY_KVLIST = tag(6, LEN)
_ARRAY_VALUES = tag(1, LEN)  # ArrayValue.values, KeyValueList.values
_KV_KEY = tag(1, LEN)
_KV_VALUE = tag(2, LEN)
_TRUE = _ANY_BOOL + b"\x01"
_FALSE = _ANY_BOOL + b"\x00"


def any_value(value: Any) -> bytes:
    """An AnyValue message. Unknown types are sent as their text (never an error)."""
    kind = type(value)
    if kind is str:
        return field(_ANY_STRING, text(value))
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is int:
        if -(1 << 63) <= value < (1 << 63):
            return _ANY_INT + varint(value)
        return field(_ANY_STRING, text(str(value)))
    if kind is float:
        return double(_ANY_DOUBLE, value)
    if isinstance(value, (list, tuple)):
        return field(_ANY_ARRAY, b"".join(field(_ARRAY_VALUES, any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return field(_ANY_KVLIST, b"".join(
            field(_ARRAY_VALUES, field(_KV_KEY, text(str(k))) + field(_KV_VALUE, any_value(v)))
            for k, v in value.items() if v is not None))
    return field(_ANY_STRING, text(str(value)))


class AttributeEncoder:
    """Encodes attribute maps as repeated KeyValue fields of one message field number.

    Encoded attributes are cached (bounded): keys come from a fixed vocabulary and most values
    repeat, so after warm-up a span's attributes cost about 5 µs instead of 14. `None` values
    are skipped (an absent attribute, not an empty one).
    """

    __slots__ = ("_done", "_keys", "_tag")

    def __init__(self, field_number: int) -> None:
        self._tag = tag(field_number, LEN)
        self._keys: dict[str, bytes] = {}
        # Whole encoded attributes by (key, type, value): most values repeat from request to
        # request (operation, provider, model, route, status...), and a hit costs a quarter of
        # an encoding. The type is in the key because 1 == 1.0 == True in Python.
        self._done: dict[tuple[str, type, Any], bytes] = {}

    def encode(self, attributes: Mapping[str, Any]) -> bytes:
        done = self._done
        out = []
        for key, value in attributes.items():
            if value is None:
                continue
            kind = type(value)
            if kind is float or (kind is str and len(value) > _CACHED_TEXT_MAX):
                # timings and costs never repeat; long text (captured content) would hold
                # whole prompts in the cache: encoded every time
                out.append(self._encode(key, value))
                continue
            cache_key = (key, kind, value)
            try:
                encoded = done.get(cache_key)
            except TypeError:  # unhashable (a list, a dict): encoded every time
                out.append(self._encode(key, value))
                continue
            if encoded is None:
                encoded = self._encode(key, value)
                if len(done) >= _KEY_CACHE_MAX:  # unique values (ids) fill it: start over
                    done.clear()
                done[cache_key] = encoded
            out.append(encoded)
        return b"".join(out)

    def _encode(self, key: str, value: Any) -> bytes:
        prefix = self._keys.get(key)
        if prefix is None:
            prefix = field(_KV_KEY, text(key))
            if len(self._keys) < _KEY_CACHE_MAX:
                self._keys[key] = prefix
        kv = prefix + field(_KV_VALUE, any_value(value))
        return field(self._tag, kv)


_SCOPE_NAME = tag(1, LEN)
_SCOPE_VERSION = tag(2, LEN)


def resource(attributes: Mapping[str, Any]) -> bytes:
    """A Resource message (its attributes); encoded once per process, so no key cache."""
    return AttributeEncoder(1).encode(attributes)


def scope(name: str, version: str) -> bytes:
    """An InstrumentationScope message."""
    return field(_SCOPE_NAME, text(name)) + field(_SCOPE_VERSION, text(version))


def packed_fixed64(tag_bytes: bytes, values: Sequence[int]) -> bytes:
    return field(tag_bytes, struct.pack(f"<{len(values)}Q", *values))


def packed_double(tag_bytes: bytes, values: Sequence[float]) -> bytes:
    return field(tag_bytes, struct.pack(f"<{len(values)}d", *values))
