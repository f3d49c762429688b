"""The privacy stages: redact what travels upstream, restore it in the answer; mark ZDR.

`Privacy` runs right after read_body, before fallback, spend and cache, so the cache key, the
ledger and every later stage only ever see redacted content. It edits `call.body` once for all
attempts (body_changed only when something was replaced; raw_body then becomes the redacted
serialization too), counts what it replaced (`call.redactions`, `x-sidecar-redactions`, the
redactions metric by entity), and in pseudonymize mode restores the originals in the answer,
JSON or stream. In block mode it ends the request with 400 pii_detected naming the entity
types, never the values.

`ZeroRetention` runs before auth on every path (passthrough included), so every response says
`x-sidecar-zdr: on` and providers know to ask OpenRouter for zero retention. Each stage is
absent when its feature is off.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from sidecar.call import Call, Next, Reply
from sidecar.config.privacy import RedactSettings
from sidecar.endpoints import wire_of
from sidecar.errors import PiiDetected
from sidecar.messages.restorer import restore_body, restore_stream
from sidecar.privacy.fields import Slot, text_slots
from sidecar.privacy.redactor import Redaction, Scanner
from sidecar.privacy.restorer import Restorer
from sidecar.telemetry.metrics import Metrics

REDACTIONS_HEADER = "x-sidecar-redactions"
ZDR_HEADER = "x-sidecar-zdr"


class Privacy:
    name = "privacy"
    reads_answer = False

    def __init__(self, settings: RedactSettings, metrics: Metrics) -> None:
        self._mode = settings.mode
        self._scanner = Scanner(settings.entities, [(c.name, c.pattern) for c in settings.custom],
                                settings.phone_regions)
        self._metrics = metrics

    async def __call__(self, call: Call, next: Next) -> Reply:
        body = call.body
        if body is None:
            return await next(call)
        slots = list(text_slots(call.endpoint, body))
        if self._mode == "block":
            found = self._count(slots)
            if found:
                return Reply.from_error(_blocked(found))
            call.response_headers[REDACTIONS_HEADER] = "0"
            return await next(call)
        redaction = Redaction(self._scanner, pseudonymize=self._mode == "pseudonymize")
        for container, key, _ in slots:
            redaction.reserve(container[key])
        for container, key, is_json in slots:
            text = container[key]
            container[key] = _redact_json(redaction, text) if is_json else redaction.redact(
                text)
        total = sum(redaction.counts.values())
        call.redactions = total
        call.response_headers[REDACTIONS_HEADER] = str(total)
        if total:
            # raw_body too: no later stage (cache key, ledger, telemetry) can reach the
            # client's original bytes, whichever field it reads.
            call.body_changed = True
            # (a form is written again as a form: forms.py)
            call.raw_body = call.form.render(body) if call.form is not None else orjson.dumps(
                body)
            for entity, count in redaction.counts.items():
                self._metrics.redacted(entity, count)
        if redaction.originals:
            call.pseudonyms = redaction.originals
        reply = await next(call)
        if redaction.originals and reply.error is None:
            restorer = Restorer(redaction.originals)
            if wire_of(call.endpoint, call.path) == "anthropic":  # messages/restorer.py
                if reply.body is not None:
                    reply.body = restore_body(restorer, reply.body)
                elif reply.sse and reply.chunks is not None:
                    reply.chunks = restore_stream(restorer, reply.chunks)
            elif reply.body is not None:
                reply.body = restorer.body(reply.body)
            elif reply.sse and reply.chunks is not None:
                reply.chunks = restorer.stream(reply.chunks)
        return reply

    def _count(self, slots: list[Slot]) -> Counter[str]:
        found: Counter[str] = Counter()
        for container, key, _ in slots:
            found.update(f.entity for f in self._scanner.find(container[key]))
        return found


class ZeroRetention:
    name = "zdr"
    reads_answer = False

    async def __call__(self, call: Call, next: Next) -> Reply:
        call.zdr = True
        call.response_headers[ZDR_HEADER] = "on"
        return await next(call)


def _blocked(found: Counter[str]) -> PiiDetected:
    kinds = ", ".join(f"{entity} ({count})" for entity, count in sorted(found.items()))
    return PiiDetected(
        f"The request contains data that privacy.redact.mode 'block' does not let through: "
        f"{kinds}. Remove it, or ask the operator for mode 'mask' or 'pseudonymize'.",
        metadata={"entities": dict(sorted(found.items()))})


def _redact_json(redaction: Redaction, text: str) -> str:
    """Tool-call arguments: each string value of the JSON document, so it stays valid JSON
    whatever the values contain; text that is not JSON is redacted as text."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return redaction.redact(text)
    before = sum(redaction.counts.values())
    document = _redact_tree(redaction, document)
    if sum(redaction.counts.values()) == before:
        return text
    return orjson.dumps(document).decode()


def _redact_tree(redaction: Redaction, node: Any) -> Any:
    if isinstance(node, str):
        return redaction.redact(node)
    if isinstance(node, dict):
        return {key: _redact_tree(redaction, value) for key, value in node.items()}
    if isinstance(node, list):
        return [_redact_tree(redaction, value) for value in node]
    return node
