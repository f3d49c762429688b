"""Local API keys: who is calling, and which models they may use.

Present only when `auth.required` is true. The client's `Authorization: Bearer <token>` (or,
from Anthropic's SDKs and Claude Code, its `x-api-key: <token>`) is looked up by its SHA-256
digest (no token compared byte by byte, no token kept in a dict key);
an unknown or missing token ends the call with 401 before the body is read. The key's name, tags
and `allowed_models` go onto the Call: read_body refuses a model outside the globs (403), and the
router never tries a fallback model outside them. The token itself never leaves this stage
(providers drop it before going upstream).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sidecar.call import Call, Next, Reply
from sidecar.config.schema import AuthSettings
from sidecar.errors import InvalidApiKey
from sidecar.globs import Globs
from sidecar.headers import sent_bytes
from sidecar.telemetry.refusals import AuthRefusals


def _digest(token: str) -> bytes:
    return hashlib.sha256(sent_bytes(token)).digest()


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    tags: tuple[str, ...]
    allowed: Globs | None  # None: every model


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class Auth:
    name = "auth"
    reads_answer = False

    def __init__(self, settings: AuthSettings, refusals: AuthRefusals) -> None:
        self._refusals = refusals  # counts and logs (rate-limited) each 401
        self._keys = {
            _digest(key.token.get_secret_value()): _Key(
                key.name, tuple(key.tags),
                None if "*" in key.allowed_models else Globs(key.allowed_models))
            for key in settings.keys
        }

    async def __call__(self, call: Call, next: Next) -> Reply:
        headers = call.headers
        token = bearer_token(headers.get("Authorization")) or (
            headers.get("x-api-key", "").strip() or None)
        if token is None:
            self._refusals.refused("proxy", "missing")
            return Reply.from_error(InvalidApiKey(
                "Missing API key: this sidecar requires a local key. Send "
                "'Authorization: Bearer <token>' or 'x-api-key: <token>' with a token from "
                "auth.keys (with the OpenAI SDK: set OPENAI_API_KEY; with Anthropic's SDK or "
                "Claude Code: ANTHROPIC_API_KEY)."))
        key = self._keys.get(_digest(token))
        if key is None:
            self._refusals.refused("proxy", "invalid")
            return Reply.from_error(InvalidApiKey(
                "Unknown API key: the token matches none of this sidecar's auth.keys."))
        call.key_name = key.name
        call.tags = (*call.tags, *key.tags)
        call.allowed_models = key.allowed
        return await next(call)
