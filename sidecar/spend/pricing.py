"""What a model costs, and what one answer cost.

Money is kept as whole nano-dollars (1e-9 USD, `int`) inside the sidecar: budget sums, limits
and reservations then compare exactly (no float drift across a million rows), and the smallest
real price (about 1e-8 USD a token) is still 10 units. USD floats appear only at the edges
(config, headers, JSON, the CLI).

A `ModelPrice` holds OpenRouter's per-token prices as nano-dollars. `cost` prices a `Usage`:
cached input tokens at `input_cache_read`, cache writes at `input_cache_write`, reasoning tokens
at `internal_reasoning` (else as completion tokens), plus the per-request fee; when the upstream
reported `usage.cost` (OpenRouter does, in every answer), that figure wins. `cache_saving` is
what the provider's prompt cache saved against the same input uncached. `worst` is the price
a reservation uses: the dearest way each token could be billed, so a reservation is never less
than what the answer can cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.call import Usage

NANO = 1_000_000_000  # nano-dollars per USD


def to_nano(usd: float) -> int:
    return round(usd * NANO)


def to_usd(nano: int) -> float:
    return nano / NANO


def usd_text(nano: int) -> str:
    """An exact decimal string of nano-dollars: 1234 -> "0.000001234"."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), 1_000_000_000)
    digits = f"{frac:09d}".rstrip("0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


@dataclass(frozen=True, slots=True)
class Rates:
    """Nano-dollars per token (per request for `request`)."""

    prompt: float = 0.0
    completion: float = 0.0
    request: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0
    reasoning: float = 0.0

    @property
    def free(self) -> bool:
        return not (self.prompt or self.completion or self.request or self.cache_read
                    or self.cache_write or self.reasoning)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    rates: Rates
    source: str  # config | upstream | bundled | default
    context_length: int | None = None
    # OpenRouter's `overrides` with `min_prompt_tokens` (LiteLLM's ">200k" prices): the rates
    # that apply when the prompt has more tokens than that.
    long_context: tuple[int, Rates] | None = None

    def rates_for(self, prompt_tokens: int) -> Rates:
        tier = self.long_context
        if tier is not None and prompt_tokens > tier[0]:
            return tier[1]
        return self.rates

    def cost(self, usage: Usage) -> int:
        """What this answer cost, in nano-dollars."""
        if usage.cost_usd is not None:
            return to_nano(usage.cost_usd)
        r = self.rates_for(usage.prompt_tokens)
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
        return round((usage.prompt_tokens - cached - written) * r.prompt
                     + cached * r.cache_read + written * r.cache_write
                     + (usage.completion_tokens - reasoning) * r.completion
                     + reasoning * r.reasoning + r.request)

    def cache_saving(self, usage: Usage) -> int:
        """Nano-dollars the provider's prompt cache saved on this answer's input: its cached and
        written tokens at the prompt price, minus what they cost. Net of the write premium
        (Anthropic bills writes at 1.25x), so a write nothing reads yet is a negative saving,
        which later reads repay. From the book's rates, also when the upstream reported
        usage.cost (its own figure covers the whole answer, not this part of it)."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        if not (cached or written):
            return 0
        r = self.rates_for(usage.prompt_tokens)
        return round(cached * (r.prompt - r.cache_read) + written * (r.prompt - r.cache_write))

    def worst(self, prompt_tokens: int) -> tuple[float, float, float]:
        """(per prompt token, per completion token, per request) at the dearest rates an
        answer with at most `prompt_tokens` of input can be billed at."""
        r = self.rates_for(prompt_tokens)
        return (max(r.prompt, r.cache_read, r.cache_write), max(r.completion, r.reasoning),
                r.request)


def rates_from_usd(prompt: float = 0.0, completion: float = 0.0, request: float = 0.0,
                   input_cache_read: float | None = None, input_cache_write: float | None = None,
                   internal_reasoning: float | None = None) -> Rates:
    """Rates from USD-per-token figures; unset cache and reasoning prices fall back to the
    prompt and completion prices (how OpenRouter bills a model that lists none)."""
    return Rates(prompt=prompt * NANO, completion=completion * NANO, request=request * NANO,
                 cache_read=(prompt if input_cache_read is None else input_cache_read) * NANO,
                 cache_write=(prompt if input_cache_write is None else input_cache_write) * NANO,
                 reasoning=(completion if internal_reasoning is None else internal_reasoning)
                 * NANO)


_FIELDS = ("prompt", "completion", "request", "input_cache_read", "input_cache_write",
           "internal_reasoning")


def _number(value: Any) -> float | None:
    """OpenRouter sends prices as strings ("0.0000025"); "-1" marks a variable price."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def price_from_openrouter(entry: dict[str, Any], source: str) -> ModelPrice | None:
    """One `data[]` entry of GET /models, or None when it carries no usable price."""
    pricing = entry.get("pricing")
    if not isinstance(pricing, dict):
        return None
    base = {name: n for name in _FIELDS if (n := _number(pricing.get(name))) is not None}
    if "prompt" not in base and "completion" not in base:
        return None
    tier: tuple[int, Rates] | None = None
    overrides = pricing.get("overrides")
    for override in overrides if isinstance(overrides, list) else ():
        if not isinstance(override, dict):
            continue
        values = {name: n for name in _FIELDS if (n := _number(override.get(name))) is not None}
        threshold = override.get("min_prompt_tokens")
        conditions = set(override) - set(_FIELDS)
        if conditions == {"min_prompt_tokens"} and isinstance(threshold, int):
            tier = (threshold, rates_from_usd(**{**base, **values}))
        elif conditions <= {"utc_start", "utc_end", "utc_days", "min_prompt_tokens"}:
            # A time-of-day price: reserve at the dearer of the two, whenever it applies.
            base = {name: max(base.get(name, 0.0), values.get(name, 0.0))
                    for name in set(base) | set(values)}
    context = entry.get("context_length")
    return ModelPrice(rates_from_usd(**base), source,
                      context if isinstance(context, int) and context > 0 else None, tier)


def parse_models(payload: Any, source: str) -> dict[str, ModelPrice]:
    """Every priced model of a GET /models answer (OpenRouter's shape)."""
    data = payload.get("data") if isinstance(payload, dict) else None
    out: dict[str, ModelPrice] = {}
    for entry in data if isinstance(data, list) else ():
        if isinstance(entry, dict) and isinstance(model := entry.get("id"), str):
            price = price_from_openrouter(entry, source)
            if price is not None:
                out[model] = price
    return out
