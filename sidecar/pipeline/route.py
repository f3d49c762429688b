"""The terminal stage: send the call for ONE model to its providers; return the answer as a Reply.

`model` serves the model endpoints. The router lists the providers for `call.model` (pool by
weight, then fallbacks, reshaped by the request's preferences); each is tried in turn, skipping
those whose breaker is open, and a provider that failed before answering (a transport error, or
a status in `retry.on_status`) goes back in the queue to be retried after an exponential,
jittered backoff or its `Retry-After`. Bounds: `retry.attempts` tries for this model and no new
try after `retry.deadline_s` from the request's arrival. An answer that is not a retryable
failure (a success, a stream that started, a 400) is returned at once: nothing is ever retried
after its first byte reached the client. When every try failed, the last upstream error passes
through as it came; when none got an answer, 502 `upstream_unavailable` (504 `upstream_timeout`
if all timed out) names each provider and why; when every breaker is open, 502 says so at once.

Each try is an `Attempt` on the call; replaced replies are discarded (their connection goes back
to the pool). The answer's body is decoded so stages can read it, and an event stream is
re-chunked into whole events (the answer stage above reads them). `forward` serves every
other path, undecoded and unbuffered, on the first provider (no
retries: a streamed upload cannot be replayed), and `GET /v1/models` merged across providers;
it refuses a path that leaves /v1 or spells a model endpoint another way (upstream/paths.py).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

from sidecar.call import Attempt, Call, Reply
from sidecar.errors import NoProviderAvailable, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from sidecar.upstream import paths
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.keys import REFUSED
from sidecar.upstream.models import merged_models
from sidecar.upstream.providers import Provider
from sidecar.upstream.retry import retry_after
from sidecar.upstream.routing import Routing
from sidecar.upstream.targets import Target


class Route:
    name = "route"
    reads_answer = False

    def __init__(self, client: UpstreamClient, routing: Routing) -> None:
        self._client = client
        self._routing = routing
        self._router = routing.router
        self._retry = routing.retry
        self._clock = routing.clock
        self._merge_models = len(routing.targets) > 1
        # No providers, no retry, no breaker: the core's path exactly (no averages either), so
        # the default configuration pays nothing for routing (bench/routing.py).
        lone = routing.targets[0]
        self._plain = lone.provider if (
            len(routing.targets) == 1 and routing.retry.attempts == 1
            and not lone.breaker.enabled and not routing.configured) else None

    async def model(self, call: Call) -> Reply:
        model = call.model
        assert model is not None
        if (provider := self._plain) is not None:
            return (await self._send(call, provider, model))[0]
        try:
            targets = self._router.candidates(model, call.preferences)
        except NoProviderAvailable as exc:
            return Reply.from_error(exc)
        first = targets[0]
        if first.breaker.allow():  # the common case: the first try answers
            reply = await self._attempt(call, first, model)
            if self._retry.retryable(reply) and (len(targets) > 1 or self._retry.attempts > 1):
                reply = await self._tries(call, targets, model, reply)
        elif len(targets) == 1:
            return Reply.from_error(_all_open(model, targets))
        else:
            reply = await self._tries(call, targets, model, None)
        return reply

    async def _tries(self, call: Call, targets: Sequence[Target], model: str,
                     first: Reply | None) -> Reply:
        """The retry loop, after `first` (the failed answer of targets[0]) if there was one."""
        policy, clock = self._retry, self._clock
        deadline = call.started + policy.deadline_s
        queue = deque(targets)
        tried: dict[Target, int] = {}
        waits: dict[Target, float] = {}
        failed: Reply | None = None  # the last upstream error answer, passed on if all fail
        problems: list[str] = []  # transport failures, for the 502/504 message
        timeouts = tries = 0
        reply = first
        target = targets[0]
        if reply is not None:
            queue.popleft()
            tries = tried[target] = 1
        while True:
            if reply is not None:  # a failed try of `target`: note it, queue it again
                requeue = True
                if reply.error is None:  # the upstream's own answer, e.g. 503 or 429
                    if failed is not None:
                        await failed.discard()
                    failed = reply
                    wait = retry_after(reply.headers)
                    if wait is not None:
                        # Asked for longer than we wait: not again in this request.
                        requeue = wait <= policy.max_backoff_s
                        waits[target] = wait
                else:
                    problems.append(f"'{target.name}': {reply.error.message}")
                    timeouts += isinstance(reply.error, UpstreamTimeout)
                if requeue:
                    queue.append(target)
            if not queue or tries >= policy.attempts:
                break
            target = queue.popleft()
            if not target.breaker.allow():
                reply = None
                continue
            count = tried.get(target, 0)
            if count:  # the same provider again: wait first
                wait = waits.pop(target, None)
                if wait is None:
                    wait = policy.backoff(count, clock.random)
                if clock.now() + wait > deadline:
                    target.breaker.abandon()
                    break
                try:
                    await clock.sleep(wait)
                except BaseException:
                    target.breaker.abandon()
                    raise
            elif tries and clock.now() >= deadline:
                target.breaker.abandon()
                break
            tries += 1
            tried[target] = count + 1
            reply = await self._attempt(call, target, model)
            if not policy.retryable(reply):
                if failed is not None:
                    await failed.discard()
                return reply
        if failed is not None:
            return failed
        if problems:
            error = UpstreamTimeout if timeouts == len(problems) else UpstreamUnavailable
            return Reply.from_error(error(
                f"Every attempt for model '{model}' failed before an answer "
                f"({len(problems)} tried): {' '.join(problems)}"))
        return Reply.from_error(_all_open(model, targets))

    async def _attempt(self, call: Call, target: Target, model: str) -> Reply:
        finish = self._routing.finish
        if finish not in call.finishers:  # once per Call, whichever candidate model (a fork,
            call.finishers.append(finish)  # a single flight's, judges its own exchange)
        breaker = target.breaker
        try:
            reply, attempt = await self._send(call, target.provider, model)
        except BaseException:  # cancelled (the client left): a probe must not stay taken
            breaker.abandon()
            raise
        if attempt.status == 0 and reply.error is not None and not isinstance(
                reply.error, UpstreamError):
            # refused by the provider before anything was sent (a field or path it cannot
            # carry): says nothing of the upstream's health
            breaker.abandon()
            return reply
        if self._retry.retryable(reply):
            breaker.failure()
            target.stats.failed(model)
        else:
            if reply.chunks is None or reply.status >= 400:
                breaker.success()
            # else: a stream in flight; Routing.finish judges it once it ended (a break
            # mid-stream is a failure), so a provider that cuts every stream still opens.
            if attempt.headers_at is not None and reply.status < 300:
                target.stats.first_byte(model, attempt.headers_at - attempt.started,
                                        self._clock.now())
        return reply

    async def _send(self, call: Call, provider: Provider, model: str
                    ) -> tuple[Reply, Attempt]:
        """One try at `provider`; when it refuses its current key (401/403) and its key list
        has another, once more with the next one (upstream/keys.py)."""
        keys = provider.keys
        used = keys.current if keys is not None else None
        attempt = call.begin_attempt(provider.name, model, time.monotonic())
        reply = await provider.send(self._client, call, attempt)
        if (keys is not None and used is not None and reply.status in REFUSED
                and reply.error is None and keys.refused(used)):
            await reply.discard()
            attempt = call.begin_attempt(provider.name, model, time.monotonic())
            reply = await provider.send(self._client, call, attempt)
        return reply, attempt

    async def forward(self, call: Call) -> Reply:
        if (refused := paths.refusal(call.method, call.path)) is not None:
            return Reply.from_error(refused)  # leaves /v1, or a model endpoint in disguise
        if self._merge_models and call.method == "GET" and (
                call.path.partition("?")[0] == "/models"):
            return await merged_models(self._client, self._routing, call)
        provider = self._routing.passthrough_target.provider
        keys = provider.keys
        used = keys.current if keys is not None else None
        attempt = call.begin_attempt(provider.name, "", time.monotonic())
        reply = await provider.forward(self._client, call, attempt)
        if (keys is not None and used is not None and reply.status in REFUSED
                and keys.refused(used) and call.content is None):  # no body to replay
            await reply.discard()
            attempt = call.begin_attempt(provider.name, "", time.monotonic())
            reply = await provider.forward(self._client, call, attempt)
        return reply


def _all_open(model: str, targets: Sequence[Target]) -> UpstreamUnavailable:
    states = "; ".join(f"'{t.name}': {t.breaker.describe()}" for t in targets)
    return UpstreamUnavailable(
        f"No provider for model '{model}' is available right now, so the sidecar fails fast "
        f"instead of waiting on timeouts ({states}).")
