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
    wire          the format the client speaks there: "openai", or "anthropic" for Anthropic's
                  Messages API (its answers, events and errors: the error rendering, the
                  answer stage, the stream meter, the cache replay and redaction tell them apart
                  by this)
    required      body fields the endpoint refuses to go without (read_body: a 400 naming it)
    billed        priced, held against budgets and cached (False: a free call such as
                  /v1/messages/count_tokens, which runs the stages that need no answer)

How a body's text is found for redaction (privacy/fields.py), how an answer's usage is read
(answer.py) and how an entry is replayed (cache/replay.py) dispatch on the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ENDPOINTS", "MODEL_ENDPOINTS", "Endpoint", "Wire", "wire_of"]

Wire = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str  # after /v1/
    operation: str
    limit_fields: tuple[str, ...]
    stream_usage: bool
    stream_done: bool
    wire: Wire = "openai"
    required: tuple[str, ...] = ()
    billed: bool = True


ENDPOINTS: dict[str, Endpoint] = {e.path: e for e in (
    Endpoint("chat/completions", "chat", ("max_completion_tokens", "max_tokens"),
             stream_usage=True, stream_done=True),
    Endpoint("completions", "text_completion", ("max_tokens",), stream_usage=True,
             stream_done=True),
    Endpoint("embeddings", "embeddings", (), stream_usage=False, stream_done=True),
    Endpoint("responses", "chat", ("max_output_tokens",), stream_usage=False,
             stream_done=False),
    # Anthropic's Messages API: usage is in every stream (message_start, message_delta), which
    # ends with its message_stop event; max_tokens is mandatory there.
    Endpoint("messages", "chat", ("max_tokens",), stream_usage=False, stream_done=False,
             wire="anthropic", required=("max_tokens",)),
    Endpoint("messages/count_tokens", "count_tokens", (), stream_usage=False,
             stream_done=False, wire="anthropic", billed=False),
)}
MODEL_ENDPOINTS = tuple(ENDPOINTS)


def wire_of(endpoint: str | None, path: str) -> Wire:
    """The format a call's answers and errors take: its endpoint's, or on a passthrough path
    (`endpoint` None), Anthropic's under /v1/messages (batches, say) and OpenAI's elsewhere."""
    if endpoint is not None:
        row = ENDPOINTS.get(endpoint)
        return "openai" if row is None else row.wire
    under = path.startswith("/messages") and path[9:10] in ("", "/", "?")
    return "anthropic" if under else "openai"
