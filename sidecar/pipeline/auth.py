"""Local API keys: who is calling, and which models they may use.

Present only when `auth.required` is true. The client's `Authorization: Bearer <token>` (or,
from Anthropic's SDKs and Claude Code, its `x-api-key: <token>`) is looked up by its SHA-256
digest (no token compared byte by byte, no token kept in a dict key);
an unknown or missing token ends the call with 401 before the body is read. The key's name, tags
and `allowed_models` go onto the Call: read_body refuses a model outside the globs (403), and the
router never tries a fallback model outside them. The token itself never leaves this stage
(providers drop it before going upstream). A key may carry a rotation window (`not_before`,
`not_after`): outside it the key gets 401 saying it expired (or is not valid yet), so two keys
can overlap while clients move from the old one to the new one, and a reload (sidecar/live.py)
adds and removes keys without a restart.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

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
    not_before: float | None  # Unix times of the key's rotation window
    not_after: float | None

    def refusal(self, now: float) -> InvalidApiKey | None:
        """Why this key cannot be used at `now`, or None."""
        if self.not_after is not None and now >= self.not_after:
            return InvalidApiKey(f"API key '{self.name}' expired at {_iso(self.not_after)} "
                                 "(auth.keys not_after): use the key that replaces it.")
        if self.not_before is not None and now < self.not_before:
            return InvalidApiKey(f"API key '{self.name}' is not valid before "
                                 f"{_iso(self.not_before)} (auth.keys not_before).")
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


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
                None if "*" in key.allowed_models else Globs(key.allowed_models),
                key.not_before.timestamp() if key.not_before else None,
                key.not_after.timestamp() if key.not_after else None)
            for key in settings.keys
        }
        # Checking the window costs a clock read only when some key has one.
        self._windows = any(k.not_before or k.not_after for k in settings.keys)

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
        if self._windows and (refused := key.refusal(time.time())) is not None:
            self._refusals.refused("proxy", "expired")
            return Reply.from_error(refused)
        call.key_name = key.name
        call.tags = (*call.tags, *key.tags)
        call.allowed_models = key.allowed
        return await next(call)
