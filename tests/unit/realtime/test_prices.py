"""Realtime prices: the table, the price book's precedence, a response's worst case and the
cost of a `response.done` usage by token kind."""

from __future__ import annotations

from typing import Any

import pytest

from sidecar.realtime.prices import RealtimePrice, realtime_price, table, table_name
from sidecar.spend.pricing import ModelPrice, rates_from_usd

M = 1000.0  # nano-dollars per token for 1 USD per 1M tokens


@pytest.mark.parametrize(("model", "name"), [
    ("gpt-realtime", "gpt-realtime"),
    ("openai/gpt-realtime-mini", "gpt-realtime-mini"),
    ("gpt-4o-realtime-preview-2024-12-17", "gpt-4o-realtime-preview"),
    ("gpt-realtime-2025-08-28", "gpt-realtime"),
])
def test_table_names(model: str, name: str) -> None:
    """A snapshot date and an openai/ prefix do not hide a model from the table."""
    assert table_name(model) == name
    assert realtime_price(model, None) == table()[name]


def test_worst_case_of_gpt_realtime() -> None:
    """One response's worst case: 32,000 tokens at $32/M plus 4,096 at $64/M = $1.286144."""
    assert table()["gpt-realtime"].worst() == 1_286_144_000


USAGE = {"input_tokens": 300, "output_tokens": 100,
         "input_token_details": {"text_tokens": 100, "audio_tokens": 200, "cached_tokens": 50,
                                 "cached_tokens_details": {"text_tokens": 0,
                                                           "audio_tokens": 50}},
         "output_token_details": {"text_tokens": 30, "audio_tokens": 70}}


@pytest.mark.parametrize(("usage", "nano"), [
    (USAGE, (100 * 4 + 150 * 32 + 50 * 0.4 + 30 * 16 + 70 * 64) * 1000),
    # cached tokens whose kind is unsaid get no discount
    ({**USAGE, "input_token_details": {"text_tokens": 100, "audio_tokens": 200,
                                       "cached_tokens": 50}},
     (100 * 4 + 200 * 32 + 30 * 16 + 70 * 64) * 1000),
    # no details at all: every token at its side's dearest rate
    ({"input_tokens": 10, "output_tokens": 10}, (10 * 32 + 10 * 64) * 1000),
    ({}, 0),
])
def test_cost_by_kind(usage: dict[str, Any], nano: float) -> None:
    """A usage is priced kind by kind; what its details do not account for, at the dearest."""
    cost, counted = table()["gpt-realtime"].cost(usage)
    assert cost == round(nano)
    assert counted.prompt_tokens == usage.get("input_tokens", 0)


def test_price_book_text_prices_win_and_audio_comes_from_the_table() -> None:
    """A model the book lists: its text prices; audio and image from the table."""
    listed = ModelPrice(rates_from_usd(prompt=1e-6, completion=2e-6), "config")
    price = realtime_price("gpt-realtime", listed)
    assert price is not None
    assert price.text == (1 * M, 1 * M, 2 * M)
    assert price.audio == table()["gpt-realtime"].audio
    assert price.source == "config"


def test_a_model_only_the_book_lists_prices_every_kind_alike() -> None:
    """Not in the table: every token kind at the book's prices, the largest Realtime context."""
    listed = ModelPrice(rates_from_usd(prompt=1e-6, completion=2e-6), "upstream")
    price = realtime_price("someone/realtime", listed)
    assert isinstance(price, RealtimePrice)
    assert price.audio == price.text == (1 * M, 1 * M, 2 * M)
    assert price.worst() == round(128_000 * M + 32_000 * 2 * M)
    assert realtime_price("someone/realtime", None) is None
