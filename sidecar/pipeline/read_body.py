"""Read and parse a model endpoint's body: once, bounded, after the caller is known.

The body is read up to `listen.max_body_bytes` (413 beyond; a declared Content-Length over the
limit is refused before a byte is read), its request Content-Encoding undone (gzip, deflate;
the decoded size is bounded too, so a gzip bomb is a 413), parsed once with orjson, and checked
for what every later stage relies on: a JSON object with a `model`, one the caller's local key
may use, and the fields its endpoint requires (endpoints.py). Placed after auth, so an unknown
caller gets 401 before the sidecar reads 32 MiB for it. The endpoints that take a multipart form
(endpoints.py: image edits, transcriptions, ...) are read the same way, bounded alike, and
parsed by forms.py: their text fields become the body. An endpoint with a documented default
model (images, moderations) may leave `model` out: the call is then priced and routed as that
default.

`/v1/responses` may leave `model` out (OpenAI's API makes it optional: a stored prompt,
`{"prompt": {"id": "pmpt_…"}}`, names it): such a call gets the model "" (no model), is routed
to the first provider listed (route.py), and is priced by the model its answer names (spend).
"""

from __future__ import annotations

import zlib
from collections.abc import Collection
from typing import Any

import orjson

from sidecar.call import Call, Next, Reply
from sidecar.endpoints import ENDPOINTS
from sidecar.errors import (
    InvalidJSON,
    InvalidRequest,
    ModelNotAllowed,
    RequestTooLarge,
    SidecarError,
)
from sidecar.forms import FormError, parse_form

_MODEL_OPTIONAL = frozenset({"responses"})  # OpenAI's spec: a stored prompt may name the model


class ReadBody:
    name = "read_body"
    reads_answer = False

    def __init__(self, max_body_bytes: int, aliases: Collection[str] = ()) -> None:
        self._limit = max_body_bytes
        self._aliases = frozenset(aliases)

    async def __call__(self, call: Call, next: Next) -> Reply:
        try:
            # A body already read (a compare fork: the sidecar wrote it, no bytes to read or
            # decode) is only parsed and checked, as a client's would be.
            raw = call.raw_body if call.raw_body is not None and call.content is None else (
                await read_raw(call, self._limit))
            row = ENDPOINTS.get(call.endpoint or "")
            if row is not None and row.body == "multipart":
                await accept_form(call, raw, self._aliases)
            else:
                accept_body(call, raw, self._aliases)
        except SidecarError as exc:
            return Reply.from_error(exc)
        return await next(call)


async def read_raw(call: Call, limit: int) -> bytes:
    """The client's body, at most `limit` bytes, its Content-Encoding undone (413 beyond)."""
    length = call.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    body = bytearray()
    if call.content is not None:
        while chunk := await call.content.readany():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    encoding = call.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "identity":
        return bytes(body)
    return _decode(bytes(body), encoding, limit)


def accept_body(call: Call, raw: bytes, aliases: Collection[str] = ()) -> None:
    """Parse `raw` onto the call, or raise the 400/403 that says what is wrong with it. A
    `routes` alias is not checked against the key's allowed_models: its candidates are, one by
    one, in the fallback stage."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"The request body is not valid JSON ({exc}). Send a JSON object "
                          "with Content-Type: application/json.") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, not a JSON "
                             f"{type(body).__name__}.")
    _accept(call, raw, body, aliases)
    call.stream = body.get("stream") is True


async def accept_form(call: Call, raw: bytes, aliases: Collection[str] = ()) -> None:
    """Parse a multipart form onto the call (its text fields as the body), or raise the 400."""
    try:
        form = await parse_form(raw, call.headers.get("Content-Type", ""))
    except FormError as exc:
        raise InvalidRequest(f"/v1/{call.endpoint} takes a multipart/form-data body: {exc}.",
                             param=None) from None
    body = form.fields()
    call.form = form
    _accept(call, raw, body, aliases)
    call.stream = body.get("stream") == "true"


def _accept(call: Call, raw: bytes, body: dict[str, Any], aliases: Collection[str]) -> None:
    model = body.get("model")
    row = ENDPOINTS.get(call.endpoint or "")
    if model is None and row is not None and row.default_model is not None:
        model = row.default_model  # the provider's own default: priced and routed as it
    if model is None and call.endpoint in _MODEL_OPTIONAL:
        model = ""
    elif not isinstance(model, str) or not model:
        raise InvalidRequest(f"'model' is required for /v1/{call.endpoint}: name the model to "
                             "call, e.g. \"openai/gpt-4o-mini\".", param="model")
    if row is not None and row.required:
        for name in row.required:  # Anthropic's max_tokens: spend must never invent one
            if body.get(name) is None:
                raise InvalidRequest(f"'{name}' is required for /v1/{call.endpoint}.",
                                     param=name)
    allowed = call.allowed_models
    if allowed is not None and not model:
        raise ModelNotAllowed(f"Key '{call.key_name}' may use only the models "
                              f"{', '.join(allowed.patterns)}, and a request without 'model' "
                              "(a stored prompt names it) cannot be checked against them: name "
                              "the model in the request.", param="model")
    if allowed is not None and not allowed.match(model) and model not in aliases:
        raise ModelNotAllowed(f"Key '{call.key_name}' may not use model '{model}'; its "
                              f"allowed_models are {', '.join(allowed.patterns)}.", param="model")
    call.raw_body = raw
    call.body = body
    call.model = model
    call.requested_model = model or None
    if call.user is None and isinstance(user := body.get("user"), str):
        call.user = user


def _decode(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise InvalidRequest(f"Content-Encoding '{encoding}' is not supported on this endpoint; "
                             "send the body uncompressed, gzip or deflate.")
    # wbits 47 accepts gzip and zlib headers; raw deflate (no header) is tried after.
    for wbits in (47, -15):
        decoder = zlib.decompressobj(wbits)
        try:
            out = decoder.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or decoder.unconsumed_tail:
            raise _too_large(limit)
        return out
    raise InvalidRequest(f"The request body is not valid {encoding} data.")


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"The request body is larger than this sidecar accepts "
                           f"({limit} bytes, listen.max_body_bytes).")
