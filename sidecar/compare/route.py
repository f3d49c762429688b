"""POST /sidecar/compare: one request body, several models, the answers side by side.

On the proxy listener it is authenticated like /v1 calls: with `auth.required`, a local key,
checked by the auth stage before a byte of the body is read (401 otherwise); the admin token
alone never opens it. On a separate admin listener (for the inspector's Compare view) it is
also behind the admin guard (app.py, admin/__init__.py). The body is read with the same bound as
a model endpoint's (`listen.max_body_bytes`, gzip and deflate undone), checked (request.py: a
400 naming the field), then each model runs through the model pipeline as a fork of this
request (fanout.py). The answer is `{"results": [...], "summary": {...}}` with status 200
whatever the models answered (each result carries its own status and error), or, with
`"stream": true`, the server-sent events fanout.py describes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Call, Reply, new_request_id
from sidecar.compare.fanout import Fanout
from sidecar.compare.request import CompareRequest, parse_compare
from sidecar.config.schema import Settings
from sidecar.deps import Deps
from sidecar.errors import JSON_CONTENT_TYPE, SidecarError
from sidecar.handler import client_tags, header_text
from sidecar.headers import REQUEST_ID_HEADER, SERVER
from sidecar.live import LIVE
from sidecar.pipeline.auth import Auth
from sidecar.pipeline.read_body import read_raw
from sidecar.runtime import RUNTIME
from sidecar.telemetry.access import AccessRecord

# The compare request's own body headers: each model's body is the sidecar's JSON, not these.
_BODY_HEADERS = ("Content-Length", "Content-Encoding", "Content-Type", "Transfer-Encoding")


class CompareRoute:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._rules = _Rules.of(deps)
        # Each model call writes its access line and request metrics, as a client's does.
        self._record = AccessRecord(deps.metrics, deps.access)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        runtime = request.config_dict[RUNTIME]
        task = asyncio.current_task()
        assert task is not None
        runtime.in_flight.add(task)  # drained, then cut, at shutdown like a proxied request
        try:
            rules = self._current()
            parent = _parent_call(request)
            headers = {**rules.headers, REQUEST_ID_HEADER: parent.request_id}
            if rules.auth is not None and (refused := await _refused(rules.auth, parent)):
                return _response(refused.status, refused.body or b"", headers)
            try:
                compare = parse_compare(await read_raw(parent, rules.limit), rules.max_models)
            except SidecarError as exc:
                return _response(exc.status, Reply.from_error(exc).body or b"", headers)
            _for_models(parent, request, compare)
            # the pipelines serving now: a reload swaps them for the next compare
            fanout = Fanout(request.config_dict[LIVE].pipelines.model, parent, compare,
                            timeout_s=rules.timeout_s, record=self._record,
                            cut=lambda: runtime.cut)
            fanout.start()
            if compare.stream:
                return await _stream(request, fanout, headers)
            results = await fanout.wait()
            return _response(200, orjson.dumps({
                "results": [result.as_dict() for result in results],
                "summary": fanout.summary(results)}), headers)
        finally:
            runtime.in_flight.discard(task)

    def _current(self) -> _Rules:
        """The rules of the settings serving now (a live reload replaces `deps.settings`: new
        keys, limits and deadlines apply to the next compare)."""
        if self._rules.settings is not self._deps.settings:
            self._rules = _Rules.of(self._deps)
        return self._rules


@dataclass(frozen=True, slots=True)
class _Rules:
    """What a compare needs of the settings, built once per configuration."""

    settings: Settings
    auth: Auth | None  # the auth stage's own check, when auth.required
    limit: int
    max_models: int
    timeout_s: float
    headers: dict[str, str]

    @classmethod
    def of(cls, deps: Deps) -> _Rules:
        settings = deps.settings
        headers = {"Server": SERVER}
        if settings.privacy.zdr:  # imported only then: the redaction patterns cost start-up
            from sidecar.pipeline.privacy import ZDR_HEADER

            headers[ZDR_HEADER] = "on"
        return cls(settings, Auth(settings.auth, deps.refusals) if settings.auth.required
                   else None, settings.listen.max_body_bytes, settings.compare.max_models,
                   settings.compare.timeout_s, headers)


async def _refused(auth: Auth, parent: Call) -> Reply | None:
    """The auth stage's 401 for this caller, or None when its key is known."""
    admitted = Reply(204, CIMultiDict())

    async def admit(call: Call) -> Reply:
        return admitted

    reply = await auth(parent.fork(), admit)  # a fork: the models' own auth adds the tags
    return None if reply is admitted else reply


def _parent_call(request: web.Request) -> Call:
    """The compare request as a Call: who asks (headers, user, tags), not yet for which model.
    Its content is the compare body; each model's fork gets its own body."""
    user = request.headers.get("x-sidecar-user")
    return Call(request_id=new_request_id(), method="POST", path="", endpoint=None,
                headers=request.headers, started=time.monotonic(), content=request.content,
                user=None if user is None else header_text(user),
                tags=client_tags(request.headers.get("x-sidecar-tags")))


def _for_models(parent: Call, request: web.Request, compare: CompareRequest) -> None:
    """What every model's fork inherits: the endpoint, and the client's headers without those
    describing the compare body (Cache-Control, traceparent and the rest stay)."""
    parent.endpoint = compare.endpoint
    parent.path = f"/{compare.endpoint}"
    parent.content = None
    headers = request.headers.copy()
    for name in _BODY_HEADERS:
        headers.popall(name, None)
    headers["Content-Type"] = JSON_CONTENT_TYPE
    parent.headers = CIMultiDictProxy(headers)


async def _stream(request: web.Request, fanout: Fanout, headers: dict[str, str]
                  ) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        **headers, "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    events = fanout.events()
    try:
        await response.prepare(request)
        async for event in events:
            await response.write(event)
        await response.write_eof()
    except ConnectionResetError:  # the client left: every model call is cut
        await fanout.abandon()
    except asyncio.CancelledError:
        await fanout.abandon()
        raise
    finally:
        await events.aclose()
    return response


def _response(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, body=body, content_type=JSON_CONTENT_TYPE,
                        headers=headers)
