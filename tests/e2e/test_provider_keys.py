"""A provider's key list: the first key is used; when the upstream refuses it (401/403), the
next one serves the same request and every later one, and a metric says a stale key is listed."""

from __future__ import annotations

import aiohttp
import openai
import pytest

from tests.conftest import StartSidecar
from tests.e2e.routing_helpers import CHAT, MakeUpstreams, provider
from tests.fakes.upstream import FakeUpstream, Script


def keys_seen(fake: FakeUpstream) -> list[str]:
    return [r.headers.get("Authorization", "") for r in fake.requests]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_gives_way_to_the_next_and_stays_given(
        start_sidecar: StartSidecar, upstreams: MakeUpstreams, status: int) -> None:
    """The first key is refused: the same request is answered with the second; the next
    request goes with the second at once; llm_sidecar_provider_key_index says 1."""
    (fake,) = await upstreams(1)
    sidecar = await start_sidecar({
        "providers": [provider("p", fake, api_key=["sk-old", "sk-new"])],
        "cache": {"backend": "off"}})
    fake.script("/chat/completions", Script(status=status, json={"error": {"message": "no"}}))
    async with openai.AsyncOpenAI(base_url=sidecar.v1, api_key="client", max_retries=0) as sdk:
        raw = await sdk.chat.completions.with_raw_response.create(model="m", messages=CHAT)
        assert raw.http_response.status_code == 200 and raw.headers["x-sidecar-attempts"] == "2"
        await sdk.chat.completions.create(model="m", messages=CHAT)
    assert keys_seen(fake) == ["Bearer sk-old", "Bearer sk-new", "Bearer sk-new"]
    async with aiohttp.ClientSession() as http, http.get(sidecar.admin_url + "/metrics") as r:
        assert 'llm_sidecar_provider_key_index{provider="p"} 1.0' in await r.text()


async def test_the_one_upstream_rotates_too(start_sidecar: StartSidecar,
                                            upstream: FakeUpstream) -> None:
    """`upstream.api_key` as a list: refused twice, the client gets the second 401; refused once,
    the second key answers."""
    sidecar = await start_sidecar({"upstream": {"api_key": ["sk-1", "sk-2"]},
                                   "cache": {"backend": "off"}})
    refused = Script(status=401, json={"error": {"message": "bad key"}})
    upstream.script("/chat/completions", refused, refused)
    async with openai.AsyncOpenAI(base_url=sidecar.v1, api_key="client", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError):
            await sdk.chat.completions.create(model="m", messages=CHAT)
        assert keys_seen(upstream) == ["Bearer sk-1", "Bearer sk-2"]
        await sdk.chat.completions.create(model="m", messages=CHAT)
    assert keys_seen(upstream)[-1] == "Bearer sk-2"


async def test_a_passthrough_without_a_body_is_retried_with_the_next_key(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """GET /v1/files (nothing to replay) refused with the first key is sent again with the
    second, and the client sees the second's answer."""
    sidecar = await start_sidecar({"upstream": {"api_key": ["sk-1", "sk-2"]}})
    upstream.script("/files", Script(status=401, json={"error": {"message": "revoked"}}),
                    Script(json={"object": "list", "data": []}))
    async with aiohttp.ClientSession() as http, http.get(sidecar.v1 + "/files") as response:
        assert response.status == 200 and (await response.json())["object"] == "list"
    assert keys_seen(upstream) == ["Bearer sk-1", "Bearer sk-2"]
