"""The model endpoints, as a table: what each one is, for every stage that treats them apart.

A model endpoint is a `POST /v1/<path>` whose JSON body names a `model`: it goes through the
whole pipeline (redaction, spend, cache, telemetry, routing), where every other `/v1/*` path is
streamed through untouched (passthrough). Each row says what the stages need to know without an
if-chain of their own:

    operation     gen_ai.operation.name on spans and metrics
    limit_fields  the body fields that bound the answer's length, the client's usual first;
                  spend tells the upstream the granted limit in the first one the client used,
                  else in the last (empty: the answer has no length, e.g. embeddings)
    stream_usage  a stream can be asked for its usage (`stream_options.include_usage`)
    stream_done   a complete stream ends with `data: [DONE]` (the Responses API's ends with
                  its `response.completed` event instead)

How a body's text is found for redaction (privacy/fields.py), how an answer's usage is read
(answer.py) and how an entry is replayed (cache/replay.py) dispatch on the same names.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ENDPOINTS", "MODEL_ENDPOINTS", "Endpoint"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str  # after /v1/
    operation: str
    limit_fields: tuple[str, ...]
    stream_usage: bool
    stream_done: bool


ENDPOINTS: dict[str, Endpoint] = {e.path: e for e in (
    Endpoint("chat/completions", "chat", ("max_completion_tokens", "max_tokens"),
             stream_usage=True, stream_done=True),
    Endpoint("completions", "text_completion", ("max_tokens",), stream_usage=True,
             stream_done=True),
    Endpoint("embeddings", "embeddings", (), stream_usage=False, stream_done=True),
    Endpoint("responses", "chat", ("max_output_tokens",), stream_usage=False,
             stream_done=False),
)}
MODEL_ENDPOINTS = tuple(ENDPOINTS)
