"""Spend on the passthrough paths: every `/v1` path that is not a model endpoint is free, a
batch, or unpriced (spend/paths.py), and none is a way around a blocking budget.

- free: forwarded untouched (nothing to hold or record).
- unpriced, by `spend.unpriced_paths`: `block` refuses it under a blocking budget (403
  unpriced_path naming the path and the setting) and records it otherwise; `record` serves it,
  counted by rate limits, with a ledger row at cost 0 naming the path; `allow` serves it
  untouched, as before there was a rule.
- batch (`POST /v1/batches`): bounded at submission. The sidecar reads the batch's input file
  from the upstream (GET /files/{id}/content, streamed, line by line) and bounds every request
  in it exactly as it bounds that request sent alone (estimate.py: its prompt's bytes, its
  completion limit or `spend.reserve_max_tokens`, the model's dearest prices from the price
  book), times `spend.batch_price_factor` (OpenAI's Batch API bills half the synchronous
  price). That bound is held against the budgets like any request and, once the upstream
  accepts the batch, charged in full (marked estimated): the batch runs for up to a day after
  its submission and is billed whether or not its results are ever read through the sidecar,
  so only money held before it starts keeps a blocking budget whole. A line whose model has no
  price, under a blocking budget, refuses the batch (403 unpriced_path).
"""

from __future__ import annotations

import math
from urllib.parse import quote

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from sidecar.call import Call, Next, Reply, Usage
from sidecar.endpoints import ENDPOINTS
from sidecar.errors import InvalidRequest, SidecarError, UnpricedPath
from sidecar.pipeline.spend_media import SpendStage, blocking_budget
from sidecar.spend.estimate import Estimate, estimate
from sidecar.spend.paths import PathRules
from sidecar.spend.policy import Ask, BudgetRule, LimitRule

__all__ = ["SpendPaths"]

_FETCH_DROP = frozenset({"content-length", "content-type", "content-encoding",
                         "transfer-encoding", "accept-encoding"})


class FixedCost:
    """A tariff that costs what was held: a batch's bound, or 0."""

    def __init__(self, amount: int) -> None:
        self.amount = amount

    def cost(self, usage: Usage) -> int:
        return self.amount


class SpendPaths:
    name = "spend_paths"
    reads_answer = False

    def __init__(self, spend: SpendStage, rules: PathRules, max_body_bytes: int) -> None:
        self._spend = spend
        self._rules = rules
        self._limit = max_body_bytes

    async def __call__(self, call: Call, next: Next) -> Reply:
        kind = self._rules.kind(call.method, call.path)
        if kind == "free":
            return await next(call)
        spend = self._spend
        budgets, limits = spend.policy.applicable(call)
        blocking = blocking_budget(budgets)
        if kind == "unpriced":
            mode = spend.settings.unpriced_paths
            if mode == "allow":
                return await next(call)
            if mode == "block" and blocking is not None:
                return Reply.from_error(_unpriced(call, blocking))
            return await self._hold(call, next, budgets, limits, 0)
        bound = await self._batch_bound(call, next, blocking)
        if isinstance(bound, SidecarError):
            # Bounding protects a blocking budget; without one, a batch the sidecar cannot
            # bound (no input_file_id, a file it cannot read or parse) is the upstream's to
            # judge: served and recorded at 0. A body over the limit was not read whole.
            if blocking is not None or call.content is not None:
                return Reply.from_error(bound)
            bound = 0
        return await self._hold(call, next, budgets, limits, bound)

    async def _hold(self, call: Call, next: Next, budgets: list[tuple[BudgetRule, str]],
                    limits: list[tuple[LimitRule, str]], cost: int) -> Reply:
        spend = self._spend
        if spend.fail_closed and not spend.ledger.healthy:
            return spend.unavailable()
        ask = Ask(budgets, limits, float(cost), 0.0, 0, 0, 1, spend.ledger.clock())
        run = await spend.hold(call, ask, FixedCost(cost), Estimate(0, 0, None, None, 1))
        if isinstance(run, Reply):
            return run
        reply = await next(call)
        accepted = reply.status < 400
        run.settle(call, Usage() if accepted else None, answered=False,
                   estimated=accepted and cost > 0)
        return reply

    async def _batch_bound(self, call: Call, next: Next, blocking: str | None
                           ) -> int | SidecarError:
        """The nano-dollars a batch's requests can cost at most (see the module docstring)."""
        raw = bytearray()
        if call.content is not None:
            while chunk := await call.content.readany():
                raw += chunk
                if len(raw) > self._limit:
                    return InvalidRequest("The batch request body is larger than "
                                          "listen.max_body_bytes.")
        call.raw_body, call.content = bytes(raw), None  # forwarded as read (providers/openai)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        file_id = body.get("input_file_id") if isinstance(body, dict) else None
        if not isinstance(file_id, str) or not file_id or call.headers.get(
                "Content-Encoding", "identity").lower() != "identity":
            return InvalidRequest("POST /v1/batches needs a JSON body with input_file_id (sent "
                                  "uncompressed): the sidecar bounds a batch by its input file "
                                  "before it is submitted.", param="input_file_id")
        fork = call.fork()
        fork.method, fork.raw_body = "GET", None
        fork.path = f"/files/{quote(file_id, safe='')}/content"
        headers = CIMultiDict((k, v) for k, v in call.headers.items()
                              if k.lower() not in _FETCH_DROP)
        headers["Accept-Encoding"] = "identity"
        fork.headers = CIMultiDictProxy(headers)
        try:
            reply = await next(fork)
            if reply.status != 200 or reply.chunks is None:
                await reply.discard()
                return InvalidRequest(f"The batch's input file '{file_id}' could not be read "
                                      f"from the upstream (HTTP {reply.status}), so the batch "
                                      "cannot be bounded before it runs.",
                                      param="input_file_id")
            return await self._scan(reply, blocking)
        finally:
            fork.finish()

    async def _scan(self, reply: Reply, blocking: str | None) -> int | SidecarError:
        assert reply.chunks is not None
        spend = self._spend
        total = 0.0
        buffer = b""
        async for chunk in reply.chunks:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            if len(buffer) > self._limit:
                return InvalidRequest("A line of the batch's input file is longer than "
                                      "listen.max_body_bytes.")
            for line in lines:
                cost = self._line(line, blocking)
                if isinstance(cost, SidecarError):
                    return cost
                total += cost
        cost = self._line(buffer, blocking)
        if isinstance(cost, SidecarError):
            return cost
        return math.ceil((total + cost) * spend.settings.batch_price_factor)

    def _line(self, line: bytes, blocking: str | None) -> float | SidecarError:
        """The worst case of one request of the batch, in nano-dollars at the full price."""
        if not line.strip():
            return 0.0
        spend = self._spend
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError:
            return InvalidRequest("A line of the batch's input file is not JSON.")
        body = item.get("body") if isinstance(item, dict) else None
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(body, dict) or not isinstance(url, str):
            return InvalidRequest("A line of the batch's input file has no url and body.")
        endpoint = url.partition("?")[0].removeprefix("/v1/").strip("/")
        row = ENDPOINTS.get(endpoint)
        if row is not None and row.meter == "free":
            return 0.0
        model = body.get("model")
        price = spend.prices.lookup(model) if isinstance(model, str) else None
        if row is None or row.meter != "tokens" or price is None:
            if blocking is not None:
                return UnpricedPath(
                    f"The batch's input file has a request to {url} for model '{model}', which "
                    f"the sidecar cannot price, and budget '{blocking}' applies, so the batch's "
                    "cost cannot be held against it. Add the model to spend.prices.",
                    param="input_file_id")
            return 0.0
        settings = spend.settings
        est = estimate(endpoint, line, body, default_tokens=settings.reserve_max_tokens,
                       image_tokens=settings.image_tokens,
                       context_length=price.context_length)
        per_prompt, per_completion, per_request = price.worst(est.prompt_tokens)
        return (est.prompt_tokens * per_prompt + per_completion * est.want * est.choices
                + per_request)


def _unpriced(call: Call, budget: str) -> UnpricedPath:
    path = call.path.partition("?")[0]
    return UnpricedPath(
        f"{call.method} /v1{path} costs money the sidecar cannot price, and budget '{budget}' "
        "applies, so it is refused (spend.unpriced_paths: block). Set spend.unpriced_paths to "
        "record (served, recorded at cost 0) or allow, or list the path in spend.free_paths "
        "if it is free.", metadata={"path": f"/v1{path}", "setting": "spend.unpriced_paths"})
