"""GET /v1/models across several providers: merged, deduplicated, each entry naming its
provider, with configured prices."""

from __future__ import annotations

import aiohttp
import openai

from tests.conftest import StartSidecar, free_port
from tests.e2e.routing_helpers import MakeUpstreams, provider
from tests.fakes.upstream import Script


def listing(*ids: str, price: str | None = None) -> Script:
    entries = [{"id": i, "object": "model", "created": 1, "owned_by": "x"} for i in ids]
    if price is not None:
        for entry in entries:
            entry["pricing"] = {"prompt": price, "completion": price}
    return Script(json={"object": "list", "data": entries})


async def test_models_are_merged_across_providers(start_sidecar: StartSidecar,
                                                  upstreams: MakeUpstreams) -> None:
    """Each provider's list is filtered by its globs, bare names of a strip_prefix provider get
    their prefix back, duplicates keep the first provider, configured prices win."""
    direct, broad = await upstreams(2)
    direct.script("/models", listing("claude-x", "claude-y"))
    broad.script("/models", listing("anthropic/claude-x", "openai/gpt-4o", price="0.5"))
    sidecar = await start_sidecar({"providers": [
        provider("anthropic", direct, "anthropic/*", strip_prefix=True,
                 prices={"anthropic/claude-x": {"prompt": 0.000003, "completion": 0.000015}}),
        provider("openrouter", broad, "*", api_key="sk-broad")]})
    async with openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-c", max_retries=0) as sdk:
        page = await sdk.models.list()
    by_id = {m.id: m.model_dump() for m in page.data}
    assert list(by_id) == ["anthropic/claude-x", "anthropic/claude-y", "openai/gpt-4o"]
    claude = by_id["anthropic/claude-x"]
    assert (claude["provider"], claude["providers"]) == ("anthropic", ["anthropic",
                                                                       "openrouter"])
    assert claude["pricing"]["prompt"] == "3e-06" and claude["pricing"]["completion"] == "1.5e-05"
    assert by_id["openai/gpt-4o"]["provider"] == "openrouter"
    assert by_id["openai/gpt-4o"]["pricing"] == {"prompt": "0.5", "completion": "0.5"}
    assert direct.last.headers["Authorization"] == "Bearer sk-c"  # no key: the client's passes
    assert broad.last.headers["Authorization"] == "Bearer sk-broad"


async def test_a_failing_provider_is_named_and_left_out(start_sidecar: StartSidecar,
                                                        upstreams: MakeUpstreams) -> None:
    """One provider failing its list leaves the others' entries and an `errors` row; all
    failing is 502 upstream_unavailable."""
    (good,) = await upstreams(1)
    good.script("/models", listing("m1"))
    sidecar = await start_sidecar({"providers": [
        {"name": "down", "base_url": f"http://127.0.0.1:{free_port()}"},
        provider("good", good)]})
    async with aiohttp.ClientSession() as http:
        async with http.get(sidecar.v1 + "/models") as response:
            body = await response.json()
        assert [m["id"] for m in body["data"]] == ["m1"]
        assert body["errors"][0]["provider"] == "down"
        assert "Cannot connect" in body["errors"][0]["error"]
        good.script("/models", Script(status=500, json={}))
        async with http.get(sidecar.v1 + "/models") as response:
            assert response.status == 502
            assert (await response.json())["error"]["code"] == "upstream_unavailable"


async def test_a_models_request_with_a_body_is_answered_at_once(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams) -> None:
    """A GET /v1/models that carries a body (some clients send `{}`) is answered from every
    provider: the sidecar's own requests for their lists carry no body and do not claim one,
    so no provider waits for bytes that never come (here until the read timeout)."""
    a, b = await upstreams(2)
    a.script("/models", listing("a/m"))
    b.script("/models", listing("b/m"))
    sidecar = await start_sidecar({"upstream": {"read_timeout_s": 2}, "providers": [
        provider("a", a, "a/*"), provider("b", b, "b/*")]})
    async with aiohttp.ClientSession() as http, http.get(
            sidecar.v1 + "/models", data=b"{}",
            headers={"Content-Type": "application/json"}) as response:
        body = await response.json()
    assert response.status == 200
    assert "errors" not in body, body["errors"]
    assert [m["id"] for m in body["data"]] == ["a/m", "b/m"]
    assert [r.headers.get("Content-Length", "0") for r in (a.last, b.last)] == ["0", "0"]
