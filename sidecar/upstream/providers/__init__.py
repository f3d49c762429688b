"""Providers: how one upstream is asked, and how its answer comes back.

A provider renders its own request for one attempt (path, credentials, body changes such as the
model name it knows the model by) without touching `call.body`, sends it through the shared
`UpstreamClient`, and returns a Reply in OpenAI's shape: an error Reply, never an exception,
when the transport fails. Formats other than OpenAI's translate both ways inside `send`.
"""

from __future__ import annotations

from typing import Protocol

from sidecar.call import Attempt, Call, Reply
from sidecar.config.routing import ProviderSettings
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.providers.anthropic import AnthropicProvider
from sidecar.upstream.providers.openai import OpenAIProvider

__all__ = ["AnthropicProvider", "OpenAIProvider", "Provider", "make_provider"]


class Provider(Protocol):
    name: str
    base_url: str

    def upstream_model(self, model: str) -> str:
        """The name this provider knows `model` by."""
        ...

    async def send(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        """One attempt at a model endpoint: the answer in OpenAI's shape."""
        ...

    async def forward(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        """One attempt at any other /v1 path: bodies stream through untouched both ways."""
        ...


def make_provider(settings: ProviderSettings, *, local_auth: bool, proxy: str | None = None
                  ) -> Provider:
    """The provider for one `providers` entry, by its `format`. `proxy`: the egress proxy
    when the entry sets none."""
    cls = AnthropicProvider if settings.format == "anthropic" else OpenAIProvider
    return cls(settings.name, settings.base_url,
               api_key=settings.api_key.get_secret_value() if settings.api_key else None,
               headers=settings.headers.items(), strip_prefix=settings.strip_prefix,
               local_auth=local_auth, proxy=settings.proxy or proxy)
