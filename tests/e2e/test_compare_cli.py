"""`llm-sidecar compare` and `llm-sidecar shadow` as subprocesses, against a real `llm-sidecar
serve --upstream demo` (the demo answers `Echo: <prompt>` with realistic usage and prices, and
`demo/error-429` with a 429)."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import orjson

from tests.e2e.test_cli import BIN, Serve, config_file, run, serve  # noqa: F401  (the fixture)

RULE = """shadow:
  - name: try-haiku
    match: {model: "openai/gpt-4o*"}
    candidate: anthropic/claude-3-5-haiku
    percent: 100
    budget_usd: 1.0
"""


async def test_compare_prints_the_answers_side_by_side(serve: Serve) -> None:  # noqa: F811
    """The table shows each model with its answer, tokens, cost and status (a failing model
    says so), and the summary line; --json prints POST /sidecar/compare's answer."""
    served = await serve("--upstream", "demo")
    env = {"SIDECAR_URL": served.url, "OPENAI_API_KEY": ""}
    code, out, err = await run(BIN, "compare", "-m", "openai/gpt-4o-mini", "-m",
                               "demo/error-429", "Tell me about [bold]tides[/bold]", env=env)
    assert (code, err) == (0, "")
    assert "openai/gpt-4o-mini" in out and "demo/error-429" in out
    assert "Echo: Tell me about [bold]tides[/bold]" in out  # not read as markup
    assert "429" in out and "error: demo upstream" in out
    assert "cheapest openai/gpt-4o-mini" in out and "1 failed" in out

    code, out, _ = await run(BIN, "compare", "-m", "openai/gpt-4o-mini", "-m",
                             "anthropic/claude-3-5-haiku", "--json", "--max-tokens", "5", "hi",
                             env=env)
    assert code == 0
    answer = json.loads(out)
    assert [r["model"] for r in answer["results"]] == ["openai/gpt-4o-mini",
                                                       "anthropic/claude-3-5-haiku"]
    assert all(r["content"] == "Echo: hi" and r["cost_usd"] > 0 for r in answer["results"])
    assert answer["summary"]["succeeded"] == 2


async def test_compare_from_a_file_and_its_failures(serve: Serve,  # noqa: F811
                                                    tmp_path: Path) -> None:
    """--file sends that request body to each model; a sidecar that refuses (a local key is
    required) or cannot be reached exits 1 saying why; no prompt and no file exits 2."""
    served = await serve("--upstream", "demo")
    body = tmp_path / "body.json"
    body.write_bytes(orjson.dumps({"messages": [{"role": "user", "content": "from a file"}]}))
    code, out, _ = await run(BIN, "compare", "--url", served.url, "-m", "openai/gpt-4o",
                             "--file", str(body), "--json")
    assert code == 0 and json.loads(out)["results"][0]["content"] == "Echo: from a file"

    path = config_file(tmp_path, "auth: {required: true, keys: [{name: a, token: tok-a}]}\n")
    guarded = await serve("--upstream", "demo", "--config", str(path))
    code, _, err = await run(BIN, "compare", "--url", guarded.url, "-m", "m", "hi",
                             env={"OPENAI_API_KEY": ""})
    assert code == 1 and "answered 401" in err
    code, out, _ = await run(BIN, "compare", "--url", guarded.url, "-m", "m", "--key",
                             "tok-a", "--json", "hi")
    assert code == 0 and json.loads(out)["results"][0]["status"] == 200
    code, _, err = await run(BIN, "compare", "--url", "http://127.0.0.1:9", "-m", "m", "hi")
    assert code == 1 and "cannot reach" in err
    code, _, err = await run(BIN, "compare", "--url", served.url, "-m", "m")
    assert code == 2 and "give a prompt" in err


async def test_shadow_prints_each_rules_figures(serve: Serve, tmp_path: Path) -> None:  # noqa: F811
    """After primaries that match a rule, `llm-sidecar shadow` shows its pairs, costs, the
    projected saving and agreement; --json is GET /sidecar/shadow's answer."""
    served = await serve("--upstream", "demo", "--config", str(config_file(tmp_path, RULE)))
    async with aiohttp.ClientSession() as http:
        for n in range(3):
            async with http.post(served.url + "/v1/chat/completions", json={
                    "model": "openai/gpt-4o",
                    "messages": [{"role": "user", "content": f"q{n}"}]}) as response:
                assert response.status == 200
    env = {"SIDECAR_URL": served.url}
    for _ in range(100):  # the copies run in the background: wait for the three pairs
        code, out, _ = await run(BIN, "shadow", "--json", env=env)
        (rule,) = json.loads(out)["rules"]
        if rule["pairs"] == 3:
            break
    assert code == 0 and rule["pairs"] == 3 and rule["candidate_model"] == (
        "anthropic/claude-3-5-haiku")
    code, out, _ = await run(BIN, "shadow", env=env)
    assert code == 0
    assert "try-haiku → anthropic/claude-3-5-haiku" in out
    assert "pairs" in out and "projected saving USD" in out and "exact match" in out
