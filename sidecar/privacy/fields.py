"""Where a request's content travels upstream, per endpoint: the strings redaction must see.

    chat/completions  messages[].content (a string, or its text parts), every role: system,
                      developer, user, assistant, tool (tool results); assistant tool_calls[]
                      .function.arguments and the legacy function_call.arguments; reasoning
    completions       prompt (a string or a list of strings), suffix
    embeddings        input (a string or a list of strings)
    responses         instructions; input (a string, or items: message content and its
                      input_text/output_text parts, function_call arguments,
                      function_call_output output, reasoning summaries)
    messages          Anthropic's Messages API (and its count_tokens): system, text blocks,
                      tool_use inputs, tool_result content, metadata.user_id (messages/fields.py)
    images/generations, images/edits   prompt
    audio/speech      input, instructions
    audio/transcriptions, audio/translations   prompt (a form field)
    moderations       input (a string, a list of strings, or parts: their text)
    every endpoint    user (often an email address)

Untouched: image, audio and file parts (their bytes are not text; a form's files included),
token-id inputs (lists of integers), tool *definitions* (written by the developer, not the
user), and every field that is not content (model, temperature, ...).

A slot is (container, key, is_json): `container[key]` is a string; `is_json` marks tool-call
arguments, which are JSON documents in a string and are redacted value by value so that they
stay valid JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sidecar.messages.fields import message_slots

Slot = tuple[Any, Any, bool]
# The media endpoints' text fields (JSON or form: a form's text fields are a dict of strings too)
_PROMPTS = {"images/generations": ("prompt",), "images/edits": ("prompt",),
            "audio/speech": ("input", "instructions"), "audio/transcriptions": ("prompt",),
            "audio/translations": ("prompt",)}
_TEXT_PARTS = frozenset({"text", "input_text", "output_text", "summary_text", "reasoning_text"})


def text_slots(endpoint: str | None, body: dict[str, Any]) -> Iterator[Slot]:
    if endpoint == "chat/completions":
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if isinstance(message, dict):
                    yield from _message(message)
    elif endpoint == "completions":
        yield from _strings(body, "prompt")
        yield from _strings(body, "suffix")
    elif endpoint == "embeddings":
        yield from _strings(body, "input")
    elif endpoint == "responses":
        yield from _strings(body, "instructions")
        items = body.get("input")
        if isinstance(items, str):
            yield body, "input", False
        elif isinstance(items, list):
            for item in items:
                if isinstance(item, dict):
                    yield from _response_item(item)
    elif endpoint in ("messages", "messages/count_tokens"):
        yield from message_slots(body)
    elif endpoint in _PROMPTS:
        for key in _PROMPTS[endpoint]:
            yield from _strings(body, key)
    elif endpoint == "moderations":
        yield from _strings(body, "input")
        items = body.get("input")
        if isinstance(items, list):
            for part in items:
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(
                        part.get("text"), str):
                    yield part, "text", False
    if isinstance(body.get("user"), str):
        yield body, "user", False


def _strings(container: dict[str, Any], key: str) -> Iterator[Slot]:
    """A string, or each string of a list (token-id lists are left alone)."""
    value = container.get(key)
    if isinstance(value, str):
        yield container, key, False
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if isinstance(item, str):
                yield value, index, False


def _content(container: dict[str, Any], key: str) -> Iterator[Slot]:
    value = container.get(key)
    if isinstance(value, str):
        yield container, key, False
    elif isinstance(value, list):
        for part in value:
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS and isinstance(
                    part.get("text"), str):
                yield part, "text", False


def _message(message: dict[str, Any]) -> Iterator[Slot]:
    yield from _content(message, "content")
    for key in ("reasoning", "reasoning_content", "refusal"):
        if isinstance(message.get(key), str):
            yield message, key, False
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict):
                yield from _arguments(call.get("function"))
    yield from _arguments(message.get("function_call"))


def _arguments(function: Any) -> Iterator[Slot]:
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        yield function, "arguments", True


def _response_item(item: dict[str, Any]) -> Iterator[Slot]:
    kind = item.get("type", "message")
    if kind == "message":
        yield from _content(item, "content")
    elif kind == "function_call":
        yield from _arguments(item)
    elif kind in ("function_call_output", "custom_tool_call_output"):
        yield from _content(item, "output")
    elif kind == "custom_tool_call":
        yield from _strings(item, "input")
    elif kind == "reasoning":
        yield from _content(item, "summary")
