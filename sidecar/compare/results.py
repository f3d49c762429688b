"""One model's result in a compare, built from its finished Call, and the summary that ranks them.

Costs come from the Call's Bill (what spend billed and the ledger row says), usage from its
answer record, latency from the model call's start to its end, time to first token from its
first streamed byte. A model the deadline cut gets a 504 `upstream_timeout` error, whatever
it had sent so far.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from sidecar.call import Call
from sidecar.compare.answers import answer_object, answer_text, error_object
from sidecar.compare.consume import Consumed
from sidecar.errors import UpstreamTimeout


@dataclass(slots=True)
class ModelResult:
    index: int  # the model's place in the request's `models`
    model: str
    request_id: str  # the model call's own id: its ledger row, access line and inspector entry
    provider: str | None
    status: int
    response: dict[str, Any] | None  # the provider's answer object (OpenAI format)
    content: str | None  # its text, for people
    finish_reason: str | None
    usage: dict[str, int] | None
    cost_usd: float | None  # None when spend is off
    latency_ms: float
    ttft_ms: float | None  # streamed answers only
    cache: str | None  # HIT | MISS | BYPASS | OFF; None when the cache is off
    error: dict[str, Any] | None  # OpenAI-shaped, for a model that failed

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def result_of(index: int, model: str, endpoint: str, call: Call, consumed: Consumed, *,
              timeout_s: float | None = None) -> ModelResult:
    """`timeout_s`: set when the compare's deadline cut this model."""
    ended = consumed.ended if consumed.ended is not None else time.monotonic()
    status = consumed.status
    if timeout_s is not None:
        error: dict[str, Any] | None = UpstreamTimeout(
            f"Model '{model}' did not finish within the compare's deadline of {timeout_s:g} s "
            "(compare.timeout_s).").payload()["error"]
        status = UpstreamTimeout.status
    else:
        error = error_object(consumed)
    response = answer_object(endpoint, consumed) if error is None else None
    usage = call.answer.usage
    first = call.first_byte_at
    return ModelResult(
        index=index, model=model, request_id=call.request_id, provider=call.provider,
        status=status, response=response, content=answer_text(response),
        finish_reason=call.answer.finish_reason if error is None else None,
        usage=None if usage is None else {
            "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "cached_tokens": usage.cached_tokens, "reasoning_tokens": usage.reasoning_tokens},
        cost_usd=None if call.bill is None else call.bill.cost_usd,
        latency_ms=round((ended - call.started) * 1000, 3),
        ttft_ms=round((first - call.started) * 1000, 3) if (
            consumed.streamed and first is not None) else None,
        cache=call.cache_status, error=error)


def summarize(results: list[ModelResult], wall_ms: float) -> dict[str, Any]:
    """Successful models ranked by cost (cheapest first) and by latency (fastest first); totals
    count every model, failed ones too (a failure can cost what its provider billed)."""
    ok = [r for r in results if r.ok]
    priced = [r for r in ok if r.cost_usd is not None]
    by_cost = sorted(priced, key=lambda r: (r.cost_usd or 0.0, r.index))
    by_latency = sorted(ok, key=lambda r: (r.latency_ms, r.index))
    costs = [r.cost_usd for r in results if r.cost_usd is not None]
    return {
        "models": len(results),
        "succeeded": len(ok),
        "failed": [r.index for r in results if not r.ok],
        "by_cost": [{"index": r.index, "model": r.model, "cost_usd": r.cost_usd}
                    for r in by_cost],
        "by_latency": [{"index": r.index, "model": r.model, "latency_ms": r.latency_ms}
                       for r in by_latency],
        "cheapest": by_cost[0].model if by_cost else None,
        "fastest": by_latency[0].model if by_latency else None,
        "total_cost_usd": sum(costs) if costs else None,
        "total_tokens": sum(r.usage["total_tokens"] for r in results if r.usage),
        "slowest_ms": max((r.latency_ms for r in results), default=0.0),
        "wall_ms": round(wall_ms, 3),
    }
