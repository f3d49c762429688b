"""A provider's prompt cache, emulated: Anthropic's documented rules, for the fake upstreams of
the tests (tests/fakes/anthropic.py, tests/fakes/upstream.py) and `python -m bench.prompt_cache`.

A request is read as blocks in Anthropic's prefix order: the tools, the system prompt, then each
message's content blocks (a string content is one text block, as Anthropic reads it; OpenAI's
system messages go first, as OpenRouter moves them). A block's size is its canonical JSON
(without `cache_control`) at CHARS_PER_TOKEN characters a token: the fake's tokenizer. The
breakpoints are the blocks marked with `cache_control` (a request-level `cache_control`, as
Anthropic's automatic caching: the last block).

Billing, per request:
- read: the longest prefix an earlier request wrote that ends at a breakpoint or at one of the
  LOOKBACK blocks before it (Anthropic looks back 20 blocks from each breakpoint);
- written: the prefix up to the last breakpoint beyond what was read, when it reaches the
  minimum cacheable length (shorter ones are not cached, and not billed as writes); every
  breakpoint's prefix that long is cached from then on;
- input: every other prompt token.
Entries never expire (a test runs in seconds; Anthropic keeps one 5 minutes after its last use).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

import orjson

CHARS_PER_TOKEN = 4
LOOKBACK = 20
_SYSTEM_ROLES = ("system", "developer")

Block = tuple[bytes, bool]  # (canonical bytes, marked)


@dataclass(frozen=True, slots=True)
class Billed:
    input: int  # prompt tokens neither read nor written
    read: int
    written: int

    @property
    def prompt(self) -> int:
        return self.input + self.read + self.written


@dataclass
class ProviderCache:
    minimum: int = 1024  # tokens
    entries: set[bytes] = field(default_factory=set)

    def bill_anthropic(self, body: dict[str, Any]) -> Billed:
        blocks = [_block("tool", tool) for tool in body.get("tools") or ()]
        blocks += [_block("system", b) for b in _content(body.get("system"))]
        for message in body.get("messages") or ():
            blocks += [_block(message.get("role", ""), b) for b in _content(message.get("content"))]
        return self._bill(blocks, automatic=body.get("cache_control") is not None)

    def bill_openai(self, body: dict[str, Any]) -> Billed:
        messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
        ordered = ([m for m in messages if m.get("role") in _SYSTEM_ROLES]
                   + [m for m in messages if m.get("role") not in _SYSTEM_ROLES])
        blocks = [_block("tool", tool) for tool in body.get("tools") or ()]
        for message in ordered:
            role = "system" if message.get("role") in _SYSTEM_ROLES else message.get("role", "")
            blocks += [_block(role, b) for b in _content(message.get("content"))]
            if message.get("tool_calls"):
                blocks.append(_block(role, {"tool_calls": message["tool_calls"]}))
        return self._bill(blocks, automatic=body.get("cache_control") is not None)

    def _bill(self, blocks: list[Block], *, automatic: bool) -> Billed:
        hashes: list[bytes] = []
        totals: list[int] = []
        digest, total = b"", 0
        for data, _ in blocks:
            digest = blake2b(digest + data, digest_size=16).digest()
            total += -(-len(data) // CHARS_PER_TOKEN)
            hashes.append(digest)
            totals.append(total)
        breakpoints = [i for i, (_, marked) in enumerate(blocks) if marked]
        if automatic and blocks:
            breakpoints.append(len(blocks) - 1)
        if not breakpoints:
            return Billed(total, 0, 0)
        read_end = -1
        for point in breakpoints:
            for j in range(point, max(-1, point - LOOKBACK), -1):
                if hashes[j] in self.entries:
                    read_end = max(read_end, j)
                    break
        read = totals[read_end] if read_end >= 0 else 0
        last = breakpoints[-1]
        written = 0
        if totals[last] >= self.minimum and last > read_end:
            written = totals[last] - read
        for point in breakpoints:
            if totals[point] >= self.minimum:
                self.entries.add(hashes[point])
        return Billed(total - read - written, read, written)


def _content(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _block(role: str, block: Any) -> Block:
    if not isinstance(block, dict):
        return orjson.dumps([role, block]), False
    marked = block.get("cache_control") is not None
    plain = {k: v for k, v in block.items() if k != "cache_control"}
    return orjson.dumps([role, plain], option=orjson.OPT_SORT_KEYS), marked


def marker_paths(body: dict[str, Any]) -> list[str]:
    """Where a request carries `cache_control`, in either shape: "cache_control" (the request),
    "tools[2]", "system[0]", "messages[3]" (the message itself), "messages[3].content[0]",
    "messages[3].content[0].content[1]" (a tool result's block)."""
    found = ["cache_control"] if body.get("cache_control") is not None else []
    for name in ("tools", "system"):
        items = body.get(name)
        if isinstance(items, list):
            found += [f"{name}[{i}]" for i, item in enumerate(items) if _has(item)]
    for m, message in enumerate(body.get("messages") or ()):
        if _has(message):
            found.append(f"messages[{m}]")
        content = message.get("content") if isinstance(message, dict) else None
        for j, block in enumerate(content if isinstance(content, list) else ()):
            if _has(block):
                found.append(f"messages[{m}].content[{j}]")
            inner = block.get("content") if isinstance(block, dict) else None
            found += [f"messages[{m}].content[{j}].content[{k}]"
                      for k, part in enumerate(inner if isinstance(inner, list) else ())
                      if _has(part)]
    return found


def _has(item: Any) -> bool:
    return isinstance(item, dict) and item.get("cache_control") is not None
