"""The types every stage speaks: `Call` (one request, in flight), `Reply` (its answer),
`Attempt` (one try at an upstream) and `Stage`.

Who writes which field of a Call:

    handler    request_id, method, path, endpoint, headers, content, started, user, tags
    auth       key_name, tags (adds the key's tags), allowed_models
    read_body  raw_body, body, model, requested_model, stream, user (from the body)
    any stage  body + body_changed (edits every attempt sees: the client's exact bytes go out
               unless a stage set body_changed), upstream_headers, response_headers, finishers
    per model  overrides (fallback resets them for each candidate; spend caps max_tokens there)
    fallback   model (the candidate being tried), preferences (the body's `provider` object and
               the candidate's `:floor`/`:nitro` suffix, for the router)
    route      attempts (one Attempt per try)
    answer     usage, finish_reason, response_model, response_id (read from the upstream's answer)
    features   cache_status (cache), cost_usd, saved_usd, budget_remaining_usd (spend),
               redactions, zdr (privacy: it also replaces body and raw_body with their
               redacted versions), trace_id, span_id (telemetry)
    relay      status (once the response starts), first_byte_at, bytes_out, outcome

A stage ends a request early by *returning* a Reply (`Reply.error(...)`); expected failures,
upstream errors included, travel as Replies. Exceptions are bugs.

Post-work: a stage that takes on an obligation (a budget reservation, a span, a cache fill, a
connection to release) registers a finisher on the Call *before* calling `next`, the way one
writes `try/finally`. The handler runs every finisher exactly once (`Call.finish`), last
registered first (so innermost first), after `outcome` and `status` are final, on every path: a
body sent, a stream completed, the client gone before or during the stream, the upstream broken,
a shutdown cut, a bug. Finishers are plain functions, not coroutines: they can never suspend, so
they always run to the end, even in a cancelled task; slow work (a Redis write) is handed to the
resource that owns it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson
import structlog
from aiohttp import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.errors import JSON_CONTENT_TYPE, SidecarError, render
from sidecar.globs import Globs

if TYPE_CHECKING:
    from sidecar.upstream.preferences import Preferences

_log = structlog.get_logger("sidecar.call")

# How the response's transfer ended (the status says whether it was an error):
#   ok                  the whole reply reached the client
#   upstream_broke      the upstream failed after the response had started
#   client_disconnected the client left before the end (status 499 when nothing was sent)
#   cancelled           cut by the sidecar at the end of the shutdown grace period
#   internal_error      a bug in the sidecar ended it
Outcome = Literal["ok", "upstream_broke", "client_disconnected", "cancelled", "internal_error"]
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before any byte was sent

Finisher = Callable[["Call"], None]


def new_request_id() -> str:
    """128 random bits as 32 hex digits. A correlation id, not a secret: the stdlib's Mersenne
    Twister is enough, and unlike os.urandom it makes no system call (seen at 2.5% of the
    sidecar's CPU under load)."""
    return f"{random.getrandbits(128):032x}"


@dataclass(slots=True)
class Usage:
    """Token counts as the upstream reported them (OpenAI's `usage`, with its details)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from the provider's prompt cache
    cache_write_tokens: int = 0  # prompt tokens written to it (Anthropic-style caching)
    reasoning_tokens: int = 0  # part of completion_tokens
    cost_usd: float | None = None  # OpenRouter's `usage.cost`, when the upstream reports it


@dataclass(slots=True)
class Attempt:
    """One try at one provider: filled by route, read by telemetry, spend and the access line."""

    provider: str
    model: str  # the model name as this provider was asked for it
    started: float  # time.monotonic()
    status: int = 0  # the upstream's HTTP status; 0 when none arrived
    error: str | None = None  # an error code (upstream_timeout, http_503, ...) when it failed
    headers_at: float | None = None  # monotonic time the upstream's headers arrived
    ended: float | None = None  # monotonic time the attempt was over (body read, or failed)


@dataclass(slots=True)
class Call:
    request_id: str
    method: str
    path: str  # upstream-relative, raw (percent-encoded), with query: "/chat/completions?x=1"
    endpoint: str | None  # "chat/completions" etc. for model endpoints; None for passthrough
    headers: CIMultiDictProxy[str]  # the client's request headers, as received
    started: float  # time.monotonic() at arrival
    content: StreamReader | None = None  # the client's request body, unread
    raw_body: bytes | None = None  # model endpoints: the body as the client sent it (decoded)
    body: dict[str, Any] | None = None  # model endpoints: the parsed JSON object
    body_changed: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # body fields for this model only
    model: str | None = None  # the model being tried (a fallback candidate during routing)
    requested_model: str | None = None  # what the client asked for
    preferences: Preferences | None = None  # provider preferences; None: the router's default
    stream: bool = False
    user: str | None = None
    tags: tuple[str, ...] = ()
    key_name: str | None = None
    allowed_models: Globs | None = None  # the local key's allowed_models; None: every model
    upstream_headers: dict[str, str] = field(default_factory=dict)  # e.g. traceparent
    response_headers: dict[str, str] = field(default_factory=dict)
    finishers: list[Finisher] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    response_model: str | None = None
    response_id: str | None = None  # the answer's `id` (chatcmpl-..., resp_...)
    cache_status: str | None = None  # HIT | MISS | BYPASS | OFF
    cost_usd: float | None = None  # what this request cost (0 on a cache hit)
    saved_usd: float | None = None  # what a cache hit saved
    budget_remaining_usd: float | None = None  # the tightest budget that applies, after this
    redactions: int = 0
    # pseudonymize mode: placeholder -> original value, so captured content (spans, the
    # inspector) shows the answer as the upstream sent it, not as restored for the client
    pseudonyms: dict[str, str] | None = None
    zdr: bool = False  # zero data retention: providers ask upstreams to retain nothing
    trace_id: str | None = None
    span_id: str | None = None
    status: int = 0  # the status the client was sent; 0 until the response starts
    first_byte_at: float | None = None  # monotonic time the first body byte went to the client
    bytes_out: int = 0
    outcome: Outcome = "ok"

    def upstream_body(self, model: str | None = None) -> bytes | None:
        """What to send upstream: the client's exact bytes unless something changed, else the
        body with this model's overrides and, when given, the model name the provider wants."""
        body = self.body
        if body is None:
            return self.raw_body
        if not (self.body_changed or self.overrides or (model and model != body.get("model"))):
            return self.raw_body
        out = {**body, **self.overrides}
        if model:
            out["model"] = model
        return orjson.dumps(out)

    def begin_attempt(self, provider: str, model: str, now: float) -> Attempt:
        attempt = Attempt(provider, model, now)
        self.attempts.append(attempt)
        return attempt

    @property
    def provider(self) -> str | None:
        """The provider of the last attempt: the one whose answer the client got."""
        return self.attempts[-1].provider if self.attempts else None

    def finish(self) -> None:
        """Run the finishers once, innermost (last registered) first. One that fails is logged
        and the rest still run."""
        finishers, self.finishers = self.finishers, []
        for finisher in reversed(finishers):
            try:
                finisher(self)
            except Exception:
                _log.exception("finisher_failed", request_id=self.request_id)


@dataclass(slots=True)
class Reply:
    """An answer: a whole `body`, or `chunks` streamed as they come. Never both."""

    status: int
    headers: CIMultiDict[str]
    body: bytes | None = None
    chunks: AsyncIterator[bytes] | None = None
    sse: bool = False  # chunks are event-aligned server-sent events (see sse.py)
    error: SidecarError | None = None  # set when the sidecar itself produced this error

    def __post_init__(self) -> None:
        if self.body is not None and self.chunks is not None:
            raise ValueError("a Reply holds a body or chunks, never both")

    @classmethod
    def from_error(cls, error: SidecarError, headers: dict[str, str] | None = None) -> Reply:
        out = CIMultiDict({"Content-Type": JSON_CONTENT_TYPE})
        if headers:
            out.update(headers)
        return cls(status=error.status, headers=out, body=render(error), error=error)

    async def discard(self) -> None:
        """Drop a reply that will not be sent (a retry replaces it): close its stream."""
        chunks = self.chunks
        if chunks is not None and (close := getattr(chunks, "aclose", None)) is not None:
            await close()


Next = Callable[[Call], Awaitable[Reply]]


class Stage(Protocol):
    """One step of the pipeline: do request-side work, call `next`, do response-side work."""

    async def __call__(self, call: Call, next: Next) -> Reply: ...
