"""The two passthrough paths the sidecar refuses: one that leaves `/v1`, and one that is a model
endpoint spelled another way.

`/v1/X` goes to `{base_url}/X` with X exactly as sent. But X is read again on the way: the URL
library of the upstream request (yarl) resolves dot segments and decodes escaped unreserved
characters (`/%2e%2e/` is `/../`), and upstream servers commonly decode `%2F`, merge `//` and
drop a trailing `/`. So:

- `/v1/../x` or `/v1/%2e%2e/x` would reach `https://host/api/x` for a provider at
  `https://host/api/v1`, outside the base URL its key was configured for: 404 `not_found`, like
  any path outside /v1.
- `POST /v1/x/../chat/completions`, `/v1/chat%2Fcompletions`, `/v1//chat/completions` or
  `/v1/chat/completions/` are not the model route to the sidecar's router, so they would be
  streamed through untouched: no redaction, no budget, no ledger row, no cache. 400
  `invalid_request` names the exact path to use instead.

Escapes are decoded up to three times, so `%252e%252e` cannot get through an upstream that
decodes twice either; a `;parameter` does not hide a dot segment (`/..;/`). Paths with none of
`.`, `%`, `\\`, `//` or a trailing `/` skip all this (the router already compared them
exactly): the common passthrough pays four substring checks.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from sidecar.endpoints import MODEL_ENDPOINTS
from sidecar.errors import InvalidRequest, NotFound, SidecarError

_DECODINGS = 3
_SEPARATORS = re.compile(r"[/\\]")  # some servers (IIS, and Windows file paths) split on "\"


def refusal(method: str, path: str) -> SidecarError | None:
    """Why the passthrough of `path` (what follows /v1, query included) must not be forwarded,
    or None when it may be."""
    text = path.partition("?")[0]
    if not ("." in text or "%" in text or "\\" in text or "//" in text
            or text.endswith("/")):
        return None
    for _ in range(_DECODINGS):
        segments = _resolved(text)
        if segments is None:
            return NotFound(f"No such route: /v1{text} climbs above /v1 (a '..' segment, "
                            "perhaps percent-encoded). The sidecar forwards only paths under "
                            "/v1.")
        endpoint = "/".join(segments)
        if method == "POST" and endpoint in MODEL_ENDPOINTS:
            return InvalidRequest(f"/v1{text} is the model endpoint /v1/{endpoint} written "
                                  f"another way; send it to /v1/{endpoint} exactly, so that "
                                  "the sidecar's redaction, budgets, cache and ledger apply.")
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return None


def _resolved(text: str) -> list[str] | None:
    """The path's segments with `.`, `..` and empty ones resolved; None if it climbs above its
    root."""
    segments: list[str] = []
    for part in _SEPARATORS.split(text):
        part = part.partition(";")[0]  # `..;x` is `..` to servlet containers (Tomcat, Jetty)
        if part in ("", "."):
            continue
        if part == "..":
            if not segments:
                return None
            segments.pop()
        else:
            segments.append(part)
    return segments
