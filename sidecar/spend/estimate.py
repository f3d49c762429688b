"""The most a request can cost, known before it is sent: a true upper bound of its tokens.

Prompt tokens are bounded by the request body's size in bytes, with no tokenizer:
- every tokenizer in use (byte-level BPE: GPT, Llama 3, Qwen, DeepSeek; SentencePiece with byte
  fallback: Gemini, Mistral, Llama 2) emits at most one token per UTF-8 byte of text, and JSON
  spends at least as many bytes on a string as its UTF-8 encoding has (escapes only add);
- the chat template's per-message markers (3-8 tokens a message) are paid for by the JSON
  around each message (`{"role":"user","content":""}` is 29 bytes);
- token-id inputs (`"input": [[1234, 5678]]`) spend at least one byte per token;
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
first use, which a sidecar that starts offline cannot. The bound costs two byte scans of the
body (about 1 µs for 4 KB) and over-reserves English text about four times; the reservation is
settled to the real figure when the answer arrives.

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

from sidecar.endpoints import ENDPOINTS
from sidecar.messages.fields import base64_images

TOOLS_TOKENS = 1_024
REQUEST_TOKENS = 16
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
