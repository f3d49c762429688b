"""Anthropic's `system` and `messages` → OpenAI chat messages.

    system (string or text blocks)   → one system message, first
    user: text, image, document      → a user message: text parts, image_url parts (base64
                                       sources as data URLs, url sources as they are), PDFs as
                                       file parts (file_data), plain-text documents as text
    user: tool_result                → one `tool` message per result, before the user's other
                                       blocks (OpenAI wants the results right after the call);
                                       images a result carries follow in a user message
    assistant: text, tool_use        → one assistant message: the text, and tool_calls with
                                       the input as JSON arguments
    assistant: thinking,             → `reasoning` and `reasoning_details` (signature kept) when
      redacted_thinking                the target takes them (OpenRouter); dropped elsewhere
                                       (DeepSeek, for one, refuses reasoning sent back)

`cache_control` is kept on text parts for OpenRouter (it passes Anthropic's prompt caching on)
and dropped for other targets. Blocks of Anthropic's server tools (server_tool_use,
web_search_tool_result, ...) have no OpenAI equivalent: a 400 names where they are.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.errors import InvalidRequest

Part = dict[str, Any]
Message = dict[str, Any]
REASONING_FORMAT = "anthropic-claude-v1"  # OpenRouter's format tag for Claude's reasoning


def system_message(system: Any, cache: bool) -> Message | None:
    """The system message for Anthropic's top-level `system`, or None when there is none."""
    if system is None or system == "":
        return None
    if isinstance(system, str):
        return {"role": "system", "content": system}
    if not isinstance(system, list):
        raise InvalidRequest("'system' must be a string or an array of text blocks.",
                             param="system")
    parts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequest(f"system[{i}] must be a text block.", param=f"system[{i}]")
        parts.append(_text_part(block, cache))
    if not parts:
        return None
    if not cache:  # plain targets read a string best
        return {"role": "system", "content": "\n\n".join(p["text"] for p in parts)}
    return {"role": "system", "content": parts}


def convert_messages(messages: Any, *, cache: bool, reasoning: bool) -> list[Message]:
    """The chat messages for Anthropic's `messages`. `cache`: keep cache_control (OpenRouter);
    `reasoning`: send thinking back as reasoning_details (OpenRouter)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array of messages.",
                             param="messages")
    out: list[Message] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object.", param=where)
        role = message.get("role")
        content = message.get("content")
        if role == "user":
            out.extend(_user(content, where, cache))
        elif role == "assistant":
            out.append(_assistant(content, where, cache, reasoning))
        else:
            raise InvalidRequest(f"{where}.role must be 'user' or 'assistant' (the system "
                                 "prompt goes in the top-level 'system').", param=f"{where}.role")
    return out


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or an array of content "
                             "blocks.", param=f"{where}.content")
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{where}.content[{j}] must be a content block with a type.",
                                 param=f"{where}.content[{j}]")
    return content


def _user(content: Any, where: str, cache: bool) -> list[Message]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[Message] = []
    parts: list[Part] = []
    images: list[Part] = []  # carried by tool results: OpenAI's tool messages hold text only
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.content[{j}]"
        if block["type"] == "tool_result":
            message, carried = _tool_result(block, at, cache)
            results.append(message)
            images += carried
        else:
            parts.append(_part(block, at, cache))
    out = results
    if images or parts:
        out.append({"role": "user", "content": [*images, *parts]})
    return out


def _part(block: dict[str, Any], where: str, cache: bool) -> Part:
    kind = block["type"]
    if kind == "text":
        return _text_part(block, cache)
    if kind == "image":
        return _image_part(block.get("source"), where)
    if kind == "document":
        return _document_part(block, where)
    raise InvalidRequest(f"{where}: content blocks of type '{kind}' have no equivalent on "
                         "an OpenAI-format provider; send text, image, document, tool_use and "
                         "tool_result blocks.", param=where)


def _text_part(block: dict[str, Any], cache: bool) -> Part:
    text = block.get("text")
    part: Part = {"type": "text", "text": text if isinstance(text, str) else ""}
    if cache and (control := block.get("cache_control")) is not None:
        part["cache_control"] = control
    return part


def _image_part(source: Any, where: str) -> Part:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(data := source.get("data"), str):
        media = source.get("media_type") or "image/png"
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if kind == "url" and isinstance(url := source.get("url"), str):
        return {"type": "image_url", "image_url": {"url": url}}
    raise InvalidRequest(f"{where}.source must be a base64 or url image source (a file_id "
                         "means nothing to an OpenAI-format provider).", param=f"{where}.source")


def _document_part(block: dict[str, Any], where: str) -> Part:
    found = block.get("source")
    source: dict[str, Any] = found if isinstance(found, dict) else {}
    kind = source.get("type")
    if kind == "text" and isinstance(data := source.get("data"), str):
        return {"type": "text", "text": data}
    name = block.get("title") if isinstance(block.get("title"), str) else "document.pdf"
    if kind == "base64" and isinstance(data := source.get("data"), str):
        media = source.get("media_type") or "application/pdf"
        return {"type": "file", "file": {"filename": name,
                                         "file_data": f"data:{media};base64,{data}"}}
    if kind == "url" and isinstance(url := source.get("url"), str):
        return {"type": "file", "file": {"filename": name, "file_data": url}}
    raise InvalidRequest(f"{where}.source must be a base64, url or text document source.",
                         param=f"{where}.source")


def _tool_result(block: dict[str, Any], where: str, cache: bool) -> tuple[Message, list[Part]]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise InvalidRequest(f"{where}.tool_use_id is required on a tool_result block.",
                             param=f"{where}.tool_use_id")
    content = block.get("content")
    images: list[Part] = []
    text: str | list[Part]
    if content is None or isinstance(content, str):
        text = content or ""
    elif isinstance(content, list):
        parts: list[Part] = []
        for k, inner in enumerate(_blocks(content, where)):
            part = _part(inner, f"{where}.content[{k}]", cache)
            (images if part["type"] != "text" else parts).append(part)
        text = parts if any("cache_control" in p for p in parts) else "".join(
            p["text"] for p in parts)
    else:
        raise InvalidRequest(f"{where}.content must be a string or an array of blocks.",
                             param=f"{where}.content")
    return {"role": "tool", "tool_call_id": tool_use_id, "content": text}, images


def _assistant(content: Any, where: str, cache: bool, reasoning: bool) -> Message:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    thoughts: list[str] = []
    details: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        kind = block["type"]
        if kind == "text":
            text = block.get("text")
            texts.append(text if isinstance(text, str) else "")
        elif kind == "tool_use":
            calls.append(_tool_call(block, f"{where}.content[{j}]"))
        elif kind == "thinking":
            found = block.get("thinking")
            thought = found if isinstance(found, str) else ""
            thoughts.append(thought)
            details.append({"type": "reasoning.text", "text": thought,
                            "signature": block.get("signature") or None,
                            "format": REASONING_FORMAT, "index": len(details)})
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data"),
                            "format": REASONING_FORMAT, "index": len(details)})
        else:
            raise InvalidRequest(f"{where}.content[{j}]: assistant blocks of type '{kind}' "
                                 "have no equivalent on an OpenAI-format provider.",
                                 param=f"{where}.content[{j}]")
    out: Message = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        out["tool_calls"] = calls
    if reasoning and details:
        out["reasoning"] = "".join(thoughts)
        out["reasoning_details"] = details
    return out


def _tool_call(block: dict[str, Any], where: str) -> dict[str, Any]:
    name, call_id = block.get("name"), block.get("id")
    if not isinstance(name, str) or not isinstance(call_id, str):
        raise InvalidRequest(f"{where}: a tool_use block needs an id and a name.", param=where)
    tool_input = block.get("input")
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": orjson.dumps(
                tool_input if tool_input is not None else {}).decode()}}
