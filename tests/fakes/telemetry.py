"""Helpers of the end-to-end telemetry tests: a config for two receivers, flushing the
sidecar's exporters (returns once every destination answered), span filters."""

from __future__ import annotations

import asyncio
from typing import Any

import openai

from sidecar.deps import DEPS, Deps
from tests.conftest import RunningSidecar
from tests.fakes.otlp import GrpcReceiver, HttpReceiver

SERVER, CLIENT = 2, 3  # Span.SpanKind


def both(grpc: GrpcReceiver, http: HttpReceiver, **extra: Any) -> dict[str, Any]:
    """Config exporting to both receivers, each with its own credentials."""
    return {"telemetry": {"exporters": [
        {"protocol": "grpc", "endpoint": grpc.endpoint, "headers": {"x-backend": "grpc-one"},
         "signals": ["traces", "metrics", "logs"]},
        {"protocol": "http", "endpoint": http.endpoint,
         "headers": {"Authorization": "Basic aHR0cC10d28="}, "signals": ["traces", "metrics"]},
    ], **extra}}


async def flush(sidecar: RunningSidecar) -> Deps:
    deps = sidecar.app[DEPS]
    assert await asyncio.to_thread(deps.telemetry.flush, 10.0)
    return deps


def client(sidecar: RunningSidecar) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=sidecar.v1, api_key="sk-client", max_retries=0)


def by_kind(spans: list[tuple[dict[str, Any], Any]], kind: int) -> list[Any]:
    return [span for _, span in spans if span.kind == kind]
