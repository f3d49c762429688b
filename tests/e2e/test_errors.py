"""Every error the core raises (INTERFACE.md §3): status, OpenAI error shape, a message a
person can act on, and nothing echoed that should not be."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from sidecar.errors import UpstreamTimeout
from sidecar.upstream.client import transport_error
from tests.conftest import RunningSidecar, StartSidecar, free_port
from tests.fakes.profiles import ALL
from tests.fakes.upstream import FakeUpstream, Script

PROFILES = ALL  # each test runs in the module, defaults and everything profiles

LOCAL_KEYS = {"auth": {"required": True, "keys": [
    {"name": "team-a", "token": "tok-a-secret", "allowed_models": ["openai/*"]}]}}


async def error_of(response: aiohttp.ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert the OpenAI error shape and return the error object."""
    assert response.status == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["x-sidecar-request-id"]
    error: dict[str, Any] = orjson.loads(await response.read())["error"]
    assert set(error) >= {"message", "type", "code", "param"}
    assert error["code"] == code
    assert error["message"].endswith(".")
    return error


@pytest.mark.parametrize("body", [b"{", b"", b"not json", b'{"model": "m",}', b"\xff\xfe"])
async def test_invalid_json(sidecar: RunningSidecar, http: aiohttp.ClientSession,
                            body: bytes) -> None:
    """A body that is not JSON gets 400 invalid_json, without echoing the body."""
    async with http.post(sidecar.v1 + "/chat/completions", data=body) as response:
        error = await error_of(response, 400, "invalid_json")
    assert error["type"] == "invalid_request_error"
    assert "not json" not in error["message"]


@pytest.mark.parametrize(("body", "fragment"), [
    ({"messages": []}, "'model' is required"),
    ({"model": ""}, "'model' is required"),
    ({"model": 42}, "'model' is required"),
    ([{"model": "m"}], "must be a JSON object, not a JSON list"),
    ("m", "must be a JSON object, not a JSON str"),
])
async def test_invalid_request_shape(sidecar: RunningSidecar, http: aiohttp.ClientSession,
                                     upstream: FakeUpstream, body: object, fragment: str) -> None:
    """A JSON body without a model, or not an object, is 400 invalid_request; nothing goes up.
    (/v1/responses may leave `model` out, for a stored prompt: tests/e2e/test_conformance.py.)"""
    for endpoint in ("chat/completions", "completions", "embeddings", "responses"):
        if endpoint == "responses" and isinstance(body, dict) and "model" not in body:
            continue
        async with http.post(f"{sidecar.v1}/{endpoint}", json=body) as response:
            error = await error_of(response, 400, "invalid_request")
        assert fragment in error["message"]
    assert upstream.forwarded == []


async def test_missing_model_names_the_param(async_client: openai.AsyncOpenAI) -> None:
    """The SDK sees a BadRequestError whose param is "model"."""
    with pytest.raises(openai.BadRequestError) as caught:
        await async_client.chat.completions.create(model="", messages=[])
    assert caught.value.code == "invalid_request"
    assert caught.value.param == "model"


async def test_body_over_limit_by_content_length(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """A declared Content-Length over listen.max_body_bytes is refused with 413 at once."""
    sidecar = await start_sidecar({"listen": {"max_body_bytes": 1000}})
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 2000}]})
    async with http.post(sidecar.v1 + "/chat/completions", data=body) as response:
        error = await error_of(response, 413, "request_too_large")
    assert "1000 bytes" in error["message"]
    assert upstream.forwarded == []


async def test_chunked_body_over_limit(start_sidecar: StartSidecar, upstream: FakeUpstream,
                                       http: aiohttp.ClientSession) -> None:
    """A chunked body (no Content-Length) is cut off with 413 once it passes the limit."""
    sidecar = await start_sidecar({"listen": {"max_body_bytes": 1000}})

    async def body() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 500

    async with http.post(sidecar.v1 + "/chat/completions", data=body()) as response:
        await error_of(response, 413, "request_too_large")
    assert upstream.forwarded == []


async def test_compressed_body_over_limit_when_decoded(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """The limit applies to the decoded body, so a small gzip bomb is still refused with 413."""
    sidecar = await start_sidecar({"listen": {"max_body_bytes": 100_000}})
    bomb = gzip.compress(b'{"model":"m","pad":"' + b"a" * 10_000_000 + b'"}')
    assert len(bomb) < 100_000
    async with http.post(sidecar.v1 + "/chat/completions", data=bomb,
                         headers={"Content-Encoding": "gzip"}) as response:
        await error_of(response, 413, "request_too_large")
    assert upstream.forwarded == []


@pytest.mark.parametrize(("encoding", "body", "fragment"), [
    ("br", b"\x00", "Content-Encoding 'br' is not supported"),
    ("gzip", b"definitely not gzip", "not valid gzip data"),
])
async def test_bad_request_encoding(sidecar: RunningSidecar, http: aiohttp.ClientSession,
                                    encoding: str, body: bytes, fragment: str) -> None:
    """An unsupported or corrupt Content-Encoding on a model endpoint is 400 invalid_request."""
    async with http.post(sidecar.v1 + "/chat/completions", data=body,
                         headers={"Content-Encoding": encoding}) as response:
        error = await error_of(response, 400, "invalid_request")
    assert fragment in error["message"]


async def test_passthrough_is_not_bound_by_the_body_limit(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """File uploads on other paths stream through whatever their size."""
    sidecar = await start_sidecar({"listen": {"max_body_bytes": 1000}})
    async with http.post(sidecar.v1 + "/files", data=b"x" * 50_000) as response:
        assert orjson.loads(await response.read())["body_bytes"] == 50_000


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic dG9rLWEtc2VjcmV0"])
async def test_missing_or_unknown_local_key(start_sidecar: StartSidecar, upstream: FakeUpstream,
                                            http: aiohttp.ClientSession,
                                            authorization: str | None) -> None:
    """With auth.required, no token or an unknown one is 401 on model and passthrough paths."""
    sidecar = await start_sidecar(LOCAL_KEYS)
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in (("POST", "/chat/completions"), ("GET", "/models")):
        async with http.request(method, sidecar.v1 + path, json={"model": "openai/x"},
                                headers=headers) as response:
            error = await error_of(response, 401, "invalid_api_key")
        assert error["type"] == "authentication_error"
        assert "tok-a-secret" not in error["message"]
    assert upstream.forwarded == []


async def test_local_key_works_and_is_not_forwarded(
        start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """A valid local key is accepted; the upstream never sees it."""
    sidecar = await start_sidecar(LOCAL_KEYS)
    async with openai.AsyncOpenAI(base_url=sidecar.v1, api_key="tok-a-secret",
                                  max_retries=0) as client:
        await client.chat.completions.create(model="openai/gpt-4o", messages=[])
        with pytest.raises(openai.AuthenticationError):
            await client.with_options(api_key="nope").models.list()
    assert len(upstream.forwarded) == 1
    assert "Authorization" not in upstream.last.headers


async def test_model_not_allowed(start_sidecar: StartSidecar, upstream: FakeUpstream) -> None:
    """A model outside the key's allowed_models is 403 model_not_allowed."""
    sidecar = await start_sidecar(LOCAL_KEYS)
    async with openai.AsyncOpenAI(base_url=sidecar.v1, api_key="tok-a-secret",
                                  max_retries=0) as client:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client.chat.completions.create(model="anthropic/claude-3-5-haiku",
                                                 messages=[])
    assert caught.value.code == "model_not_allowed"
    assert "team-a" in caught.value.message and "openai/*" in caught.value.message
    assert upstream.forwarded == []


@pytest.mark.profiles("module", "defaults", reason="about the lone upstream: the everything "
                      "profile's live second provider answers the merged model list")
async def test_upstream_refusing_connections_is_502(start_sidecar: StartSidecar,
                                                    http: aiohttp.ClientSession) -> None:
    """An upstream nobody listens on gives 502 upstream_unavailable, on every path."""
    sidecar = await start_sidecar({"upstream": {"url": f"http://127.0.0.1:{free_port()}/v1"}})
    for method, path in (("POST", "/chat/completions"), ("GET", "/models")):
        async with http.request(method, sidecar.v1 + path, json={"model": "m"}) as response:
            error = await error_of(response, 502, "upstream_unavailable")
        assert "Cannot connect to upstream" in error["message"]


async def test_upstream_closing_before_headers_is_502(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """An upstream that drops the connection before answering gives 502."""
    upstream.script("/chat/completions", Script(close_before_headers=True))
    async with http.post(sidecar.v1 + "/chat/completions", json={"model": "m"}) as response:
        await error_of(response, 502, "upstream_unavailable")


async def test_upstream_too_slow_is_504(start_sidecar: StartSidecar, upstream: FakeUpstream,
                                        http: aiohttp.ClientSession) -> None:
    """An upstream that does not answer within read_timeout_s gives 504 upstream_timeout."""
    sidecar = await start_sidecar({"upstream": {"read_timeout_s": 0.2}})
    upstream.script("/chat/completions", Script(delay_s=2))
    upstream.script("/files", Script(delay_s=2))
    for method, path in (("POST", "/chat/completions"), ("GET", "/files")):
        async with http.request(method, sidecar.v1 + path, json={"model": "m"}) as response:
            error = await error_of(response, 504, "upstream_timeout")
        assert error["type"] == "upstream_error"


def test_connect_timeout_maps_to_504() -> None:
    """A connect timeout is reported as upstream_timeout naming the upstream."""
    error = transport_error(aiohttp.ConnectionTimeoutError(), "upstream (http://u)",
                            "sending the request")
    assert isinstance(error, UpstreamTimeout)
    assert error.message == "Timed out connecting to upstream upstream (http://u)."


async def test_unknown_route_is_404(sidecar: RunningSidecar, http: aiohttp.ClientSession) -> None:
    """Paths outside /v1 and the admin routes are an OpenAI-shaped 404 pointing at /v1."""
    async with http.post(sidecar.url + "/chat/completions", json={}) as response:
        error = await error_of(response, 404, "not_found")
    assert "/v1" in error["message"]


async def test_sidecar_keeps_serving_after_errors(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession,
        async_client: openai.AsyncOpenAI) -> None:
    """After malformed bodies and a broken upstream, the next request is served normally."""
    upstream.script("/chat/completions", Script(close_before_headers=True))
    for body in (b"{", b"[]", b'{"model":"m"}'):
        async with http.post(sidecar.v1 + "/chat/completions", data=body) as response:
            assert response.status in (400, 502)
    answer = await async_client.chat.completions.create(model="m", messages=[])
    assert answer.choices[0].message.content == "Hello from the fake upstream."


@pytest.mark.parametrize(("content_type", "body", "fragment"), [
    ("application/json", b'{"model": "whisper-1"}', "multipart/form-data"),
    ("multipart/form-data", b"--x\r\n\r\n--x--", "boundary"),
    ("multipart/form-data; boundary=x", b"not a form at all", "not a valid multipart form"),
    ("multipart/form-data; boundary=x",
     b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n\r\nab\r\n--x--\r\n',
     "'model' is required"),
], ids=["json", "no_boundary", "garbage", "no_model"])
async def test_a_bad_form_is_400(sidecar: RunningSidecar, http: aiohttp.ClientSession,
                                 upstream: FakeUpstream, content_type: str, body: bytes,
                                 fragment: str) -> None:
    """A transcription whose body is not a multipart form with a model is 400
    invalid_request saying why; nothing goes upstream."""
    async with http.post(sidecar.v1 + "/audio/transcriptions", data=body,
                         headers={"Content-Type": content_type}) as response:
        error = await error_of(response, 400, "invalid_request")
    assert fragment in error["message"]
    assert upstream.forwarded == []
