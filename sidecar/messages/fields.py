"""Where a Messages body's content travels upstream: the strings redaction must see.

    system                 a string, or its text blocks
    messages[].content     a string, or blocks: text; tool_use `input` (every string in it,
                           at any depth: the arguments the model wrote, which the client
                           sends back); tool_result content (a string, or its text blocks);
                           documents with a plain-text source
    metadata.user_id       an end-user id (often an email address)

Untouched: image and PDF data (their bytes are not text), tool definitions (written by the
developer), and thinking blocks: the provider signs them, so a changed one is refused
("invalid signature"), and they hold only what the model wrote from the redacted prompt; the
restorer leaves them as the model wrote them too (restorer.py), so they go back unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Slot = tuple[Any, Any, bool]


def message_slots(body: dict[str, Any]) -> Iterator[Slot]:
    yield from _text(body, "system")
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if isinstance(message, dict):
            yield from _blocks(message, "content")
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        yield metadata, "user_id", False


def _text(container: dict[str, Any], key: str) -> Iterator[Slot]:
    """A string, or the text of each text block of a list."""
    value = container.get(key)
    if isinstance(value, str):
        yield container, key, False
    elif isinstance(value, list):
        for block in value:
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(
                    block.get("text"), str):
                yield block, "text", False


def _blocks(container: dict[str, Any], key: str) -> Iterator[Slot]:
    value = container.get(key)
    if isinstance(value, str):
        yield container, key, False
        return
    for block in value if isinstance(value, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            yield block, "text", False
        elif kind == "tool_use":
            yield from strings_in(block, "input")
        elif kind == "tool_result":
            yield from _blocks(block, "content")
        elif kind == "document" and isinstance(source := block.get("source"), dict) and (
                source.get("type") == "text" and isinstance(source.get("data"), str)):
            yield source, "data", False


def strings_in(container: Any, key: Any) -> Iterator[Slot]:
    """Every string in `container[key]`, at any depth (a tool's input object)."""
    stack = [(container, key)]
    while stack:
        parent, name = stack.pop()
        value = parent[name]
        if isinstance(value, str):
            yield parent, name, False
        elif isinstance(value, dict):
            stack.extend((value, k) for k in value)
        elif isinstance(value, list):
            stack.extend((value, i) for i in range(len(value)))


def base64_images(body: dict[str, Any]) -> tuple[int, int]:
    """(images, bytes of their base64 data) in a Messages body, tool results included: an
    image costs the model its pixels' tokens, not its bytes (spend/estimate.py)."""
    count = size = 0
    stack: list[Any] = [body.get("messages")]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("type") == "image":
                source = node.get("source")
                if isinstance(source, dict) and isinstance(data := source.get("data"), str):
                    count += 1
                    size += len(data)
            elif isinstance(content := node.get("content"), list):
                stack.append(content)
    return count, size
