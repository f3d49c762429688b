"""Providers: how one upstream is asked, and how its answer comes back.

A provider renders its own request for one attempt (path, credentials, body changes such as the
model name it knows the model by) without touching `call.body`, sends it through the shared
`UpstreamClient`, and returns a Reply in OpenAI's shape: an error Reply, never an exception,
when the transport fails. Formats other than OpenAI's translate both ways inside `send`.

`make_provider` builds one from its settings, by `format`. Each format's class is imported only
when a provider of that format is configured (the Anthropic translation is not loaded for
OpenAI-only configs).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Protocol

from sidecar.call import Attempt, Call, Reply
from sidecar.config.base import secret_values
from sidecar.config.providers import ProviderSettings
from sidecar.upstream.client import UpstreamClient
from sidecar.upstream.keys import KeyRing
from sidecar.upstream.providers.openai import OpenAIProvider

__all__ = ["OpenAIProvider", "Provider", "make_provider"]


class Provider(Protocol):
    name: str
    base_url: str
    keys: KeyRing | None  # the provider's own keys; None: the client's key passes through

    def upstream_model(self, model: str) -> str:
        """The name this provider knows `model` by."""
        ...

    async def send(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        """One attempt at a model endpoint: the answer in OpenAI's shape."""
        ...

    async def forward(self, client: UpstreamClient, call: Call, attempt: Attempt) -> Reply:
        """One attempt at any other /v1 path: bodies stream through untouched both ways."""
        ...


class ProviderClass(Protocol):
    def __call__(self, name: str, base_url: str, *, keys: KeyRing | None,
                 headers: Iterable[tuple[str, str]], strip_prefix: bool, local_auth: bool,
                 proxy: str | None) -> Provider: ...


def _openai() -> ProviderClass:
    return OpenAIProvider


def _anthropic() -> ProviderClass:
    module = importlib.import_module("sidecar.upstream.providers.anthropic")
    cls: ProviderClass = module.AnthropicProvider
    return cls


FORMATS: dict[str, Callable[[], ProviderClass]] = {"openai": _openai, "anthropic": _anthropic}


def make_provider(settings: ProviderSettings, *, local_auth: bool, proxy: str | None = None,
                  on_key_change: Callable[[str, int], None] | None = None) -> Provider:
    """The provider these settings describe. `local_auth`: clients send local keys, which never
    go upstream; `proxy`: the egress proxy resolved at start (egress.py), or None;
    `on_key_change`: told when a later key of the provider's list comes into use."""
    cls = FORMATS[settings.format]()
    keys = secret_values(settings.api_key)
    ring = KeyRing(settings.name, keys, on_key_change) if keys else None
    return cls(settings.name, settings.base_url, keys=ring,
               headers=settings.headers.items(), strip_prefix=settings.strip_prefix,
               local_auth=local_auth, proxy=proxy)
