"""`llm-sidecar auto explain`, run as the installed command: the tier and why from the config,
for a prompt or a request body, as a table or JSON, and its exit codes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from tests.fakes.auto import ASKS, TIERS

BIN = str(Path(sys.executable).with_name("llm-sidecar"))


async def explain(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SIDECAR_CONFIG"}
    proc = await asyncio.create_subprocess_exec(
        BIN, "auto", "explain", *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({"auto": {"routers": {
        "sidecar/auto": {"tiers": TIERS, "baseline": "test/big"},
        "sidecar/auto-cheap": {"tiers": TIERS, "prefer": "cheap"}}}}))
    return path


@pytest.mark.parametrize("tier", list(TIERS))
async def test_explain_a_body_as_json(config: Path, tmp_path: Path, tier: str) -> None:
    """--file with each tier's request body prints the tier, its models, why, and the
    features, without calling anything."""
    body = tmp_path / "body.json"
    body.write_bytes(orjson.dumps({"model": "sidecar/auto", **ASKS[tier]}))
    code, out, err = await explain("--file", str(body), "--config", str(config), "--json")
    assert code == 0, err
    answer: dict[str, Any] = orjson.loads(out)
    assert (answer["router"], answer["tier"], answer["models"]) == (
        "sidecar/auto", tier, TIERS[tier])
    assert answer["reasons"] and answer["baseline"] == "test/big"
    assert answer["features"]["messages"] >= 1


async def test_explain_a_prompt_as_a_table_and_pick_a_router(config: Path) -> None:
    """A prompt is one user message; --router picks a router (cheap serves lower tiers);
    the table names the tier, the models and why."""
    code, out, _ = await explain("Describe the weather in Oslo and write a poem about it.",
                                 "--config", str(config))
    assert code == 0
    assert out.startswith("medium") and "test/mid" in out and "why:" in out
    code, out, _ = await explain("Describe the weather in Oslo and write a poem about it.",
                                 "--config", str(config), "--router", "sidecar/auto-cheap")
    assert code == 0 and out.startswith("simple")


async def test_explain_without_a_router_prints_the_tier_alone() -> None:
    """With no router configured, the tier at the chosen prefer, no models."""
    code, out, _ = await explain("--json", "--prefer", "quality", "Weather in Oslo today?")
    answer = orjson.loads(out)
    assert code == 0 and (answer["router"], answer["models"], answer["prefer"]) == (
        None, [], "quality")


async def test_explain_reads_stdin_and_other_endpoints(config: Path) -> None:
    """`--file -` reads the body from stdin; --endpoint reads it in that endpoint's shape."""
    body = orjson.dumps({"input": "Prove that sqrt(2) is irrational.",
                         "reasoning": {"effort": "high"}})
    code, out, _ = await explain("--file", "-", "--endpoint", "responses", "--json",
                                 "--config", str(config), stdin=body)
    assert code == 0 and orjson.loads(out)["tier"] == "reasoning"


@pytest.mark.parametrize(("args", "code", "says"), [
    ((), 1, "give a prompt or --file"),
    (("hi", "--file", "x.json"), 1, "give a prompt or --file"),
    (("--file", "/nonexistent/body.json"), 1, "cannot read"),
    (("--file", "-"), 1, "is not JSON"),
    (("hi", "--router", "nope"), 2, "no router named 'nope'"),
], ids=["nothing", "both", "missing_file", "not_json", "unknown_router"])
async def test_explain_errors(config: Path, args: tuple[str, ...], code: int,
                              says: str) -> None:
    """A request it cannot read exits 1, an unknown router 2, each with one line saying why."""
    found, _, err = await explain(*args, "--config", str(config), stdin=b"{nope")
    assert (found, says in err) == (code, True), err
