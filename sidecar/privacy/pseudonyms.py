"""Captured content as the upstream saw it, in pseudonymize mode.

The privacy stage restores original values into the answer for the client; stages outside it
that capture content (telemetry's spans, the inspector) see the restored answer, and put the
placeholders back with `pseudonymized`. A leaf module: importing it loads no detector.
"""

from __future__ import annotations

import orjson


def pseudonymized(text: str, originals: dict[str, str], *, json: bool) -> str:
    """`text` with each original value put back as its placeholder: for content captured
    after the restore (spans, the inspector), which must keep what the upstream saw. `json`:
    the text is JSON, so the values appear JSON-escaped."""
    for placeholder, original in sorted(originals.items(), key=lambda kv: -len(kv[1])):
        value = orjson.dumps(original).decode()[1:-1] if json else original
        text = text.replace(value, placeholder)
    return text
