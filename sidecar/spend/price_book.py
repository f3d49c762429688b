"""The price book: which price applies to a model, kept fresh from the upstream.

Lookup order, first hit wins:
  1. `spend.prices`, by model glob in the order written (your contract prices);
  2. the upstream's GET /models (OpenRouter's format, string prices per token), fetched at start
     (start-up waits at most `spend.prices_fetch_timeout_s`, then serves and lets the fetch
     finish in the background) and again every `spend.prices_refresh_s`; with several
     providers, the dearest listing of a model (a reservation must cover whichever serves);
  3. the bundled table (`bundled_prices.json`, dated, with its source), so an offline start
     still knows the common models.
Routing suffixes (`:nitro`, `:floor`, `:exacto`, `:online`) are dropped for a second try.
A model found nowhere is `None`: the spend stage applies `spend.unknown_model_price`.
The media endpoints' prices (per image, per character, per minute) are `media` (media.py): the
same order, from `spend.media_prices`, the same /models answers and their own bundled table.
Results are memoised per model name (a dict hit per request instead of a glob scan).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import structlog

from sidecar import USER_AGENT
from sidecar.config.base import secret_values
from sidecar.config.schema import Settings
from sidecar.globs import Globs
from sidecar.spend.media import MediaBook, MediaPrice, media_from_openrouter
from sidecar.spend.pricing import ModelPrice, Rates, parse_models, rates_from_usd
from sidecar.upstream.client import UpstreamClient

_log = structlog.get_logger("sidecar.spend.prices")
Lookup = Callable[[str], ModelPrice | None]  # PriceBook.lookup, as its readers take it
_SUFFIXES = (":nitro", ":floor", ":exacto", ":online")
_MEMO_LIMIT = 10_000  # distinct model names remembered; a flood of made-up names cannot grow it
_FETCH_TIMEOUT_S = 30.0  # one background fetch (OpenRouter's /models is ~1 MB)


@dataclass(frozen=True, slots=True)
class PriceSource:
    name: str
    url: str  # {base_url}/models
    headers: dict[str, str]


def price_sources(settings: Settings) -> list[PriceSource]:
    """Where to fetch prices: every configured provider, else the one upstream."""
    if settings.providers:
        # An Anthropic-format provider's /models lists no prices (and wants x-api-key): the
        # book prices its models from the other sources.
        found = [(p.name, p.base_url, p.api_key, p.headers) for p in settings.providers
                 if p.format == "openai"]
    else:
        u = settings.upstream
        found = [("upstream", u.url, u.api_key, u.headers)]
    out = []
    for name, base_url, key, headers in found:
        extra = dict(headers)
        if not any(name.lower() == "user-agent" for name in extra):  # the provider's own wins
            extra["User-Agent"] = USER_AGENT
        if keys := secret_values(key):
            extra["Authorization"] = f"Bearer {keys[0]}"
        out.append(PriceSource(name, base_url.rstrip("/") + "/models", extra))
    return out


def load_bundled() -> tuple[dict[str, ModelPrice], str, str]:
    """The bundled table: (prices, source, date retrieved)."""
    raw = importlib.resources.files("sidecar.spend").joinpath("bundled_prices.json")
    payload = orjson.loads(raw.read_bytes())
    return parse_models(payload, "bundled"), payload["source"], payload["retrieved"]


class PriceBook:
    """A Resource (deps.py). Never blocks readiness: without a fetch it prices from the table."""

    name = "price book"

    def __init__(self, settings: Settings, upstream: UpstreamClient) -> None:
        self._upstream = upstream
        self.media = MediaBook(settings.spend)
        self._configure(settings)
        self._fetched: dict[str, ModelPrice] = {}
        self._bundled: dict[str, ModelPrice] = {}
        self.bundled_source = self.bundled_date = ""
        self.fetched_at: float | None = None
        self._memo: dict[str, ModelPrice | None] = {}
        self._task: asyncio.Task[None] | None = None

    def _configure(self, settings: Settings) -> None:
        spend = settings.spend
        self._settings = spend
        self._sources = price_sources(settings) if spend.fetch_prices else []
        self._configured = [(Globs([glob]), ModelPrice(rates_from_usd(**p.model_dump()),
                                                       "config"))
                            for glob, p in spend.prices.items()]

    async def reconfigure(self, settings: Settings) -> None:
        """Live reload: the configured prices apply to the next lookup; when the places to
        fetch from changed, they are fetched now (waiting as at start, at most
        `prices_fetch_timeout_s`), and kept fresh from then on."""
        sources = self._sources
        self._configure(settings)
        media = MediaBook(settings.spend)  # spend.media_prices, with what was fetched kept
        media.fetched, self.media = self.media.fetched, media
        self._memo = {}
        if self._sources == sources:
            return
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._fetched = {}
        if self._sources:
            first = asyncio.ensure_future(self.refresh())
            self._task = asyncio.ensure_future(self._keep_fresh(first))
            await asyncio.wait([first], timeout=self._settings.prices_fetch_timeout_s)

    async def start(self) -> None:
        self._bundled, self.bundled_source, self.bundled_date = load_bundled()
        if not self._sources:
            return
        first = asyncio.ensure_future(self.refresh())
        self._task = asyncio.ensure_future(self._keep_fresh(first))
        await asyncio.wait([first], timeout=self._settings.prices_fetch_timeout_s)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def problem(self) -> str | None:
        return None

    def lookup(self, model: str) -> ModelPrice | None:
        memo = self._memo
        try:
            return memo[model]
        except KeyError:
            pass
        price = self._resolve(model)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[model] = price
        return price

    def window(self, model: str) -> int | None:
        """The model's context window: its price's, else the upstream's or the bundled table's
        listing (a price set in `spend.prices` carries none, yet the model keeps its window)."""
        price = self.lookup(model)
        if price is not None and price.context_length is not None:
            return price.context_length
        for name in (model, *(model[:-len(s)] for s in _SUFFIXES if model.endswith(s))):
            for found in (self._fetched.get(name), self._bundled.get(name)):
                if found is not None and found.context_length is not None:
                    return found.context_length
        return None

    def _resolve(self, model: str) -> ModelPrice | None:
        for globs, price in self._configured:
            if globs.match(model):
                return price
        for name in (model, *(model[:-len(s)] for s in _SUFFIXES if model.endswith(s))):
            found = self._fetched.get(name) or self._bundled.get(name)
            if found is not None:
                return found
        return None

    async def refresh(self) -> None:
        """Fetch every source now; a source that fails keeps its previous prices."""
        results = await asyncio.gather(*(self._fetch(s) for s in self._sources))
        if not any(r is not None for r in results):
            return
        merged: dict[str, ModelPrice] = {}
        media: dict[str, MediaPrice] = {}
        for result in results:
            prices, found = result or (self._fetched, self.media.fetched)
            for model, price in prices.items():
                known = merged.get(model)
                merged[model] = price if known is None else _dearer(known, price)
            for model, item in found.items():
                media.setdefault(model, item)
        self._fetched = merged
        self.media.fetched = media
        self._memo = {}
        self.fetched_at = asyncio.get_running_loop().time()

    async def _fetch(self, source: PriceSource
                     ) -> tuple[dict[str, ModelPrice], dict[str, MediaPrice]] | None:
        try:
            async with self._upstream.session.get(
                    source.url, headers=source.headers, auto_decompress=True,
                    allow_redirects=False,  # a redirect is an error, never followed (SSRF)
                    timeout=aiohttp.ClientTimeout(total=_FETCH_TIMEOUT_S)) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                payload: Any = orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            _log.warning("prices_fetch_failed", provider=source.name, url=source.url,
                         error=str(exc) or type(exc).__name__)
            return None
        prices = parse_models(payload, "upstream")
        data = payload.get("data") if isinstance(payload, dict) else None
        media = {entry["id"]: found for entry in (data if isinstance(data, list) else ())
                 if isinstance(entry, dict) and isinstance(entry.get("id"), str)
                 and (found := media_from_openrouter(entry)) is not None}
        _log.info("prices_fetched", provider=source.name, models=len(prices))
        return prices, media

    async def _keep_fresh(self, first: asyncio.Future[None]) -> None:
        await first
        while True:
            await asyncio.sleep(self._settings.prices_refresh_s)
            await self.refresh()


def _dearer(a: ModelPrice, b: ModelPrice) -> ModelPrice:
    def worst(x: Rates, y: Rates) -> Rates:
        return Rates(*(max(p, q) for p, q in zip(_rates(x), _rates(y), strict=True)))
    return ModelPrice(worst(a.rates, b.rates), a.source,
                      max(filter(None, (a.context_length, b.context_length)), default=None),
                      a.long_context or b.long_context)


def _rates(r: Rates) -> tuple[float, ...]:
    return (r.prompt, r.completion, r.request, r.cache_read, r.cache_write, r.reasoning)
