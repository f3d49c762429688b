"""What a Realtime response costs: text, audio and image tokens, each at its own price.

A Realtime model bills its tokens by kind (gpt-realtime: audio input costs 8 times text input), so a
price here has a rate per kind, in nano-dollars per token, read from:

1. the price book (`spend.prices`, the upstream's /models, the bundled table) when it lists the
   model: its prompt, cached and completion prices for text tokens; audio and image tokens at
   this module's table when the model is in it, else at the book's prices too;
2. else the table (`prices.json`, OpenAI's list prices of the Realtime models, dated, with each
   model's context window and most output tokens), by the model's name without an `openai/`
   prefix or a `-YYYY-MM-DD` snapshot date.

`worst()` is the most one response can cost: its whole context window at the dearest input
rate plus the most output tokens at the dearest output rate. `cost()` prices a `response.done`
event's `usage` (input and output tokens with their `*_token_details`); tokens the details do
not account for are priced at the dearest rate of their side, and cached tokens whose kind is
not said at the uncached rate, so a cost is never below the truth.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from sidecar.call import Usage
from sidecar.spend.pricing import NANO, ModelPrice

__all__ = ["RealtimePrice", "realtime_price", "table"]

_DATED = re.compile(r"-\d{4}-\d{2}-\d{2}$")
_PER_MILLION = NANO / 1_000_000  # USD per 1M tokens -> nano-dollars per token
DEFAULT_CONTEXT = 128_000  # a model the table does not know: the largest Realtime context
DEFAULT_MAX_OUTPUT = 32_000  # and the most output tokens any Realtime model allows


@dataclass(frozen=True, slots=True)
class RealtimePrice:
    """Nano-dollars per token of each kind; input: (fresh, cached)."""

    text: tuple[float, float, float]  # input, cached input, output
    audio: tuple[float, float, float]
    image: tuple[float, float]  # input, cached input
    context: int  # tokens a response's input can have at most
    max_output: int  # tokens a response can generate at most
    source: str  # table | config | upstream | bundled | default

    def worst(self) -> int:
        """The most one response can cost, in nano-dollars."""
        dearest_in = max(self.text[0], self.text[1], self.audio[0], self.audio[1],
                         self.image[0], self.image[1])
        dearest_out = max(self.text[2], self.audio[2])
        return round(self.context * dearest_in + self.max_output * dearest_out)

    def cost(self, usage: dict[str, Any]) -> tuple[int, Usage]:
        """A `response.done` usage: its cost in nano-dollars, and the ledger's token counts."""
        total_in = _int(usage.get("input_tokens"))
        total_out = _int(usage.get("output_tokens"))
        details_in = _dict(usage.get("input_token_details"))
        details_out = _dict(usage.get("output_token_details"))
        cached_total = _int(details_in.get("cached_tokens"))
        cached = _dict(details_in.get("cached_tokens_details"))
        cost = 0.0
        seen_in = 0
        for kind, (fresh_rate, cached_rate) in (("text", self.text[:2]),
                                                ("audio", self.audio[:2]),
                                                ("image", self.image)):
            tokens = _int(details_in.get(f"{kind}_tokens"))
            cached_kind = min(_int(cached.get(f"{kind}_tokens")), tokens)
            cost += (tokens - cached_kind) * fresh_rate + cached_kind * cached_rate
            seen_in += tokens
        # input no detail accounts for, at the dearest input rate (cached tokens whose kind is
        # not said got no discount above)
        cost += max(0, total_in - seen_in) * max(self.text[0], self.audio[0], self.image[0])
        text_out = _int(details_out.get("text_tokens"))
        audio_out = _int(details_out.get("audio_tokens"))
        cost += text_out * self.text[2] + audio_out * self.audio[2]
        cost += max(0, total_out - text_out - audio_out) * max(self.text[2], self.audio[2])
        return round(cost), Usage(prompt_tokens=max(total_in, seen_in),
                                  completion_tokens=max(total_out, text_out + audio_out),
                                  cached_tokens=min(cached_total, max(total_in, seen_in)))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def table_name(model: str) -> str:
    """The model's name as the table lists it: no `openai/` prefix, no snapshot date."""
    name = model.rpartition("/")[2] if model.startswith("openai/") else model
    return _DATED.sub("", name)


@cache
def table() -> dict[str, RealtimePrice]:
    """The bundled table (prices.json), read once."""
    raw = importlib.resources.files("sidecar.realtime").joinpath("prices.json").read_bytes()
    out = {}
    for name, row in orjson.loads(raw)["models"].items():
        text = tuple(usd * _PER_MILLION for usd in row["text"])
        audio = tuple(usd * _PER_MILLION for usd in row["audio"])
        image = tuple(usd * _PER_MILLION for usd in row.get("image", (0.0, 0.0)))
        out[name] = RealtimePrice((text[0], text[1], text[2]), (audio[0], audio[1], audio[2]),
                                  (image[0], image[1]), row["context"], row["max_output"],
                                  "table")
    return out


def realtime_price(model: str, listed: ModelPrice | None) -> RealtimePrice | None:
    """The price of `model`: the price book's (`listed`) with the table's audio and image rates,
    or the table's alone; None when neither knows it."""
    known = table().get(table_name(model)) if model else None
    if listed is None:
        return known
    r = listed.rates
    text = (r.prompt, r.cache_read, r.completion)
    if known is None:  # every kind at the book's prices: the only ones there are
        context = listed.context_length or DEFAULT_CONTEXT
        return RealtimePrice(text, text, (r.prompt, r.cache_read), context, DEFAULT_MAX_OUTPUT,
                             listed.source)
    return RealtimePrice(text, known.audio, known.image, listed.context_length or known.context,
                         known.max_output, listed.source)
