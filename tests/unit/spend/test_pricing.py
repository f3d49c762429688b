"""Prices: OpenRouter's /models entries, the cost of a usage, the worst case, the price book's
lookup order, the bundled table, and exact USD strings."""

from __future__ import annotations

import pytest

from sidecar import USER_AGENT
from sidecar.call import Usage
from sidecar.config import Settings
from sidecar.spend.price_book import PriceBook, load_bundled, price_sources
from sidecar.spend.pricing import (
    ModelPrice,
    parse_models,
    price_from_openrouter,
    rates_from_usd,
    usd_text,
)
from sidecar.upstream.client import UpstreamClient


def entry(**pricing: object) -> dict[str, object]:
    return {"id": "m", "pricing": pricing, "context_length": 1000}


def test_openrouter_string_prices_become_nano_dollars_per_token() -> None:
    """"0.0000025" USD a token is 2500 nano-dollars; unset cache and reasoning prices fall back
    to the prompt and completion prices."""
    price = price_from_openrouter(entry(prompt="0.0000025", completion="0.00001",
                                        request="0", input_cache_read="0.00000125"), "upstream")
    assert price is not None
    r = price.rates
    assert (r.prompt, r.completion, r.cache_read, r.cache_write, r.reasoning) == pytest.approx(
        (2500, 10000, 1250, 2500, 10000))
    assert price.context_length == 1000


@pytest.mark.parametrize("pricing", [{}, {"prompt": "-1", "completion": "-1"},
                                     {"prompt": "abc"}], ids=["none", "variable", "garbage"])
def test_entries_without_a_usable_price_are_skipped(pricing: dict[str, str]) -> None:
    """No price, OpenRouter's -1 (variable, e.g. openrouter/auto) or garbage: not priced."""
    assert price_from_openrouter(entry(**pricing), "upstream") is None
    assert parse_models({"data": [entry(**pricing), "junk"]}, "upstream") == {}
    assert parse_models(["not", "an", "object"], "upstream") == {}


def test_long_context_tier_and_time_of_day_overrides() -> None:
    """A min_prompt_tokens override is a tier used above its threshold; a time-of-day override
    is folded in at the dearer price (a reservation must cover whichever applies)."""
    price = price_from_openrouter(entry(prompt="0.000001", completion="0.000002", overrides=[
        {"min_prompt_tokens": 200000, "prompt": "0.000002"},
        {"utc_start": "0000", "utc_end": "0600", "completion": "0.000003"},
        {"mystery_condition": 1, "prompt": "9"}]), "upstream")
    assert price is not None
    assert price.rates_for(200_000).prompt == pytest.approx(1000)
    assert price.rates_for(200_001).prompt == pytest.approx(2000)
    assert price.rates.completion == pytest.approx(3000)


USAGE = Usage(prompt_tokens=100, completion_tokens=50, cached_tokens=40, cache_write_tokens=10,
              reasoning_tokens=20)


def test_cost_prices_each_token_kind() -> None:
    """Cached reads, cache writes, reasoning and the request fee each at their own price."""
    price = ModelPrice(rates_from_usd(prompt=1e-6, completion=2e-6, request=1e-3,
                                      input_cache_read=0.1e-6, input_cache_write=1.25e-6,
                                      internal_reasoning=3e-6), "config")
    expected = 50 * 1000 + 40 * 100 + 10 * 1250 + 30 * 2000 + 20 * 3000 + 1_000_000
    assert price.cost(USAGE) == expected


def test_upstream_cost_wins_and_worst_case_covers_every_kind() -> None:
    """usage.cost is the cost when present; the worst case prices every prompt token at the
    dearest input rate and every completion token at the dearest output rate."""
    price = ModelPrice(rates_from_usd(prompt=1e-6, completion=2e-6, input_cache_write=1.25e-6,
                                      internal_reasoning=3e-6), "config")
    assert price.cost(Usage(prompt_tokens=5, cost_usd=0.5)) == 500_000_000
    assert price.worst(10) == pytest.approx((1250, 3000, 0))
    assert price.cost(USAGE) <= 100 * 1250 + 50 * 3000


def test_cache_saving_is_net_of_the_write_premium() -> None:
    """Reads save (prompt - read price) each, writes cost (write - prompt price) more; nothing
    cached is no saving; a model without cache prices saves nothing."""
    price = ModelPrice(rates_from_usd(prompt=1e-6, completion=2e-6, input_cache_read=0.1e-6,
                                      input_cache_write=1.25e-6), "config")
    assert price.cache_saving(USAGE) == 40 * 900 - 10 * 250
    assert price.cache_saving(Usage(prompt_tokens=100, cache_write_tokens=100)) == -25_000
    assert price.cache_saving(Usage(prompt_tokens=100, completion_tokens=9)) == 0
    flat = ModelPrice(rates_from_usd(prompt=1e-6, completion=2e-6), "config")
    assert flat.cache_saving(USAGE) == 0


@pytest.mark.parametrize(("nano", "text"), [(0, "0"), (1, "0.000000001"), (50_000, "0.00005"),
                                            (1_500_000_000, "1.5"), (-5000, "-0.000005"),
                                            (2_000_000_000, "2")])
def test_usd_text_is_exact(nano: int, text: str) -> None:
    """Nano-dollars print as exact decimals, never 5e-05 or float noise."""
    assert usd_text(nano) == text


def test_bundled_table_is_dated_and_sourced() -> None:
    """The bundled table says where it comes from and when; common models are in it."""
    prices, source, date = load_bundled()
    assert "LiteLLM" in source and date == "2026-11-22"
    assert len(prices) > 300
    gpt4o = prices["openai/gpt-4o"]
    assert (gpt4o.rates.prompt, gpt4o.rates.completion) == pytest.approx((2500, 10000))
    assert "anthropic/claude-sonnet-4.5" in prices and "gpt-4o-mini" in prices


async def test_price_book_lookup_order() -> None:
    """spend.prices globs win (first written first), then the upstream's list, then the
    bundled table; routing suffixes are dropped for a second try; unknown is None."""
    settings = Settings.model_validate({"spend": {"fetch_prices": False, "prices": {
        "openai/gpt-4o": {"prompt": 1e-6}, "openai/*": {"prompt": 2e-6}}}})
    book = PriceBook(settings, UpstreamClient(settings.upstream))
    await book.start()
    book._fetched = {"x/fetched": ModelPrice(rates_from_usd(prompt=3e-6), "upstream")}
    assert book.lookup("openai/gpt-4o") is not None
    assert book.lookup("openai/gpt-4o").rates.prompt == pytest.approx(1000)  # type: ignore[union-attr]
    assert book.lookup("openai/gpt-4o-mini").source == "config"  # type: ignore[union-attr]
    assert book.lookup("x/fetched:nitro").source == "upstream"  # type: ignore[union-attr]
    assert book.lookup("anthropic/claude-sonnet-4.5").source == "bundled"  # type: ignore[union-attr]
    assert book.lookup("nobody/knows") is None
    await book.close()


def test_price_sources_carry_the_providers_credentials() -> None:
    """Prices are fetched from each provider's /models with its key (never logged)."""
    settings = Settings.model_validate({"upstream": {"url": "https://up.example/api/v1",
                                                     "api_key": "sk-x",
                                                     "headers": {"X-Title": "t"}}})
    (source,) = price_sources(settings)
    assert source.url == "https://up.example/api/v1/models"
    assert source.headers == {"X-Title": "t", "Authorization": "Bearer sk-x",
                              "User-Agent": USER_AGENT}
    settings = Settings.model_validate({"upstream": {"url": "https://up.example/api/v1",
                                                     "headers": {"user-agent": "mine/1"}}})
    (source,) = price_sources(settings)
    assert source.headers == {"user-agent": "mine/1"}  # the provider's own, not a second one


def test_anthropic_format_providers_are_not_asked_for_prices() -> None:
    """An Anthropic-format provider's /models has no prices (and would answer 401 to a bearer
    key): only the OpenAI-format providers are fetched."""
    settings = Settings.model_validate({"providers": [
        {"name": "claude", "base_url": "https://api.anthropic.com/v1", "format": "anthropic",
         "api_key": "sk-ant"},
        {"name": "router", "base_url": "https://openrouter.ai/api/v1", "api_key": "sk-or"}]})
    assert [source.name for source in price_sources(settings)] == ["router"]
