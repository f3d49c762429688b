"""Helpers for the auto router's end-to-end tests: a router over four priced fake models, one
request per tier, and the two configurations every suite runs in (bare, and the defaults on)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai

from tests.conftest import RunningSidecar, merge

ROUTER = "sidecar/auto"
TIERS = {"simple": ["test/small"], "medium": ["test/mid"], "complex": ["test/big"],
         "reasoning": ["test/think"]}
# USD per token; in nano-dollars: small 10/20, mid 100/400, big 2500/10000, think 1100/4400
PRICES = {"test/small": {"prompt": 1e-8, "completion": 2e-8},
          "test/mid": {"prompt": 1e-7, "completion": 4e-7},
          "test/big": {"prompt": 2.5e-6, "completion": 1e-5},
          "test/think": {"prompt": 1.1e-6, "completion": 4.4e-6}}
NANO = {model: (round(p["prompt"] * 1e9), round(p["completion"] * 1e9))
        for model, p in PRICES.items()}

TOOLS = [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
         for name in ("search", "open_page")]
# One request per tier, as the classifier sees them (docs/auto.md).
ASKS: dict[str, dict[str, Any]] = {
    "simple": {"messages": [{"role": "user", "content": "hi there!"}]},
    "medium": {"messages": [{"role": "user", "content":
                             "Write a polite email to my landlord about the broken heating."}]},
    "complex": {"messages": [
        {"role": "user", "content": "Find the order and tell me when it ships."},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "search", "arguments": "{\"q\": \"order 1182\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Order 1182: packed."}],
        "tools": TOOLS},
    "reasoning": {"messages": [{"role": "user", "content":
                                "Prove that there are infinitely many primes."}]},
}

# The suites run bare (every other feature off), with the defaults on (memory cache, SQLite
# spend ledger, Prometheus metrics, the inspector), and with every feature on (the defaults
# plus local keys, pseudonymization, a blocking budget, two providers with retries).
VARIANTS: dict[str, dict[str, Any]] = {
    "bare": {"cache": {"backend": "off"}, "spend": {"ledger": "off"}, "admin": {"ui": False},
             "telemetry": {"prometheus": False}},
    "defaults": {},
    "all": {"auth": {"required": True, "keys": [{"name": "team", "token": "sk-test"}]},
            "privacy": {"redact": {"mode": "pseudonymize"}},
            "spend": {"budgets": [{"name": "cap", "limit_usd": 1000}]},
            "retry": {"attempts": 2}},
}


def auto_config(variant: str = "defaults", upstream: str | None = None,
                **router: Any) -> dict[str, Any]:
    """The four-tier router (baseline test/big) with the models priced, on `variant`; "all"
    routes test/* through provider a and everything else through b, both at `upstream`."""
    config = {"auto": {"routers": {ROUTER: {"tiers": TIERS, "baseline": "test/big",
                                            **router}}},
              "spend": {"prices": PRICES}}
    config = merge(config, VARIANTS[variant])
    if variant == "all":
        assert upstream is not None, "the all variant needs the fake upstream's URL"
        config["providers"] = [{"name": "a", "base_url": upstream, "models": ["test/*"]},
                               {"name": "b", "base_url": upstream}]
    return config


@asynccontextmanager
async def sdk(sidecar: RunningSidecar, **headers: str) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-test", max_retries=0,
                                default_headers=headers or None)
    try:
        yield client
    finally:
        await client.close()


async def ask(client: openai.AsyncOpenAI, tier: str, model: str = ROUTER,
              **extra: Any) -> Any:
    """The tier's request through the SDK; the raw response (headers, then .parse())."""
    body = {**ASKS[tier], **extra}
    messages, rest = body.pop("messages"), body
    tools = rest.pop("tools", openai.NOT_GIVEN)
    return await client.chat.completions.with_raw_response.create(
        model=model, messages=messages, tools=tools, extra_body=rest or None)
