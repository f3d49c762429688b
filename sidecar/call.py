"""The types every stage speaks: `Call` (one request, in flight), `Reply` (its answer),
`Attempt` (one try at an upstream) and `Stage`.

Who writes which field of a Call:

    handler    request_id, method, path, endpoint, headers, content, started, user, tags
    auth       key_name, tags (adds the key's tags), allowed_models
    read_body  raw_body, body, model, requested_model, stream, user (from the body), form (a
               multipart body's parts: `body` then holds its text fields)
    any stage  body + body_changed (edits every attempt sees: the client's exact bytes go out
               unless a stage set body_changed), upstream_headers, response_headers, finishers
    per model  overrides (fallback resets them for each candidate; spend caps max_tokens there)
    auto       candidates (the models fallback tries, in order, instead of the body's),
               priced_as (the model spend holds the call at, when `model` has no price of its
               own: a delegated `openrouter/auto`), auto (the router's choice: tier, reasons,
               baseline; read by the headers, the ledger row and the inspector)
    fallback   model (the candidate being tried), preferences (the body's `provider` object and
               the candidate's `:floor`/`:nitro` suffix, for the router)
    route      attempts (one Attempt per try)
    answer     answer: one `Answer` record (usage, finish reason, the answering model and id),
               read from the upstream's reply by the answer stage, or taken whole from a cache
               entry or a single flight
    features   cache_status (cache), bill (spend: what the request cost, saved, left),
               redactions, pseudonyms, zdr (privacy: it also replaces body and raw_body with
               their redacted versions), trace_id, span_id (telemetry)
    handler    status (once the response starts), first_byte_at, bytes_out, outcome (as it
               sends the reply)

`Call.fork()` makes the Call another task runs for the same request (a single-flight upstream
call, one model of a compare, a shadow copy): its docstring says which fields the fork shares,
copies and starts afresh.

A stage ends a request early by *returning* a Reply (`Reply.from_error(...)`); expected failures,
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
from typing import Any, Literal, Protocol

import orjson
import structlog
from aiohttp import StreamReader
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.errors import JSON_CONTENT_TYPE, SidecarError, render
from sidecar.forms import Form
from sidecar.globs import Globs
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
    # The answers of the media endpoints (spend/media.py prices them):
    media_tokens: int = 0  # input tokens that were image or audio (part of prompt_tokens)
    images: int = 0  # images in an image endpoint's answer
    seconds: float = 0.0  # audio a transcription billed (`usage.seconds`, or `duration`)


@dataclass(slots=True)
class Answer:
    """What the upstream's answer said, read once by the answer stage (pipeline/answer.py).

    Moved whole, never field by field: a single-flight follower, a cache hit and a fork's owner
    take it in one assignment (`call.answer = other.answer`), so no fact can be left behind.
    Written only by the stage that reads the answer (or a translation producing one); a record
    that was moved is not written again."""

    usage: Usage | None = None
    finish_reason: str | None = None  # the last choice's, in OpenAI's vocabulary
    model: str | None = None  # the model that answered (the answer's `model`)
    id: str | None = None  # the answer's `id` (chatcmpl-..., resp_...)


NANO_USD = 1e-9  # spend keeps money as whole nano-dollars (spend/pricing.py)


@dataclass(slots=True)
class Bill:
    """What one request cost, written by the spend stage (spend/bill.py), read by the access
    line, the spans and the inspector. Nano-dollars; every candidate model tried adds to it, and
    the request's one ledger row is written from it."""

    ts: float  # Unix time the request was first admitted
    cost: int = 0  # nano-dollars, every candidate together
    saved: int = 0  # what a cache hit did not spend
    usage: Usage | None = None  # the last settled candidate's (the answer the client got)
    estimated: bool = False  # some usage was estimated (a stream that ended without usage)
    capped: bool = False  # a blocking budget lowered the completion limit
    hit: bool = False  # served from the cache
    remaining: int | None = None  # nano-dollars left in the tightest budget, after this

    @property
    def cost_usd(self) -> float:
        return self.cost * NANO_USD

    @property
    def saved_usd(self) -> float | None:
        return self.saved * NANO_USD if self.hit else None

    @property
    def remaining_usd(self) -> float | None:
        return None if self.remaining is None else self.remaining * NANO_USD


class AutoRoute(Protocol):
    """What an auto router decided for a request (`call.auto`), as the stages that say it out
    loud read it: the ledger row (spend/bill.py) and the inspector. Implemented by
    sidecar/auto/choice.py; a Protocol here so that the Call depends on no feature."""

    router: str  # the router's name, as the client sent it in `model`

    @property
    def reason(self) -> str:
        """The deciding features and what moved the tier, comma-separated."""
        ...

    def served_model(self, call: Call) -> str | None:
        """The model that ran (for a delegated request, the one OpenRouter's answer names)."""
        ...

    def served_tier(self, call: Call) -> str: ...

    def baseline_cost(self, bill: Bill | None) -> int | None:
        """Nano-dollars the router's baseline would have cost for the same tokens."""
        ...

    def saved(self, bill: Bill | None) -> int | None:
        """Nano-dollars saved against the baseline (negative: it cost more)."""
        ...


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
    form: Form | None = None  # a multipart body's parts (forms.py); `body` has its text fields
    body_changed: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)  # body fields for this model only
    model: str | None = None  # the model being tried (a fallback candidate during routing)
    requested_model: str | None = None  # what the client asked for
    candidates: tuple[str, ...] | None = None  # set by auto: fallback's candidate list
    priced_as: str | None = None  # set by auto's delegate: spend prices this model instead
    auto: AutoRoute | None = None  # the auto router's choice (sidecar/auto/choice.py)
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
    answer: Answer = field(default_factory=Answer)
    cache_status: str | None = None  # HIT | MISS | BYPASS | OFF
    bill: Bill | None = None  # spend's: None when no spend stage priced this request
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
    # Set by a stage that keeps working for this request after its client left (the background
    # read of a cancelled call, pipeline/detach.py): `finish` then waits for that work to end.
    finish_deferred: bool = False

    def upstream_body(self, model: str | None = None,
                      overrides: dict[str, Any] | None = None) -> bytes | None:
        """What to send upstream: the client's exact bytes unless something changed, else the
        body with this model's overrides (`overrides` instead, when a provider renamed one)
        and, when given, the model name the provider wants. A form is written again as a
        form (forms.py)."""
        body = self.body
        if body is None:
            return self.raw_body
        if overrides is None:
            overrides = self.overrides
        if not (self.body_changed or overrides or (model and model != body.get("model"))):
            return self.raw_body
        out = {**body, **overrides}
        if model:
            out["model"] = model
        if self.form is not None:
            return self.form.render(out)
        return orjson.dumps(out)

    def fork(self, *, request_id: str | None = None, share_attempts: bool = False) -> Call:
        """The same request, for another task to run the rest of a pipeline on. Field by field:

        copied    who and what was asked, as the stages above the fork left it: method, path,
                  endpoint, headers, started, raw_body, body (the same dict: stages replace a
                  body, they never edit one in place once it is parsed), form, body_changed,
                  model, requested_model, candidates, priced_as, auto, preferences, stream,
                  user, tags, key_name, allowed_models, redactions, pseudonyms, zdr, trace_id,
                  span_id; overrides and upstream_headers as new dicts (the fork's changes
                  stay its own)
        fresh     finishers (the fork runs its own, when its task ends), answer (moved back in
                  one assignment by whoever owns the fork), bill, cache_status,
                  response_headers, status, first_byte_at, bytes_out, outcome, content (the
                  body was read already), finish_deferred
        shared    attempts, when `share_attempts`: a single flight's upstream tries are the
                  leader request's own (its provider header, its CLIENT spans, its access line)
        request_id  the same unless given: a compare or shadow call is a request of its own

        The fork's `outcome` is its own: the task that runs it sets it from what that task saw
        (a broken stream, every client gone), so its finishers (the breaker's judgement among
        them) judge the fork's exchange exactly as they would the client's."""
        return Call(
            request_id=self.request_id if request_id is None else request_id,
            method=self.method, path=self.path, endpoint=self.endpoint, headers=self.headers,
            started=self.started, raw_body=self.raw_body, body=self.body, form=self.form,
            body_changed=self.body_changed, overrides=dict(self.overrides), model=self.model,
            requested_model=self.requested_model, candidates=self.candidates,
            priced_as=self.priced_as, auto=self.auto, preferences=self.preferences,
            stream=self.stream, user=self.user, tags=self.tags, key_name=self.key_name,
            allowed_models=self.allowed_models, upstream_headers=dict(self.upstream_headers),
            attempts=self.attempts if share_attempts else [], redactions=self.redactions,
            pseudonyms=self.pseudonyms, zdr=self.zdr, trace_id=self.trace_id,
            span_id=self.span_id)

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
        and the rest still run. Nothing yet while `finish_deferred`: whoever set it calls
        `finish` again once its work is over."""
        if self.finish_deferred:
            return
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
"""The one name for Call -> Reply: what a stage calls as `next`, and what a composed pipeline
is (a pipeline is the `next` of whoever runs it)."""


class Stage(Protocol):
    """One step of the pipeline: do request-side work, call `next`, do response-side work.

    `name` is what /sidecar/config lists; `reads_answer` says the stage needs the answer record
    (`call.answer`), which puts the answer stage into the list (pipeline/__init__.py)."""

    name: str
    reads_answer: bool

    async def __call__(self, call: Call, next: Next) -> Reply: ...
