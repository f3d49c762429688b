"""Where a provider's prompt cache needs breakpoints the client did not set: the rule, on both
body shapes (Anthropic's Messages request, and OpenAI's chat request as OpenRouter takes it).

The rule (docs/prompt-cache.md says why):

    stand down   the client set a breakpoint anywhere (`cache_control` on the request, a tool, a
                 message, a block, a tool result's block): its placement is the client's
    marker 1     the last system block (the system prompt, after the tools it caches too); with
                 no system prompt, the last tool (Anthropic form only)
    marker 2     the last cacheable block of the conversation before the newest user turn (an
                 agent's tool results are a user turn: OpenAI's `tool` messages count as one)
    length       a marker goes on only when the prefix it closes (tools, system, then messages,
                 Anthropic's order) reaches the model's minimum cacheable length (`minimum`),
                 estimated at CHARS_PER_TOKEN characters a token
    never on     blocks Anthropic refuses to mark: empty text, thinking, redacted_thinking
    at most      MAX_BREAKPOINTS (Anthropic's limit, tools counted); the rule adds two at most,
                 and only when the client set none

The body is never edited in place: the dicts and lists on the path to each marked block are
copied, everything else is shared with the input (the Call's body stays the client's: its cache
key and its ledger row never see a marker).
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_BREAKPOINTS = 4
# Anthropic counts about 3.5 characters a token for English, fewer for code and JSON. Counting
# 3 errs toward placing a marker: one on a prefix a little short of the minimum costs nothing
# (Anthropic caches nothing and bills nothing extra), one left off a long prefix costs every
# later turn its cache reads.
CHARS_PER_TOKEN = 3
# An image or a document block counts as this many tokens: an image at Anthropic's default
# resolution is at most about 1,600 (width x height / 750); a PDF page is more.
NON_TEXT_TOKENS = 1600
DEFAULT_MINIMUM = 1024
# Anthropic's minimum cacheable prompt length by model family, tokens: first substring of the
# model's name (lower case, dots as dashes) that matches wins; every other Claude model 1024
# (Sonnet 4.5, 4, 3.7, Opus 4.1, 4, 3). Below it a marker caches nothing.
MINIMUMS = (("haiku-4", 4096), ("opus-4-5", 4096), ("opus-4-6", 4096), ("sonnet-4-6", 2048),
            ("haiku", 2048))
_UNMARKABLE = frozenset(("thinking", "redacted_thinking"))
_NON_TEXT = frozenset(("image", "document", "image_url", "file", "input_audio"))

Body = dict[str, Any]


def is_anthropic_family(model: str) -> bool:
    return model.startswith("anthropic/") or "claude" in model.lower()


def minimum_tokens(model: str) -> int:
    name = model.lower().replace(".", "-")
    for part, tokens in MINIMUMS:
        if part in name:
            return tokens
    return DEFAULT_MINIMUM


def _ephemeral() -> dict[str, str]:
    return {"type": "ephemeral"}


def _marked(block: Any) -> bool:
    # Anthropic's marker, and OpenAI's (GPT-5.6+, which OpenRouter translates to Anthropic's);
    # written out, not looped over: it runs for every block of the request
    return isinstance(block, dict) and (block.get("cache_control") is not None
                                        or block.get("prompt_cache_breakpoint") is not None)


def _any_marked(blocks: Any) -> bool:
    if not isinstance(blocks, list):
        return False
    for block in blocks:
        if _marked(block):
            return True
        if isinstance(block, dict) and _any_marked(block.get("content")):  # tool results
            return True
    return False


def client_marked(body: Body) -> bool:
    """A breakpoint of the client's own, in either shape (OpenAI's messages or Anthropic's
    system and messages; a marker on a whole message counts too). Scan the client's body
    rather than a translation of it: 5 µs for an agent's 59 kB chat, where its Anthropic
    translation (one block per part) takes 17 and a byte search for the word 18."""
    if _marked(body) or _any_marked(body.get("tools")) or _any_marked(body.get("system")):
        return True
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    for message in messages:
        if isinstance(message, dict) and (
                _marked(message) or (type(content := message.get("content")) is list
                                     and _any_marked(content))):
            return True
    return False


# --- sizes ----------------------------------------------------------------------------------

def _block_chars(block: Any) -> int:
    if isinstance(block, str):
        return len(block)
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return len(text) if isinstance(text, str) else 0
    if kind in _NON_TEXT:
        return NON_TEXT_TOKENS * CHARS_PER_TOKEN
    if kind == "tool_use":
        return len(orjson.dumps(block.get("input"))) + len(str(block.get("name", "")))
    if kind == "tool_result":
        return _content_chars(block.get("content"))
    if kind == "thinking":
        thought = block.get("thinking")
        return len(thought) if isinstance(thought, str) else 0
    return 0


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(_block_chars(block) for block in content)
    return 0


def _message_chars(message: Any) -> int:
    if not isinstance(message, dict):
        return 0
    chars = _content_chars(message.get("content"))
    calls = message.get("tool_calls")  # OpenAI's shape
    if isinstance(calls, list):
        chars += len(orjson.dumps(calls))
    return chars


def _tools_chars(tools: Any, need: int) -> int:
    chars = 0
    if isinstance(tools, list):
        for tool in tools:
            chars += len(orjson.dumps(tool))
            if chars >= need:
                break
    return chars


# --- where a marker can go --------------------------------------------------------------------

def _markable(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") in _UNMARKABLE:
        return False
    if block.get("type") == "text":
        return isinstance(block.get("text"), str) and bool(block["text"])
    return isinstance(block.get("type"), str)


def _last_markable(content: Any, *, text_only: bool) -> int | None:
    """The index of the content's last block a marker can go on; -1 for non-empty string
    content (it becomes one text block); None when there is none."""
    if isinstance(content, str):
        return -1 if content else None
    if not isinstance(content, list):
        return None
    for index in range(len(content) - 1, -1, -1):
        block = content[index]
        if _markable(block) and (not text_only or block.get("type") == "text"):
            return index
    return None


def _with_marker(message: dict[str, Any], index: int) -> dict[str, Any]:
    """A copy of `message` whose content block `index` (-1: the string content) is marked."""
    content = message["content"]
    if index == -1:
        return {**message, "content": [{"type": "text", "text": content,
                                        "cache_control": _ephemeral()}]}
    blocks = list(content)
    blocks[index] = {**blocks[index], "cache_control": _ephemeral()}
    return {**message, "content": blocks}


def _newest_user_turn(messages: list[Any], roles: tuple[str, ...]) -> int:
    """Where the newest user turn starts (len(messages) when there is none): the last message
    of one of `roles`, with the run of tool messages it ends (one turn in Anthropic's form)."""
    index = len(messages) - 1
    while index >= 0 and not (isinstance(messages[index], dict)
                              and messages[index].get("role") in roles):
        index -= 1
    if index < 0:
        return len(messages)
    while index > 0 and messages[index].get("role") == "tool" and isinstance(
            messages[index - 1], dict) and messages[index - 1].get("role") == "tool":
        index -= 1
    return index


def _conversation_marker(messages: list[Any], before: int, skip_roles: tuple[str, ...],
                         *, text_only: bool) -> tuple[int, int] | None:
    """(message, block) of the last markable block before the newest user turn."""
    for m in range(before - 1, -1, -1):
        message = messages[m]
        if not isinstance(message, dict) or message.get("role") in skip_roles:
            continue
        index = _last_markable(message.get("content"), text_only=text_only)
        if index is not None:
            return m, index
    return None


def _prefix_chars(messages: list[Any], m: int, index: int, skip_roles: tuple[str, ...],
                  start: int, need: int) -> int:
    """Characters up to and with block `index` of message `m`, from `start` (what precedes the
    messages); stops counting once `need` is reached."""
    chars = start
    for message in messages[:m]:
        if chars >= need:
            return chars
        if isinstance(message, dict) and message.get("role") not in skip_roles:
            chars += _message_chars(message)
    content = messages[m].get("content")
    if index == -1 or not isinstance(content, list):
        return chars + _content_chars(content)
    return chars + sum(_block_chars(block) for block in content[:index + 1])


# --- the two shapes -------------------------------------------------------------------------

def mark_anthropic(body: Body, minimum: int, *, marked: bool | None = None
                   ) -> tuple[Body, int]:
    """The Anthropic Messages request with the rule's markers, and how many were added.
    `marked`: whether the client set a breakpoint, when the caller scanned the body it was
    translated from (else this body is scanned)."""
    messages = body.get("messages")
    if marked is None:
        marked = client_marked(body)
    if not isinstance(messages, list) or marked:
        return body, 0
    need = minimum * CHARS_PER_TOKEN
    out = body
    added = 0
    tools = body.get("tools")
    chars = _tools_chars(tools, need)
    system = body.get("system")
    chars += _content_chars(system) if chars < need else 0
    index = _last_markable(system, text_only=True)
    if index is not None and chars >= need:
        out = {**body, "system": _with_marker({"content": system}, index)["content"]}
        added += 1
    elif not system and isinstance(tools, list) and tools and chars >= need:
        out = {**body, "tools": [*tools[:-1], {**tools[-1], "cache_control": _ephemeral()}]}
        added += 1
    turn = _newest_user_turn(messages, ("user",))
    found = _conversation_marker(messages, turn, (), text_only=False)
    if found is not None and _prefix_chars(messages, *found, (), chars, need) >= need:
        edited = list(messages)
        edited[found[0]] = _with_marker(messages[found[0]], found[1])
        out = {**out, "messages": edited}
        added += 1
    return out, added


_SYSTEM_ROLES = ("system", "developer")


def mark_openai_chat(body: Body, minimum: int, *, marked: bool | None = None
                     ) -> tuple[Body, int]:
    """The OpenAI chat request (for OpenRouter, which passes `cache_control` on content parts
    to Anthropic) with the rule's markers, and how many were added. String content becomes one
    text part to carry a marker; only text parts are marked; tools are left alone (a system
    marker or the conversation's covers them: they come first in the prefix). `marked` as for
    mark_anthropic (a chat translated from Anthropic's messages)."""
    messages = body.get("messages")
    if marked is None:
        marked = client_marked(body)
    if not isinstance(messages, list) or marked:
        return body, 0
    need = minimum * CHARS_PER_TOKEN
    chars = _tools_chars(body.get("tools"), need)
    last_system: tuple[int, int] | None = None
    for m, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") in _SYSTEM_ROLES:
            chars += _content_chars(message.get("content")) if chars < need else 0
            index = _last_markable(message.get("content"), text_only=True)
            if index is not None:
                last_system = m, index
    edited: list[Any] | None = None
    if last_system is not None and chars >= need:
        edited = list(messages)
        edited[last_system[0]] = _with_marker(messages[last_system[0]], last_system[1])
    turn = _newest_user_turn(messages, ("user", "tool"))
    found = _conversation_marker(messages, turn, _SYSTEM_ROLES, text_only=True)
    added = int(edited is not None)
    if found is not None and _prefix_chars(messages, *found, _SYSTEM_ROLES, chars,
                                           need) >= need:
        edited = edited or list(messages)
        edited[found[0]] = _with_marker(messages[found[0]], found[1])
        added += 1
    return ({**body, "messages": edited} if edited is not None else body), added
