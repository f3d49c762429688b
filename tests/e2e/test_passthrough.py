"""Forwarding fidelity: paths, methods, headers, encodings, and bodies streamed both ways."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest
import yarl

from tests.conftest import RunningSidecar, StartSidecar, free_port
from tests.fakes.upstream import FakeUpstream, Script

MB = 1024 * 1024


async def test_raw_path_and_query_are_preserved(sidecar: RunningSidecar, upstream: FakeUpstream,
                                                http: aiohttp.ClientSession) -> None:
    """/v1/X?q reaches {base_url}/X?q with percent-encoding and query order intact."""
    url = sidecar.v1 + "/files/a%2Fb%20c?purpose=fine-tune&z=1&a=%26"
    async with http.get(yarl.URL(url, encoded=True)) as response:
        assert response.status == 200
    assert upstream.last.path == "/files/a%2Fb%20c?purpose=fine-tune&z=1&a=%26"


async def test_base_url_path_prefix_is_kept(start_sidecar: StartSidecar, upstream: FakeUpstream,
                                            http: aiohttp.ClientSession) -> None:
    """An upstream URL with a path prefix (like /api/v1) gets the request path appended."""
    sidecar = await start_sidecar({"upstream": {"url": upstream.url + "/api/v1"}})
    async with http.get(sidecar.v1 + "/models") as response:
        assert response.status == 200
    assert upstream.last.path == "/api/v1/models"


async def test_every_method_passes_through(sidecar: RunningSidecar, upstream: FakeUpstream,
                                           http: aiohttp.ClientSession) -> None:
    """GET, POST, PUT, PATCH, DELETE and HEAD on non-pipeline paths reach the upstream as sent."""
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
        async with http.request(method, sidecar.v1 + "/things/1", data=b"xyz"
                                if method in ("POST", "PUT", "PATCH") else None) as response:
            assert response.status == 200, method
            await response.read()
        assert upstream.last.method == method
    assert upstream.requests[1].body == b"xyz"


async def test_upstream_status_headers_and_body_relayed_as_is(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """Upstream errors pass through with their own status, headers and exact body."""
    upstream.script("/chat/completions", Script(
        status=400, body=b'{"error":{"message":"bad temperature","code":400}}',
        headers={"X-Generation-Id": "gen-1"}))
    upstream.script("/batches", Script(status=503, body=b"try later",
                                       headers={"Content-Type": "text/plain"}))
    async with http.post(sidecar.v1 + "/chat/completions", json={"model": "m"}) as response:
        assert response.status == 400
        assert response.headers["X-Generation-Id"] == "gen-1"
        assert await response.read() == b'{"error":{"message":"bad temperature","code":400}}'
    async with http.get(sidecar.v1 + "/batches") as response:
        assert response.status == 503
        assert response.headers["Content-Type"] == "text/plain"
        assert await response.read() == b"try later"


async def test_hop_by_hop_headers_removed_both_ways(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """Hop-by-hop headers go neither up nor down; end-to-end headers go both ways."""
    upstream.script("/files", Script(json={}, headers={
        "Connection": "X-Up-Hop", "X-Up-Hop": "1", "Keep-Alive": "timeout=9",
        "Proxy-Authenticate": "Basic", "X-End-To-End": "kept"}))
    headers = {"Connection": "keep-alive, X-Private-Hop", "X-Private-Hop": "1",
               "Keep-Alive": "timeout=5", "TE": "trailers", "Proxy-Authorization": "Basic eA==",
               "X-Custom": "kept", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-"
                                                  "b7ad6b7169203331-01"}
    async with http.get(sidecar.v1 + "/files", headers=headers) as response:
        for name in ("X-Up-Hop", "Keep-Alive", "Proxy-Authenticate"):
            assert name not in response.headers, name
        assert response.headers["X-End-To-End"] == "kept"
    seen = upstream.last.headers
    for name in ("X-Private-Hop", "Keep-Alive", "TE", "Proxy-Authorization"):
        assert name not in seen, name
    assert seen["X-Custom"] == "kept"
    assert seen["traceparent"] == headers["traceparent"]
    assert seen["Host"] == upstream.url.removeprefix("http://")


async def test_client_authorization_passes_through_without_a_key(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """No upstream.api_key: the client's Authorization reaches the upstream unchanged."""
    await http.post(sidecar.v1 + "/chat/completions", json={"model": "m"},
                    headers={"Authorization": "Bearer sk-client-own"})
    assert upstream.last.headers["Authorization"] == "Bearer sk-client-own"


async def test_configured_key_and_headers_replace_the_clients(
        start_sidecar: StartSidecar, upstream: FakeUpstream,
        http: aiohttp.ClientSession) -> None:
    """upstream.api_key replaces the client's; configured headers added; x-sidecar-* kept local."""
    sidecar = await start_sidecar({"upstream": {
        "api_key": "sk-or-real", "headers": {"HTTP-Referer": "https://app.example",
                                             "X-Title": "My App"}}})
    for method, path in (("POST", "/chat/completions"), ("GET", "/models")):
        await http.request(method, sidecar.v1 + path, json={"model": "m"}, headers={
            "Authorization": "Bearer anything", "x-sidecar-user": "u-1",
            "x-sidecar-tags": "a,b"})
        seen = upstream.last.headers
        assert seen.getall("Authorization") == ["Bearer sk-or-real"]
        assert seen["HTTP-Referer"] == "https://app.example"
        assert seen["X-Title"] == "My App"
        assert not [h for h in seen if h.lower().startswith("x-sidecar-")]


async def test_request_id_on_every_response(start_sidecar: StartSidecar, upstream: FakeUpstream,
                                            http: aiohttp.ClientSession) -> None:
    """Every route of both listeners answers with a distinct x-sidecar-request-id."""
    # Routes are enumerated from the apps, so a route added later without the id fails here.
    sidecar = await start_sidecar({"admin": {"port": free_port(), "token": "t"}})
    upstream.script("/models", Script(status=500, json={}))
    ids = []
    assert sidecar.admin_app is not None
    for base, app in ((sidecar.url, sidecar.app), (sidecar.admin_url, sidecar.admin_app)):
        paths = {route.resource.canonical for route in app.router.routes()
                 if route.resource is not None}
        for path in sorted(paths):
            concrete = path.replace("{tail}", "anything/else")
            for body in (b'{"model":"m"}', b"{"):
                async with http.post(base + concrete, data=body) as response:
                    ids.append(response.headers["x-sidecar-request-id"])
                async with http.get(base + concrete) as response:
                    ids.append(response.headers["x-sidecar-request-id"])
    assert len(ids) > 40
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 for i in ids)


async def test_upload_is_streamed_not_buffered(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """A large upload reaches the upstream while the client is still sending it."""
    # The client holds back everything after its first chunk until the upstream has seen bytes:
    # a sidecar that buffered the body would never forward them, and the wait would time out.
    chunk = b"x" * MB

    async def body() -> AsyncIterator[bytes]:
        yield chunk
        await asyncio.wait_for(upstream.first_body_bytes.wait(), timeout=10)
        for _ in range(63):
            yield chunk

    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(64 * MB)}
    async with http.post(sidecar.v1 + "/files", data=body(), headers=headers) as response:
        assert response.status == 200
        assert orjson.loads(await response.read())["body_bytes"] == 64 * MB
    assert upstream.last.headers["Content-Length"] == str(64 * MB)
    assert not upstream.last.chunked


async def test_chunked_upload_stays_chunked(sidecar: RunningSidecar, upstream: FakeUpstream,
                                            http: aiohttp.ClientSession) -> None:
    """A body sent without Content-Length is forwarded chunked, all of it."""
    async def body() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 1000

    async with http.put(sidecar.v1 + "/uploads/1/parts", data=body()) as response:
        assert orjson.loads(await response.read())["body_bytes"] == 5000
    assert upstream.last.chunked


async def test_download_is_streamed_not_buffered(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """A passthrough response reaches the client before the upstream has finished sending."""
    # The upstream sends its first part, then waits until the client has read it.
    client_got_first = asyncio.Event()
    upstream.script("/files/f1/content", Script(
        sse=[b"part-1;", b"part-2;"], done=False, wait_before={1: client_got_first},
        headers={"Content-Type": "application/octet-stream"}))
    async with http.get(sidecar.v1 + "/files/f1/content") as response:
        first = await asyncio.wait_for(response.content.readexactly(7), timeout=10)
        assert first == b"part-1;"
        client_got_first.set()
        assert await response.read() == b"part-2;"


async def test_compressed_response_passes_through_untouched(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """On passthrough paths a gzip body and its Content-Encoding reach the client unchanged."""
    packed = gzip.compress(orjson.dumps({"data": ["x" * 100] * 50}))
    upstream.script("/files", Script(body=packed, headers={"Content-Encoding": "gzip"}))
    async with http.get(sidecar.v1 + "/files", headers={"Accept-Encoding": "gzip"}) as response:
        assert await response.read() == packed
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Length"] == str(len(packed))
    assert upstream.last.headers["Accept-Encoding"] == "gzip"


async def test_passthrough_adds_no_accept_encoding(sidecar: RunningSidecar,
                                                   upstream: FakeUpstream,
                                                   http: aiohttp.ClientSession) -> None:
    """A client that asked for no encoding is not sent one it did not ask for."""
    await http.get(sidecar.v1 + "/files", skip_auto_headers=["Accept-Encoding"])
    assert "Accept-Encoding" not in upstream.last.headers


async def test_compressed_request_body_passes_through_untouched(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """A gzip request body on a passthrough path reaches the upstream still compressed."""
    packed = gzip.compress(b"hello upload" * 100)
    await http.post(sidecar.v1 + "/files", data=packed, headers={"Content-Encoding": "gzip"})
    assert upstream.last.body == packed
    assert upstream.last.headers["Content-Encoding"] == "gzip"


async def test_model_endpoint_decodes_gzip_both_ways(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """Model endpoints decode once: plain JSON goes up, a gzip answer comes back decoded."""
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "z" * 500}]})
    answer = orjson.dumps({"id": "x", "choices": []})
    upstream.script("/chat/completions", Script(body=answer, gzip=True))
    async with http.post(sidecar.v1 + "/chat/completions", data=gzip.compress(body), headers={
            "Content-Encoding": "gzip", "Content-Type": "application/json",
            "Accept-Encoding": "gzip"}) as response:
        assert response.status == 200
        assert "Content-Encoding" not in response.headers
        assert await response.read() == answer
        assert response.headers["Content-Length"] == str(len(answer))
    assert upstream.last.body == body
    assert "Content-Encoding" not in upstream.last.headers


async def test_provider_and_attempts_headers(sidecar: RunningSidecar,
                                             http: aiohttp.ClientSession) -> None:
    """Answers from the upstream say which provider served them and in how many attempts."""
    for method, path in (("POST", "/chat/completions"), ("GET", "/models")):
        async with http.request(method, sidecar.v1 + path, json={"model": "m"}) as response:
            assert response.headers["x-sidecar-provider"] == "upstream"
            assert response.headers["x-sidecar-attempts"] == "1"


async def test_download_broken_midway_is_not_passed_off_as_complete(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """A passthrough body cut by the upstream shows as an error, never as a complete body."""
    upstream.script("/files/f2/content", Script(
        sse=[b"part-1;", b"part-2;"], drop_after=1,
        headers={"Content-Type": "application/octet-stream"}))
    async with http.get(sidecar.v1 + "/files/f2/content") as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(response.read(), timeout=10)


async def test_model_answer_broken_midway_is_502(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """A non-streamed answer cut off mid-body becomes a 502, not half a JSON document."""
    upstream.script("/chat/completions", Script(
        sse=[b'{"id": "x", "choi', b'ces": []}'], drop_after=1,
        headers={"Content-Type": "application/json"}))
    async with http.post(sidecar.v1 + "/chat/completions", json={"model": "m"}) as response:
        assert response.status == 502
        error = orjson.loads(await response.read())["error"]
    assert error["code"] == "upstream_unavailable"
    assert "while sending the response body" in error["message"]


async def test_upstream_connections_are_kept_alive_and_reused(
        sidecar: RunningSidecar, upstream: FakeUpstream, http: aiohttp.ClientSession) -> None:
    """Sequential requests from different clients share one pooled upstream connection."""
    for _ in range(3):
        async with aiohttp.ClientSession() as fresh_client:  # a new client connection each time
            await fresh_client.post(sidecar.v1 + "/chat/completions", json={"model": "m"})
        await http.get(sidecar.v1 + "/models")
    assert len({r.peer_port for r in upstream.requests}) == 1
