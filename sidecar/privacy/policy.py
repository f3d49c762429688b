"""The effective privacy policy, in words and lists: what `GET /sidecar/privacy` answers and
what the start-up line states. Derived from the validated settings only, so it says what the
running sidecar does (the ZDR rules in `Settings._across_sections` have already been applied).
"""

from __future__ import annotations

from typing import Any

from sidecar.config.schema import Settings

APPLIES_TO = [
    "chat/completions: messages[].content (text and text parts, every role: system, "
    "developer, user, assistant, tool results), tool_calls[].function.arguments, reasoning",
    "completions: prompt, suffix",
    "embeddings: input",
    "responses: instructions, input (message text, function_call arguments, "
    "function_call_output, reasoning summaries)",
    "the body's user field",
]
UNTOUCHED = [
    "image, audio and file parts", "token-id inputs", "tool definitions",
    "every path other than the four model endpoints (passed through as sent)",
]


def describe(settings: Settings) -> dict[str, Any]:
    privacy, redact = settings.privacy, settings.privacy.redact
    on = redact.mode != "off"
    return {
        "redact": {
            "mode": redact.mode,
            "entities": list(redact.entities) if on else [],
            "custom": [c.name for c in redact.custom] if on else [],
            "phone_regions": list(redact.phone_regions) if on else [],
            "applies_to": APPLIES_TO if on else [],
            "untouched": UNTOUCHED if on else [],
        },
        "zdr": privacy.zdr,
        "upstream_data_policy": (
            {"openrouter": {"provider": {"data_collection": "deny", "zdr": True}}}
            if privacy.zdr else None),
        "kept": kept(settings),
    }


def kept(settings: Settings) -> dict[str, str]:
    """Where each kind of data goes, one sentence per place."""
    privacy, redact = settings.privacy, settings.privacy.redact
    content = "redacted content" if redact.mode in ("mask", "pseudonymize") else "content"
    cache = settings.cache
    ledger = settings.spend.ledger or f"sqlite:///{settings.state_dir}/ledger.db"
    places = {
        "upstream": f"{content} as the request needs it"
                    + ("; OpenRouter is asked for zero-retention providers only"
                       if privacy.zdr else ""),
        "logs": "request metadata only (ids, sizes, timings, model, token counts); never "
                "content" + ("; exception messages withheld from tracebacks"
                             if privacy.zdr else ""),
        "spans": "metadata only" if not settings.telemetry.capture_content else
                 f"metadata and {content} (telemetry.capture_content)",
        "metrics": "counts and durations by endpoint, status, model and entity type; "
                   "never content",
        "ledger": f"{ledger}: one row per request (model, key name, tokens, cost); never content",
        "cache": {"off": "nothing (cache off)",
                  "memory": f"answers to {content} in process memory for up to "
                            f"{cache.ttl_s:g} s",
                  "redis": f"answers to {content} in Redis for up to {cache.ttl_s:g} s",
                  }.get(cache.backend, cache.backend),
    }
    if redact.mode == "pseudonymize":
        places["placeholders"] = ("the placeholder → value map of a request, in process memory "
                                  "until its answer has been restored; never written anywhere")
    return places


def startup_fields(settings: Settings) -> dict[str, Any]:
    """The start-up line's fields: short, no sentences."""
    redact = settings.privacy.redact
    return {"redact": redact.mode,
            "entities": list(redact.entities) + [c.name for c in redact.custom]
            if redact.mode != "off" else [],
            "zdr": settings.privacy.zdr, "cache": settings.cache.backend,
            "capture_content": settings.telemetry.capture_content}
