"""Spend on the passthrough paths (issue 18): a path the sidecar cannot price is a decision
(`spend.unpriced_paths`: block, record, allow), free paths pass, and a batch is bounded by its
input file at submission and charged that bound; all through the real sidecar to a recording
fake upstream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import RunningSidecar, StartSidecar
from tests.fakes.spend import MODEL, flush, rows
from tests.fakes.upstream import FakeUpstream, Script

PROMPT_NANO, COMPLETION_NANO = 1_000, 2_000


def config(limit_usd: float | None, **spend: Any) -> dict[str, Any]:
    budgets = [] if limit_usd is None else [{"name": "cap", "limit_usd": limit_usd}]
    return {"cache": {"backend": "off"}, "spend": {
        "prices": {MODEL: {"prompt": PROMPT_NANO / 1e9, "completion": COMPLETION_NANO / 1e9}},
        "budgets": budgets, **spend}}


async def call(sidecar: RunningSidecar, method: str, path: str, body: Any = None
               ) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, sidecar.v1 + path, json=body) as response:
        data = await response.read()
        return response.status, orjson.loads(data) if data else None


async def test_an_unpriced_path_under_a_blocking_budget_is_refused(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """POST /v1/fine_tuning/jobs (money the sidecar cannot price) under a blocking budget: 403
    unpriced_path naming the path and the setting that allows it; nothing is sent."""
    sidecar = await start_sidecar(config(100.0))
    status, body = await call(sidecar, "POST", "/fine_tuning/jobs", {"model": "gpt-4o-mini"})
    assert status == 403
    error = body["error"]
    assert error["code"] == "unpriced_path"
    assert error["metadata"] == {"path": "/v1/fine_tuning/jobs",
                                 "setting": "spend.unpriced_paths"}
    assert "spend.unpriced_paths" in error["message"] and "/v1/fine_tuning/jobs" in error[
        "message"]
    assert upstream.requests == []


@pytest.mark.parametrize(("mode", "limit", "recorded"), [
    ("record", 100.0, True), ("allow", 100.0, False), ("block", None, True)],
    ids=["record", "allow", "block_without_a_blocking_budget"])
async def test_unpriced_paths_record_or_allow(start_sidecar: StartSidecar,
                                              upstream: FakeUpstream, tmp_path: Path,
                                              mode: str, limit: float | None,
                                              recorded: bool) -> None:
    """record serves the path and writes a ledger row at cost 0 naming it; allow serves it
    with no row; block without a blocking budget records it."""
    sidecar = await start_sidecar(config(limit, unpriced_paths=mode))
    status, _ = await call(sidecar, "POST", "/fine_tuning/jobs", {"model": "gpt-4o-mini"})
    assert status == 200 and len(upstream.requests) == 1
    await flush(sidecar)
    found = [(r["endpoint"], r["cost_nusd"]) for r in rows(tmp_path / "ledger.db")]
    assert found == ([("fine_tuning/jobs", 0)] if recorded else [])


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/files"), ("POST", "/files"), ("DELETE", "/files/file-1"),
    ("POST", "/batches/batch_1/cancel"), ("POST", "/vector_stores")],
    ids=["list", "upload", "delete", "cancel", "operator_free"])
async def test_free_paths_pass_a_tiny_budget(start_sidecar: StartSidecar,
                                             upstream: FakeUpstream, method: str,
                                             path: str) -> None:
    """Reads, deletions, uploads, cancels and the operator's spend.free_paths are never
    refused by a budget."""
    sidecar = await start_sidecar(config(0.000001, free_paths=["/vector_stores"]))
    status, _ = await call(sidecar, method, path, None if method in ("GET", "DELETE") else {})
    assert status == 200 and len(upstream.requests) == 1


LINES = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
          "body": {"model": MODEL, "max_tokens": 100,
                   "messages": [{"role": "user", "content": "Summarise this."}]}}
         for i in range(3)]


def batch_file(lines: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(line) for line in lines) + b"\n"


def line_bound(line: dict[str, Any]) -> int:
    """What the sidecar holds for one line sent alone: its text ("user", "Summarise this."),
    8 tokens for the message and 16 for the request, and its max_tokens."""
    text = sum(len(m["role"]) + len(m["content"]) + 8 for m in line["body"]["messages"])
    return (text + 16) * PROMPT_NANO + 100 * COMPLETION_NANO


async def test_a_batch_is_charged_its_bound_at_submission(
        start_sidecar: StartSidecar, upstream: FakeUpstream, tmp_path: Path) -> None:
    """POST /v1/batches: the sidecar reads the input file from the upstream, bounds each request
    as if sent alone, holds half of it (the Batch API's price) and, once the upstream accepts,
    charges it: one ledger row for the batch, estimated; the body reaches the upstream as
    sent."""
    upstream.script("/files/file-1/content", Script(body=batch_file(LINES)))
    sidecar = await start_sidecar(config(100.0))
    request = {"input_file_id": "file-1", "endpoint": "/v1/chat/completions",
               "completion_window": "24h"}
    status, _ = await call(sidecar, "POST", "/batches", request)
    assert status == 200
    assert [(r.method, r.path) for r in upstream.requests] == [
        ("GET", "/files/file-1/content"), ("POST", "/batches")]
    assert orjson.loads(upstream.requests[1].body) == request
    await flush(sidecar)
    [row] = rows(tmp_path / "ledger.db")
    bound = (sum(line_bound(line) for line in LINES) + 1) // 2
    assert (row["endpoint"], row["cost_nusd"], bool(row["estimated"])) == (
        "batches", bound, True)


async def test_a_batch_over_the_budget_is_refused_before_it_is_submitted(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """A batch whose bound does not fit the budget gets 402 and is never submitted."""
    upstream.script("/files/file-1/content", Script(body=batch_file(LINES)))
    sidecar = await start_sidecar(config(line_bound(LINES[0]) / 1e9))
    status, body = await call(sidecar, "POST", "/batches", {"input_file_id": "file-1"})
    assert status == 402 and body["error"]["code"] == "budget_exceeded"
    assert [r.path for r in upstream.requests] == ["/files/file-1/content"]


async def test_a_batch_past_a_warning_budget_is_submitted_and_says_so(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """`action: warn`: the batch goes upstream, and the answer names the budget it passed in
    x-sidecar-budget-warning, as a chat's does (Spend.hold)."""
    upstream.script("/files/file-1/content", Script(body=batch_file(LINES)))
    sidecar = await start_sidecar({**config(None), "spend": {
        **config(None)["spend"],
        "budgets": [{"name": "soft", "limit_usd": 0.000001, "action": "warn"}]}})
    async with aiohttp.ClientSession() as session, session.post(
            sidecar.v1 + "/batches", json={"input_file_id": "file-1"}) as response:
        assert response.status == 200
        assert response.headers.get("x-sidecar-budget-warning") == "soft"
    assert [r.path for r in upstream.requests] == ["/files/file-1/content", "/batches"]


async def test_a_batch_with_an_unpriced_model_is_refused(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """A line for a model with no price, under a blocking budget: 403 unpriced_path."""
    lines = [*LINES, {**LINES[0], "body": {**LINES[0]["body"], "model": "acme/unknown"}}]
    upstream.script("/files/file-1/content", Script(body=batch_file(lines)))
    sidecar = await start_sidecar(config(100.0))
    status, body = await call(sidecar, "POST", "/batches", {"input_file_id": "file-1"})
    assert status == 403 and "acme/unknown" in body["error"]["message"]
    assert [r.path for r in upstream.requests] == ["/files/file-1/content"]


@pytest.mark.parametrize("limit", [None, 100.0], ids=["no_budget", "blocking_budget"])
async def test_a_batch_it_cannot_bound_is_the_upstreams_to_judge_without_a_budget(
        start_sidecar: StartSidecar, upstream: FakeUpstream, tmp_path: Path,
        limit: float | None) -> None:
    """An input file the sidecar cannot parse: with no blocking budget the batch goes to the
    upstream as sent (recorded at cost 0); under a blocking budget it is a 400 that says why,
    and nothing is submitted."""
    upstream.script("/files/file-1/content", Script(body=b"not a batch line\n"))
    sidecar = await start_sidecar(config(limit))
    status, _ = await call(sidecar, "POST", "/batches", {"input_file_id": "file-1"})
    paths = [r.path for r in upstream.requests]
    if limit is None:
        assert status == 200 and paths == ["/files/file-1/content", "/batches"]
        await flush(sidecar)
        [row] = rows(tmp_path / "ledger.db")
        assert (row["endpoint"], row["cost_nusd"]) == ("batches", 0)
    else:
        assert status == 400 and paths == ["/files/file-1/content"]


async def test_the_organization_admin_api_is_free(start_sidecar: StartSidecar,
                                                  upstream: FakeUpstream) -> None:
    """A write to the organization admin API (a project, a key) runs no model: it is free,
    served under a blocking budget without a ledger row."""
    sidecar = await start_sidecar(config(100.0))
    status, _ = await call(sidecar, "POST", "/organization/projects", {"name": "p"})
    assert status == 200 and [r.path for r in upstream.requests] == ["/organization/projects"]
