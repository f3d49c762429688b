"""Local API keys: who is calling, and which models they may use.

Present only when `auth.required` is true. The client's `Authorization: Bearer <token>` is
looked up by its SHA-256 digest (no token compared byte by byte, no token kept in a dict key);
an unknown or missing token ends the call with 401, a model outside the key's
`allowed_models` globs with 403. The key's name and tags go onto the Call for spend and
telemetry; the token itself never leaves this stage (route drops it before going upstream).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass

from sidecar.call import Call, Next, Reply
from sidecar.config.schema import Auth as AuthSettings
from sidecar.errors import InvalidApiKey, ModelNotAllowed


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    tags: tuple[str, ...]
    patterns: tuple[str, ...]
    allowed: re.Pattern[str]


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


class Auth:
    def __init__(self, settings: AuthSettings) -> None:
        self._keys = {
            _digest(key.token.get_secret_value()): _Key(
                key.name, tuple(key.tags), tuple(key.allowed_models),
                re.compile("|".join(fnmatch.translate(p) for p in key.allowed_models)),
            )
            for key in settings.keys
        }

    async def __call__(self, call: Call, next: Next) -> Reply:
        token = bearer_token(call.headers.get("Authorization"))
        if token is None:
            return Reply.error(InvalidApiKey(
                "Missing API key: this sidecar requires a local key. Send "
                "'Authorization: Bearer <token>' with a token from auth.keys "
                "(with the OpenAI SDK: set OPENAI_API_KEY)."))
        key = self._keys.get(_digest(token))
        if key is None:
            return Reply.error(InvalidApiKey(
                "Unknown API key: the bearer token matches none of this sidecar's auth.keys."))
        if call.model is not None and not key.allowed.match(call.model):
            return Reply.error(ModelNotAllowed(
                f"Key '{key.name}' may not use model '{call.model}'; its allowed_models are "
                f"{', '.join(key.patterns)}.", param="model"))
        call.key_name = key.name
        call.tags = (*call.tags, *key.tags)
        return await next(call)
