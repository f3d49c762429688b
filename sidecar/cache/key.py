"""The cache key: what makes two requests "the same request".

    key = blake2b-128( "v1" · path · identity · canonical JSON of the effective request )

- *path* is the upstream-relative path with its query (`/chat/completions`), so endpoints never
  share entries and a query that changes the answer (Azure's `api-version`) is part of the key;
  so is Anthropic's `anthropic-beta` header, which turns on features that change the answer.
- *identity* keeps tenants apart: the local key's name when `auth.required`, else the client's
  `Authorization` header, or its `x-api-key` (Anthropic's SDKs), hashed here with the rest and
  never stored, unless
  `cache.shared_namespace` is true.
- *the effective request* is the body with this attempt's `overrides` on top (spend may cap
  `max_tokens` there, which changes the answer), `model` set to the model being tried (a fallback
  candidate is cached as itself), minus `EXCLUDED` (fields that do not change the answer), with
  keys sorted at every level and numbers normalised (`1`, `1.0` and `1e0` are one temperature)
  everywhere but in the conversation (see `_CONTENT`).

One hash per request; its first 16 hex digits go out in `x-sidecar-cache-key`. Privacy runs
earlier, so a redacted request is keyed on its placeholders: the key never sees the raw values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.call import Call

# Request fields that do not change the answer, each with its reason (docs/cache.md lists them).
EXCLUDED: dict[str, str] = {
    "stream": "transport shape: a hit is served as a stream or as JSON, whichever was asked",
    "stream_options": "transport shape (include_usage only adds the usage chunk, kept apart)",
    "user": "an end-user id for the provider's abuse monitoring",
    "safety_identifier": "the Responses API's name for `user`",
    "metadata": "labels for the provider's dashboards and stored completions",
    "usage": "OpenRouter's accounting switch (deprecated; usage is always returned)",
    "provider": "OpenRouter's provider routing preferences: which host serves, not what",
    "models": "the fallback list: each candidate is keyed as the model it really is",
    "route": "OpenRouter's legacy companion of `models`",
    "session_id": "OpenRouter's sticky-routing and log-grouping id",
    "trace": "OpenRouter's observability metadata",
    "prompt_cache_key": "a hint for the provider's own prompt cache (routing, not content)",
}
# The Responses API streams a different event protocol (typed events), which is not converted
# to and from JSON: there, `stream` stays in the key and each shape is cached on its own.
_KEPT_FOR = {"responses": frozenset({"stream"})}
_SAFE_INT = 2**53  # floats beyond this are not exact integers; orjson also caps ints at 64 bits
# The conversation itself is not walked for numbers: messages, prompts and inputs hold text (and
# token ids, which are integers already), and walking 50 messages costs 14 times what writing
# them does (measured: 55 µs against 4 µs for a 12 KB body). A float in there could only make
# two equal requests miss each other, never make different ones hit.
_CONTENT = frozenset({"messages", "input", "prompt", "instructions"})
_CONTAINERS = (float, dict, list)


@dataclass(frozen=True, slots=True)
class CacheKey:
    digest: str  # 32 hex digits: the whole key
    model: str  # the model it was computed for (entries are purged by model glob)

    @property
    def short(self) -> str:
        """What `x-sidecar-cache-key` shows."""
        return self.digest[:16]


def cache_key(call: Call, *, shared: bool) -> CacheKey:
    """The key of this call's current attempt (call.model is the candidate being tried)."""
    body = call.body
    assert body is not None and call.model is not None
    kept = _KEPT_FOR.get(call.endpoint or "", frozenset())
    effective = {k: v for k, v in body.items() if k not in EXCLUDED or k in kept}
    for name, value in call.overrides.items():
        if name not in EXCLUDED or name in kept:
            effective[name] = value
    effective["model"] = call.model
    for name, value in effective.items():
        if name not in _CONTENT and type(value) in _CONTAINERS:
            effective[name] = normalised(value)
    beta = call.headers.get("anthropic-beta")  # turns on features that change the answer
    digest = hashlib.blake2b(b"v1\0" + call.path.encode() + b"\0" + _identity(call, shared)
                             + b"\0" + orjson.dumps(effective, option=orjson.OPT_SORT_KEYS)
                             + (b"\0beta:" + beta.encode("utf-8", "surrogateescape")
                                if beta else b""),
                             digest_size=16)
    return CacheKey(digest.hexdigest(), call.model)


def canonical(value: Any) -> bytes:
    """Canonical JSON: keys sorted at every level, integral floats written as integers."""
    return orjson.dumps(normalised(value), option=orjson.OPT_SORT_KEYS)


def normalised(value: Any) -> Any:
    """`value` with every integral float (1.0, 1e0, -0.0) replaced by the integer it equals.
    Containers are rebuilt only where a float changed, so a body of strings costs one walk."""
    kind = type(value)
    if kind is float:
        return int(value) if value.is_integer() and -_SAFE_INT <= value <= _SAFE_INT else value
    if kind is dict:
        out = None
        for k, v in value.items():
            n = normalised(v) if type(v) in _CONTAINERS else v
            if n is not v:
                if out is None:
                    out = dict(value)
                out[k] = n
        return value if out is None else out
    if kind is list:
        items = None
        for i, v in enumerate(value):
            n = normalised(v) if type(v) in _CONTAINERS else v
            if n is not v:
                if items is None:
                    items = list(value)
                items[i] = n
        return value if items is None else items
    return value


def _identity(call: Call, shared: bool) -> bytes:
    if shared:
        return b"shared"
    if call.key_name is not None:
        return b"key:" + call.key_name.encode()
    auth = call.headers.get("Authorization")
    if auth:
        return b"auth:" + auth.encode("utf-8", "surrogateescape")
    key = call.headers.get("x-api-key")  # Anthropic's SDKs send their key here instead
    return b"x-api-key:" + key.encode("utf-8", "surrogateescape") if key else b"anonymous"
