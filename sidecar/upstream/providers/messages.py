"""Anthropic-format endpoints on an OpenAI-format provider: translated, sent, translated back.

`POST /v1/messages` becomes `POST {base_url}/chat/completions` (upstream/messages/request.py),
and its answer an Anthropic message, or an Anthropic event stream (response.py, stream.py);
an error answer becomes Anthropic's error shape with its status (errors.py). The headers are the
client's less Anthropic's own (`anthropic-version`, `anthropic-beta`: they mean nothing to this
upstream) and less its credentials unless the client's own key is to be used, in which case an
`x-api-key` is sent as `Authorization: Bearer` (Claude Code with an OpenRouter key in
ANTHROPIC_API_KEY). The query Anthropic's SDKs add (`?beta=true`) stays here.

`POST /v1/messages/count_tokens` has no OpenAI counterpart: it is answered here, without a
request upstream, with the spend estimate's prompt bound (spend/estimate.py: the body's bytes,
plus what tools and images add): an upper bound, never an undercount, marked by the header
`x-sidecar-token-count: bound`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Protocol

import orjson
from aiohttp import ClientResponse
from multidict import CIMultiDict

from sidecar.call import Attempt, Call, Reply
from sidecar.errors import JSON_CONTENT_TYPE, SidecarError, UpstreamError, UpstreamUnavailable
from sidecar.headers import client_response_headers
from sidecar.spend.estimate import prompt_bound
from sidecar.upstream.client import Body, UpstreamClient
from sidecar.upstream.messages.errors import translate_error
from sidecar.upstream.messages.request import Target, translate_request
from sidecar.upstream.messages.response import translate_body
from sidecar.upstream.messages.stream import EventTranslator, translate_stream

COUNT_HEADER = "x-sidecar-token-count"
_ANTHROPIC_HEADERS = ("anthropic-version", "anthropic-beta", "x-api-key")
_IMAGE_TOKENS = 1_600  # an image's bound when no spend settings say (spend.image_tokens)


class ChatProvider(Protocol):
    """What this module needs of an OpenAI-format provider (providers/openai.py)."""

    name: str
    base_url: str

    @property
    def keeps_client_auth(self) -> bool: ...

    @property
    def openrouter(self) -> bool: ...

    def upstream_model(self, model: str) -> str: ...

    def request_headers(self, call: Call, *, decoded: bool) -> CIMultiDict[str]: ...

    async def open(self, client: UpstreamClient, attempt: Attempt, method: str, path: str,
                   headers: CIMultiDict[str], data: bytes | AsyncIterator[bytes] | None, *,
                   decoded: bool) -> ClientResponse | Reply: ...


async def send_messages(provider: ChatProvider, client: UpstreamClient, call: Call,
                        attempt: Attempt) -> Reply:
    if call.body is None:
        return _refused(attempt, UpstreamUnavailable("The request has no body to translate."))
    if call.endpoint == "messages/count_tokens":
        return _count_bound(call, attempt)
    where = f"{provider.name} ({provider.base_url})"
    target = Target(openrouter=provider.openrouter,
                    openai=provider.base_url.startswith("https://api.openai.com"))
    try:
        request, plan = translate_request({**call.body, **call.overrides},
                                          provider.upstream_model(attempt.model), target,
                                          zdr=call.zdr)
    except SidecarError as exc:
        return _refused(attempt, exc)
    headers = _headers(provider, call)
    response = await provider.open(client, attempt, "POST", "/chat/completions", headers,
                                   orjson.dumps(request), decoded=True)
    if isinstance(response, Reply):
        return response
    reply_headers = client_response_headers(response.headers, decoded_body=True)
    if response.status >= 400 or not plan.stream or (
            response.content_type != "text/event-stream"):
        try:
            raw = await client.read(response, where)
        except UpstreamError as exc:
            return _refused(attempt, exc)
        attempt.ended = time.monotonic()
        reply_headers["Content-Type"] = JSON_CONTENT_TYPE
        if response.status >= 400:
            return Reply(response.status, reply_headers,
                         body=translate_error(response.status, raw, provider.name))
        try:
            body = translate_body(raw, plan)
        except UpstreamError as exc:
            attempt.error = exc.code
            return Reply.from_error(exc)
        if body is None:
            attempt.error = "upstream_unavailable"
            return Reply.from_error(UpstreamUnavailable(
                f"Upstream {where} answered HTTP {response.status} with a body that is not a "
                "chat completion."))
        return Reply(response.status, reply_headers, body=body)
    chunks = Body(response, where)
    call.finishers.append(chunks.finish)  # releases the connection even if never read
    reply_headers["Content-Type"] = "text/event-stream; charset=utf-8"
    return Reply(response.status, reply_headers, sse=True, chunks=translate_stream(
        chunks, EventTranslator(plan, provider.name), where))


def _headers(provider: ChatProvider, call: Call) -> CIMultiDict[str]:
    key = call.headers.get("x-api-key")
    headers = provider.request_headers(call, decoded=True)
    for name in _ANTHROPIC_HEADERS:
        headers.popall(name, None)
    if provider.keeps_client_auth and key and "Authorization" not in headers:
        headers["Authorization"] = f"Bearer {key.strip()}"
    headers["Content-Type"] = JSON_CONTENT_TYPE
    return headers


def _count_bound(call: Call, attempt: Attempt) -> Reply:
    """count_tokens where the upstream has none: the spend estimate's prompt bound."""
    assert call.body is not None
    raw = orjson.dumps(call.body) if call.body_changed else call.raw_body or b""
    bound = prompt_bound("messages", raw, call.body, _IMAGE_TOKENS, None)
    attempt.ended = time.monotonic()
    return Reply(200, CIMultiDict({"Content-Type": JSON_CONTENT_TYPE, COUNT_HEADER: "bound"}),
                 body=orjson.dumps({"input_tokens": bound}))


def _refused(attempt: Attempt, error: SidecarError) -> Reply:
    """Refused before anything went upstream, or an attempt that got no answer."""
    attempt.error = error.code
    attempt.ended = time.monotonic()
    return Reply.from_error(error)
