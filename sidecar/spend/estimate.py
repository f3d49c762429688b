"""The most a request can cost, known before it is sent: a true upper bound of its tokens.

Prompt tokens are bounded by the text the model reads, in UTF-8 bytes, with no tokenizer:
- every tokenizer in use (byte-level BPE: GPT, Llama 3, Qwen, DeepSeek; SentencePiece with byte
  fallback: Gemini, Mistral, Llama 2) emits at most one token per UTF-8 byte of text;
- the text is every string the prompt fields hold (`messages`, `prompt`, `suffix`, `input`,
  `instructions`: contents, roles, names, tool-call arguments and ids), not the JSON around
  them nor the fields that never reach the model (`model`, `temperature`, `max_tokens`, ...);
  each message (a dict with a `role`) adds `MESSAGE_TOKENS` for the chat template's markers
  (3-8 tokens a message); token ids count one each;
- what the model reads as a document is counted as its JSON: tool definitions (`tools`,
  `functions`, `tool_choice`), `response_format` and the Responses API's `text` format;
- a body with a field this does not know falls back to the body's whole size in bytes (JSON
  spends at least as many bytes on a string as its UTF-8 encoding has, and the JSON around a
  message outweighs its template's markers): never under the truth, only less tight;
- what the body does not show is added: each image counts `spend.image_tokens` (its URL or
  base64 bytes are not text; Anthropic's base64 image blocks likewise), tool definitions add
  `TOOLS_TOKENS` (Anthropic prepends a tool-use system prompt of 346 tokens), and the answer
  primer adds `REQUEST_TOKENS`;
- a prompt can never exceed the model's context window, so the bound is clamped to it when the
  price book knows it; a prompt stored upstream (Responses `previous_response_id`,
  `conversation` or `prompt`, uploaded `file_id`s, OpenRouter's web plugin) is bounded by the
  context window alone (`UNKNOWN_CONTEXT_TOKENS` when that is unknown).
An exact tokenizer would not do better: which tokenizer counts depends on the provider that
serves (one model id, several tokenizers on OpenRouter), and tiktoken downloads its tables at
first use, which a sidecar that starts offline cannot. The bound walks the prompt's strings
once (a few µs for a long conversation: bench/spend.py) and over-reserves English text about
four times (bytes against tokens); the reservation is settled to the real figure when the
answer arrives. Counting the text rather than the body holds a short chat request about half
of what it held (issue 18: a burst could use a third of its budget).

Completion tokens are bounded by the request's own limit (`max_completion_tokens`,
`max_tokens`, `max_output_tokens`; 0 included), times `n` (or `best_of`) choices.
`ZERO_LIMIT_REFUSED` names the endpoints whose API refuses a limit of 0 (OpenAI: "integer below
minimum value"; Anthropic: max_tokens ≥ 1): under a blocking budget the spend stage answers
those 400 itself rather than send a limit a provider might read as "no limit".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from sidecar.endpoints import ENDPOINTS
from sidecar.messages.fields import base64_images

TOOLS_TOKENS = 1_024
REQUEST_TOKENS = 16
MESSAGE_TOKENS = 8  # the chat template's markers around one message
# Fields that never reach the model as prompt tokens (limits, sampling, routing, transport,
# labels). Anything not here nor in _DOCUMENTS/_TEXTS makes the bound fall back to the bytes.
_NO_TOKENS = frozenset({
    "model", "max_tokens", "max_completion_tokens", "max_output_tokens", "temperature",
    "top_p", "top_k", "min_p", "top_a", "n", "best_of", "stream", "stream_options", "stop",
    "seed", "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias",
    "logprobs", "top_logprobs", "echo", "user", "safety_identifier", "metadata", "store",
    "service_tier", "parallel_tool_calls", "reasoning_effort", "reasoning", "verbosity",
    "modalities", "audio", "provider", "models", "route", "transforms", "usage", "session_id",
    "trace", "prompt_cache_key", "include", "truncation", "background", "encoding_format",
    "dimensions", "include_reasoning", "max_tool_calls",
    "stop_sequences", "thinking"})  # Anthropic's Messages API: not read by the model
_DOCUMENTS = ("tools", "functions", "tool_choice", "response_format", "text")  # read as JSON
_TEXTS = ("messages", "prompt", "suffix", "input", "instructions", "system")
_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})  # "image": Anthropic's block
UNKNOWN_CONTEXT_TOKENS = 1_000_000  # the largest context windows offered today
_DATA_IMAGE = re.compile(rb'"data:image/[^"]*"')
_IMAGE_KEY = re.compile(rb'"image_url"\s*:')  # one per image: chat parts and Responses inputs
_STORED = ("previous_response_id", "conversation", "prompt")
# Endpoints whose API refuses a completion limit of 0; legacy completions take it (with `echo`).
ZERO_LIMIT_REFUSED = frozenset({"chat/completions", "responses", "messages"})


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 1 µs more per request
class Estimate:
    prompt_tokens: int  # at most this many input tokens
    want: int  # completion tokens per choice the request allows (0: embeddings)
    field: str | None  # the body field that limits completions (None: embeddings)
    asked: int | None  # the client's own value of it, when it set one
    choices: int  # answers generated (n, best_of)


def estimate(endpoint: str, raw: bytes, body: dict[str, Any], *, default_tokens: int,
             image_tokens: int, context_length: int | None,
             model: str | None = None) -> Estimate:
    """`model`: the candidate being priced (a route alias or a `models` list makes it differ
    from the body's), else the body's."""
    row = ENDPOINTS.get(endpoint)
    fields = row.limit_fields if row is not None else ()
    field, asked = (fields[-1] if fields else None), None
    for name in fields:
        value = body.get(name)
        # 0 is a limit too (legacy completions with `echo` score a prompt and generate nothing):
        # never mistaken for "unset" and replaced by the default
        # A number written as 10.0 is the client's 10 (JSON has one number type; the cache key
        # says the same): never mistaken for "unset" and replaced by the reserve.
        if type(value) is float and value >= 0 and value != float("inf"):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            field, asked = name, value
            break
    choices = 1
    for name in ("n", "best_of"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > choices:
            choices = value
    want = 0 if field is None else (default_tokens if asked is None else asked)
    return Estimate(prompt_bound(endpoint, raw, body, image_tokens, context_length, model),
                    want, field, asked, choices)


def prompt_bound(endpoint: str, raw: bytes, body: dict[str, Any], image_tokens: int,
                 context_length: int | None, model: str | None = None) -> int:
    text = text_bound(body, image_tokens)
    if text is not None:
        bound = text + REQUEST_TOKENS
    else:  # a field not known: the body's bytes, the JSON around the text included
        bound = len(raw) + REQUEST_TOKENS
        if b'"image_url"' in raw:
            images = len(_IMAGE_KEY.findall(raw))
            bound += images * image_tokens - sum(map(len, _DATA_IMAGE.findall(raw)))
        if b'"base64"' in raw and endpoint in ("messages", "messages/count_tokens"):
            images, size = base64_images(body)  # Anthropic's image blocks (screenshots)
            bound += images * image_tokens - size
    if b'"tools"' in raw or b'"functions"' in raw:
        bound += TOOLS_TOKENS
    stored = (b'"file_id"' in raw or "plugins" in body
              or str(body.get("model", "") if model is None else model).endswith(":online")
              or (endpoint == "responses" and any(body.get(k) for k in _STORED)))
    if stored:
        return context_length or bound + UNKNOWN_CONTEXT_TOKENS
    return min(bound, context_length) if context_length else bound


def text_bound(body: dict[str, Any], image_tokens: int) -> int | None:
    """The prompt fields' tokens at most (see the module docstring), or None when the body has
    a field this does not know."""
    total = 0
    for key, value in body.items():
        if key in _NO_TOKENS:
            continue
        if key in _TEXTS:
            total += _walk(value, image_tokens)
        elif key in _DOCUMENTS:
            total += len(orjson.dumps(value))
        else:
            return None
    return total


def _walk(value: Any, image_tokens: int) -> int:
    """Tokens at most in one prompt field: its strings' UTF-8 bytes, one per number (token
    ids), `MESSAGE_TOKENS` per message, `image_tokens` per image part (not its URL's bytes)."""
    kind = type(value)
    if kind is str:
        return len(value) if value.isascii() else len(value.encode())
    if kind is list:
        return sum(_walk(item, image_tokens) for item in value)
    if kind is dict:
        part = value.get("type")
        if type(part) is str and part in _IMAGE_PARTS:
            return image_tokens
        total = MESSAGE_TOKENS if "role" in value else 0
        for item in value.values():
            total += _walk(item, image_tokens)
        return total
    return 0 if value is None else 1  # numbers (token ids), booleans
