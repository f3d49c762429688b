"""The answers to a refused admission that every priced path shares (the spend stage, the
Realtime relay): a rate limit's 429 with Retry-After, and how a refusal names whom it counts."""

from __future__ import annotations

import math

from sidecar.call import Reply
from sidecar.errors import RateLimitExceeded
from sidecar.spend.policy import Refusal

__all__ = ["rate_limited", "whose"]


def whose(refusal: Refusal) -> str:
    """The scope a refusal counts against: `key 'team-a'`, or `global`."""
    return f"{refusal.scope} '{refusal.value}'" if refusal.scope != "global" else "global"


def rate_limited(refusal: Refusal, what: str) -> Reply:
    """429 rate_limit_exceeded for a rate-limit refusal; `what`: "request", "session"."""
    wait = max(1, math.ceil(refusal.retry_after))
    per = "requests" if refusal.unit == "requests" else "tokens"
    return Reply.from_error(RateLimitExceeded(
        f"Rate limit {refusal.rule} ({whose(refusal)}) allows {refusal.limit:g} {per} per "
        f"minute and has no room for this {what} now; retry in {wait} s.",
        metadata={"limit": refusal.rule, "scope": refusal.scope, "scope_value": refusal.value,
                  "unit": refusal.unit, "per_minute": refusal.limit, "retry_after_s": wait}),
        headers={"Retry-After": str(wait)})
