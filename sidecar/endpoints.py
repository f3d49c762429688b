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
    body          the request's format: `json`, or `multipart` (a form with files: image edits
                  and variations, transcriptions, translations; read by forms.py)
    meter         how spend prices it: `tokens` (the answer's usage at the model's per-token
                  prices), `images`, `speech`, `transcription` (spend/media.py), `free`
                  (moderations: recorded, never charged)
    cacheable     the cache may store its answer (images and audio are not: their answers are
                  large, and a form's files are not part of the cache key)
    default_model the model the provider uses when the body names none (OpenAI's documented
                  defaults), or None when `model` is required

How a body's text is found for redaction (privacy/fields.py), how an answer's usage is read
(answer.py) and how an entry is replayed (cache/replay.py) dispatch on the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ENDPOINTS", "MODEL_ENDPOINTS", "Endpoint", "Meter", "Wire", "wire_of"]

Wire = Literal["openai", "anthropic"]
Meter = Literal["tokens", "images", "speech", "transcription", "free"]


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
    body: Literal["json", "multipart"] = "json"
    meter: Meter = "tokens"
    cacheable: bool = True
    default_model: str | None = None


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
    # The paid endpoints that are not priced per token (issue 18): spend/media.py prices them.
    Endpoint("images/generations", "generate_content", (), stream_usage=False,
             stream_done=False, meter="images", cacheable=False, default_model="dall-e-2"),
    Endpoint("images/edits", "generate_content", (), stream_usage=False, stream_done=False,
             body="multipart", meter="images", cacheable=False, default_model="dall-e-2"),
    Endpoint("images/variations", "generate_content", (), stream_usage=False,
             stream_done=False, body="multipart", meter="images", cacheable=False,
             default_model="dall-e-2"),
    Endpoint("audio/speech", "generate_content", (), stream_usage=False, stream_done=False,
             meter="speech", cacheable=False),
    Endpoint("audio/transcriptions", "generate_content", (), stream_usage=False,
             stream_done=False, body="multipart", meter="transcription", cacheable=False),
    Endpoint("audio/translations", "generate_content", (), stream_usage=False,
             stream_done=False, body="multipart", meter="transcription", cacheable=False),
    Endpoint("moderations", "moderation", (), stream_usage=False, stream_done=False,
             meter="free", cacheable=False, default_model="omni-moderation-latest"),
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
