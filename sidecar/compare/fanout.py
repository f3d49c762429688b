"""One compare: a fork of the compare request's Call per model, all run at once through the full
model pipeline, under one deadline.

Each fork is a request of its own (its own id, access line, ledger row, inspector entry), tagged
`compare` and the caller's tags, with the body `{**request, "model": m}` already read: the
pipeline parses and checks it as a client's (read_body), redacts it, prices and admits it under
the caller's budgets, looks it up in the cache (unless `Cache-Control: no-cache`), routes it.
The consumer (consume.py) reads each reply as the handler would. A model that fails fails
alone; at `compare.timeout_s` the unfinished ones are cut (`client_disconnected` for their
finishers, a 504 `upstream_timeout` result). If the compare's client leaves, every model call
is cut the same way, and waited for, so its finishers have run when the compare ends.

Streamed (`"stream": true`), each model's chunks are relayed as they arrive, then its result as
soon as it is done, then the summary (route.py writes them):

    event: chunk     data: {"index": 0, "model": "...", "chunk": {<the provider's chunk>}}
    event: result    data: {<the model's result, with its index>}
    event: summary   data: {<the summary>}
    data: [DONE]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import Any

import orjson

from sidecar import sse
from sidecar.call import Call, Finisher, Next, new_request_id
from sidecar.compare.consume import Consumed, consume
from sidecar.compare.request import CompareRequest
from sidecar.compare.results import ModelResult, result_of, summarize
from sidecar.config.compare import COMPARE_TAG


def model_call(parent: Call, body: dict[str, Any], tags: tuple[str, ...]) -> Call:
    """A fork of `parent` for one model: a request of its own with `body` already read (no
    content to read, no encoding to undo: read_body parses it as a client's)."""
    call = parent.fork(request_id=new_request_id())
    call.raw_body, call.body, call.body_changed = orjson.dumps(body), None, False
    call.model = call.requested_model = None
    call.stream = False
    call.tags = tags
    call.started = time.monotonic()  # its latency is its own
    return call


class Fanout:
    def __init__(self, pipeline: Next, parent: Call, request: CompareRequest, *,
                 timeout_s: float, record: Finisher | None = None,
                 cut: Callable[[], bool] = lambda: False) -> None:
        """`record`: the access line and request metrics (the handler's first finisher, so
        each model call writes its line last, as a client's request does); `cut`: whether the
        shutdown is cutting what still runs."""
        self.request = request
        self.started = parent.started
        self._pipeline = pipeline
        self._timeout_s = timeout_s
        self._cut = cut
        tags = tuple(dict.fromkeys((COMPARE_TAG, *parent.tags)))
        self.calls = [model_call(parent, request.body_for(model), tags)
                      for model in request.models]
        if record is not None:
            for call in self.calls:
                call.finishers.append(record)
        self.consumed = [Consumed() for _ in request.models]
        self.results: list[ModelResult | None] = [None] * len(request.models)
        self._timed_out: set[int] = set()
        self._events: asyncio.Queue[bytes] | None = asyncio.Queue() if request.stream else None
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._one(index)) for index in range(len(self.calls))]
        self._timer = asyncio.get_running_loop().call_later(self._timeout_s, self._deadline)

    async def wait(self) -> list[ModelResult]:
        """Every model's result, in the order asked, once all are done or cut."""
        try:
            await asyncio.wait(self._tasks)
        except asyncio.CancelledError:  # the compare's client left
            await self.abandon()
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()
        for task in self._tasks:  # a bug in the sidecar: a 500 naming the request id
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error
        return [result for result in self.results if result is not None]

    async def events(self) -> AsyncGenerator[bytes, None]:
        """The streamed compare's events, as they come; then the summary and [DONE]."""
        assert self._events is not None
        left = len(self.calls)
        while left:
            event = await self._events.get()
            left -= event.startswith(b"event: result")
            yield event
        results = await self.wait()
        yield b"event: summary\ndata: " + orjson.dumps(self.summary(results)) + b"\n\n"
        yield sse.DONE

    def summary(self, results: list[ModelResult]) -> dict[str, Any]:
        return summarize(results, (time.monotonic() - self.started) * 1000)

    async def abandon(self) -> None:
        """Cut every model still running and wait until each is finished."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    def _deadline(self) -> None:
        for index, task in enumerate(self._tasks):
            if not task.done():
                self._timed_out.add(index)
                task.cancel()

    async def _one(self, index: int) -> None:
        on_chunk = partial(self._chunk, index) if self._events is not None else None
        try:
            await consume(self._pipeline, self.calls[index], self.consumed[index],
                          on_chunk=on_chunk, cut=self._cut)
        finally:
            self._finished(index)

    def _chunk(self, index: int, chunk: bytes) -> None:
        assert self._events is not None
        model = self.request.models[index]
        for event in sse.split_events(chunk):
            data = sse.event_json(event)
            if isinstance(data, dict):
                self._events.put_nowait(b"event: chunk\ndata: " + orjson.dumps(
                    {"index": index, "model": model, "chunk": data}) + b"\n\n")

    def _finished(self, index: int) -> None:
        result = self.results[index] = result_of(
            index, self.request.models[index], self.request.endpoint, self.calls[index],
            self.consumed[index],
            timeout_s=self._timeout_s if index in self._timed_out else None)
        if self._events is not None:
            self._events.put_nowait(b"event: result\ndata: " + orjson.dumps(result.as_dict())
                                    + b"\n\n")
