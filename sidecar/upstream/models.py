"""`GET /v1/models` across several providers: one list, deduplicated, each entry naming its
provider, with prices where the config knows them.

Each provider's own `/models` is asked concurrently with that provider's credentials (or the
client's, as for any passthrough). An entry is kept when the provider's globs match its id (the
sidecar lists what it would route there); the first provider in config order that lists an id
owns the entry (`provider`), and every provider that lists it is in `providers`. A provider with
`strip_prefix` lists bare names ("claude-x"): when its only glob is `vendor/*`, the prefix is put
back ("vendor/claude-x"). Configured `providers[].prices` replace the upstream's `pricing`
(OpenRouter's shape: USD per token as strings). A provider that fails is left out and named in
`errors`; if all fail, the answer is 502 `upstream_unavailable`.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Call, Reply
from sidecar.errors import JSON_CONTENT_TYPE, UpstreamError, UpstreamUnavailable
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.routing import Routing
from sidecar.upstream.targets import Target


async def merged_models(client: UpstreamClient, routing: Routing, call: Call) -> Reply:
    lists = await asyncio.gather(*(_fetch(client, t, call) for t in routing.targets))
    seen: dict[str, dict[str, Any]] = {}
    errors = []
    for target, listed in zip(routing.targets, lists, strict=True):
        if isinstance(listed, str):
            errors.append({"provider": target.name, "error": listed})
            continue
        for entry in listed:
            model = _sidecar_id(target, entry.get("id"))
            if model is None or not target.matching(model):
                continue
            known = seen.get(model)
            if known is not None:
                known["providers"].append(target.name)
                continue
            entry = {**entry, "id": model, "provider": target.name, "providers": [target.name]}
            if (price := target.price(model)) is not None:
                entry["pricing"] = {key: f"{value:.12g}" for key, value in
                                    price.model_dump(exclude_none=True).items()}
            seen[model] = entry
    if errors and len(errors) == len(routing.targets):
        detail = "; ".join(f"'{e['provider']}': {e['error']}" for e in errors)
        return Reply.from_error(UpstreamUnavailable(
            f"No provider answered its model list: {detail}"))
    payload: dict[str, Any] = {"object": "list", "data": list(seen.values())}
    if errors:
        payload["errors"] = errors
    return Reply(200, CIMultiDict({"Content-Type": JSON_CONTENT_TYPE}),
                 body=orjson.dumps(payload))


_BODY_HEADERS = ("Content-Length", "Transfer-Encoding", "Content-Encoding", "Content-Type")


async def _fetch(client: UpstreamClient, target: Target, call: Call) -> list[dict[str, Any]] | str:
    """The provider's model entries, or a reason it gave none."""
    headers = CIMultiDict(call.headers)
    headers["Accept-Encoding"] = "identity"
    for name in _BODY_HEADERS:  # the sub-request has no body: claiming one, a provider waited
        headers.popall(name, None)  # for bytes that never came (until its read timeout)
    sub = Call(request_id=call.request_id, method="GET", path=call.path, endpoint=None,
               headers=CIMultiDictProxy(headers), started=time.monotonic())
    attempt = sub.begin_attempt(target.name, "", sub.started)
    try:
        reply = await target.provider.forward(client, sub, attempt)
        if reply.error is not None:
            return reply.error.message
        body = reply.body or b""
        if reply.chunks is not None:
            body = b"".join([chunk async for chunk in reply.chunks])
        if reply.status != 200:
            return f"HTTP {reply.status}"
        if reply.headers.get("Content-Encoding", "identity") != "identity":
            body = zlib.decompress(body, 47)  # gzip or zlib, should a server ignore identity
        data = orjson.loads(body).get("data")
    except (UpstreamError, ValueError, AttributeError, zlib.error) as exc:  # not JSON, no dict
        return f"unreadable model list ({type(exc).__name__})"
    finally:
        sub.finish()
    if not isinstance(data, list):
        return "the answer has no 'data' list"
    return [entry for entry in data if isinstance(entry, dict)]


def _sidecar_id(target: Target, model: Any) -> str | None:
    if not isinstance(model, str) or not model:
        return None
    patterns = target.patterns
    if ("/" not in model and target.strip_prefix
            and len(patterns) == 1 and patterns[0][0].endswith("/*")):
        return patterns[0][0][:-1] + model
    return model
