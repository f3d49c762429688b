"""Regenerate sidecar/spend/bundled_prices.json, the price table the sidecar starts with offline.

Source: LiteLLM's `model_prices_and_context_window_backup.json` (MIT licence), the most widely
maintained public price map, shipped inside the `litellm` wheel. This script keeps the chat,
completion and embedding models of the providers OpenRouter resells and writes them under
OpenRouter's model ids (`openai/gpt-4o`, `anthropic/claude-sonnet-4.5`, `google/gemini-2.5-pro`),
plus OpenAI's bare ids for direct OpenAI upstreams, in the shape of OpenRouter's GET /models
(`pricing` as strings of USD per token; a >200k-token tier as an override with
`min_prompt_tokens`), so one parser reads both.

    pip download litellm --no-deps -d /tmp/ll && unzip -o /tmp/ll/litellm-*.whl \\
        'litellm/model_prices_and_context_window_backup.json' -d /tmp/ll
    python scripts/bundled_prices.py /tmp/ll/litellm/model_prices_and_context_window_backup.json \\
        --version 1.109.1 --date 2026-11-22
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "sidecar" / "spend" / "bundled_prices.json"
# LiteLLM provider -> OpenRouter's author prefix
PREFIXES = {"openai": "openai/", "anthropic": "anthropic/", "gemini": "google/",
            "xai": "x-ai/", "deepseek": "deepseek/", "mistral": "mistralai/"}
MODES = {"chat", "completion", "embedding", "responses"}
FIELDS = {"prompt": "input_cost_per_token", "completion": "output_cost_per_token",
          "input_cache_read": "cache_read_input_token_cost",
          "input_cache_write": "cache_creation_input_token_cost",
          "internal_reasoning": "output_cost_per_reasoning_token"}
_VERSION_DASH = re.compile(r"(?<=\d)-(?=\d(?!\d{3}))")  # claude-sonnet-4-5 -> 4.5, not dates


def price_text(value: float) -> str:
    return f"{value:.12f}".rstrip("0").rstrip(".") or "0"


def pricing(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ours, theirs in FIELDS.items():
        if isinstance(spec.get(theirs), (int, float)):
            out[ours] = price_text(spec[theirs])
    tier = {ours: price_text(spec[f"{theirs}_above_200k_tokens"]) for ours, theirs in
            FIELDS.items() if isinstance(spec.get(f"{theirs}_above_200k_tokens"), (int, float))}
    if tier:
        out["overrides"] = [{"min_prompt_tokens": 200_000, **tier}]
    return out


def ids(provider: str, name: str) -> list[str]:
    base = name.split("/", 1)[1] if "/" in name else name
    out = [PREFIXES[provider] + base]
    if provider == "anthropic":
        out.append(PREFIXES[provider] + _VERSION_DASH.sub(".", base))
    if provider == "openai":
        out.append(base)
    return list(dict.fromkeys(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--version", required=True, help="the litellm version it came from")
    parser.add_argument("--date", required=True, help="the day it was retrieved (YYYY-MM-DD)")
    args = parser.parse_args()
    source = json.loads(args.source.read_text())
    data: dict[str, dict[str, Any]] = {}
    for name, spec in source.items():
        if not isinstance(spec, dict) or spec.get("mode") not in MODES:
            continue
        provider = spec.get("litellm_provider")
        if provider not in PREFIXES or name.startswith("ft:") or "input_cost_per_token" not in spec:
            continue
        entry: dict[str, Any] = {"pricing": pricing(spec)}
        if isinstance(spec.get("max_input_tokens"), int):
            entry["context_length"] = spec["max_input_tokens"]
        for model_id in ids(provider, name):
            data.setdefault(model_id, {"id": model_id, **entry})
    table = {"source": f"LiteLLM {args.version} model_prices_and_context_window_backup.json "
                       "(MIT), https://github.com/BerriAI/litellm",
             "retrieved": args.date,
             "data": sorted(data.values(), key=lambda e: e["id"])}
    compact = {"separators": (",", ":")}
    head = json.dumps({k: v for k, v in table.items() if k != "data"}, **compact)[:-1]
    rows = ",\n".join(json.dumps(entry, **compact) for entry in table["data"])
    OUT.write_text(f'{head},"data":[\n{rows}\n]}}\n')  # one model a line: readable diffs
    print(f"{OUT}: {len(data)} models")


if __name__ == "__main__":
    main()
