"""OpenAI chat messages → Anthropic's `system` and `messages`.

    system / developer      → top-level `system` text blocks, in order (Anthropic has no system
                              turns: a system message in mid-conversation moves to the top)
    user                    → a user turn: text, images (data URLs → base64 sources, http(s)
                              URLs → url sources), PDFs (`file` parts with `file_data`)
    assistant               → thinking blocks sent back (`reasoning_details`), text, and one
                              `tool_use` block per `tool_calls` entry (arguments parsed)
    tool                    → a `tool_result` block in a user turn; consecutive tool messages
                              share one user turn, as Anthropic wants all results of one turn
                              together

`cache_control` on a content part is kept on its block (Anthropic's prompt caching, as
OpenRouter passes it). Anything that cannot be expressed is a 400 naming where it is.
"""

from __future__ import annotations

from typing import Any

import orjson

from sidecar.errors import InvalidRequest

Block = dict[str, Any]
Message = dict[str, Any]
REASONING_FORMAT = "anthropic-claude-v1"  # OpenRouter's format tag for Claude's reasoning


def convert_messages(messages: Any) -> tuple[list[Block], list[Message]]:
    """The `system` blocks and the `messages` of an Anthropic request."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array of chat messages.",
                             param="messages")
    system: list[Block] = []
    out: list[Message] = []
    results: list[Block] | None = None  # the tool_result blocks of the current user turn
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object.", param=where)
        role = message.get("role")
        if role == "tool":
            block = _tool_result(message, where)
            if results is None:
                results = [block]
                out.append({"role": "user", "content": results})
            else:
                results.append(block)
            continue
        results = None
        if role in ("system", "developer"):
            system.extend(text_blocks(message.get("content"), f"{where}.content"))
        elif role == "user":
            out.append({"role": "user", "content": _user_content(message.get("content"),
                                                                 f"{where}.content")})
        elif role == "assistant":
            if turn := _assistant(message, where):
                out.append(turn)
        else:
            raise InvalidRequest(
                f"{where}.role '{role}' is not supported for Anthropic models; use system, "
                "developer, user, assistant or tool (legacy 'function' messages: send tools "
                "and tool messages instead).", param=f"{where}.role")
    return system, out


def text_blocks(content: Any, where: str) -> list[Block]:
    """Content that may only hold text (system prompts, tool results) as text blocks."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or an array of text parts.",
                             param=where)
    blocks = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") != "text":
            raise InvalidRequest(f"{where}[{j}] must be a text part here.", param=f"{where}[{j}]")
        blocks.append(_text(part))
    return blocks


def _user_content(content: Any, where: str) -> str | list[Block]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or an array of content parts.",
                             param=where)
    return [_part(part, f"{where}[{j}]") for j, part in enumerate(content)]


def _part(part: Any, where: str) -> Block:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        return _text(part)
    if kind == "image_url":
        block = image_block(part.get("image_url"), f"{where}.image_url")
    elif kind == "file":
        block = _document(part.get("file"), f"{where}.file")
    else:
        raise InvalidRequest(f"{where}: content parts of type '{kind}' have no Anthropic "
                             "equivalent; send text, image_url or file (PDF) parts.",
                             param=where)
    return _keep_cache_control(part, block)


def _text(part: dict[str, Any]) -> Block:
    text = part.get("text")
    return _keep_cache_control(part, {"type": "text", "text": text if isinstance(text, str)
                                      else ""})


def _keep_cache_control(part: dict[str, Any], block: Block) -> Block:
    if (cache := part.get("cache_control")) is not None:
        block["cache_control"] = cache
    return block


def image_block(image: Any, where: str) -> Block:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequest(f"{where}.url must be a string.", param=f"{where}.url")
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{where}.url")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type,
                                            "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"{where}.url must be an http(s) URL or a base64 data URL "
                         "(data:image/png;base64,...).", param=f"{where}.url")


def _document(file: Any, where: str) -> Block:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str):
        raise InvalidRequest(f"{where}: only inline files (file_data as a base64 data URL) can "
                             "go to Anthropic; an OpenAI file_id means nothing there.",
                             param=where)
    media_type, payload = _data_url(data, f"{where}.file_data")
    return {"type": "document", "source": {"type": "base64", "media_type": media_type,
                                           "data": payload}}


def _data_url(url: str, where: str) -> tuple[str, str]:
    header, comma, data = url[5:].partition(",")
    if not comma or not header.endswith(";base64"):
        raise InvalidRequest(f"{where} is a data URL but not a base64 one "
                             "(data:<media type>;base64,<data>).", param=where)
    return header[:-7], data


def _assistant(message: dict[str, Any], where: str) -> Message | None:
    """An assistant turn; None when it says nothing (Anthropic refuses empty turns)."""
    blocks = _thinking_blocks(message)
    content = message.get("content")
    if isinstance(content, str):
        if content:
            if not blocks and not message.get("tool_calls"):
                return {"role": "assistant", "content": content}
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "refusal":
                blocks.append({"type": "text", "text": str(part.get("refusal") or "")})
            elif kind == "text":
                blocks.append(_text(part))
            else:
                raise InvalidRequest(f"{where}.content[{j}] must be a text or refusal part.",
                                     param=f"{where}.content[{j}]")
    elif content is not None:
        raise InvalidRequest(f"{where}.content must be a string, an array or null.",
                             param=f"{where}.content")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls must be an array.", param=f"{where}.tool_calls")
    blocks.extend(_tool_use(call, f"{where}.tool_calls[{k}]") for k, call in enumerate(calls))
    return {"role": "assistant", "content": blocks} if blocks else None


def _tool_use(call: Any, where: str) -> Block:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"{where} must be a function call with a name.", param=where)
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"{where}.function.arguments must be a JSON object (Anthropic "
                             "keeps tool input as an object).", param=f"{where}.function.arguments")
    return {"type": "tool_use", "id": str(call.get("id") or ""), "name": function["name"],
            "input": parsed}


def _tool_result(message: dict[str, Any], where: str) -> Block:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise InvalidRequest(f"{where}.tool_call_id is required on a tool message.",
                             param=f"{where}.tool_call_id")
    content = message.get("content")
    block: Block = {"type": "tool_result", "tool_use_id": tool_call_id}
    if isinstance(content, list):
        block["content"] = [_part(part, f"{where}.content[{j}]")
                            for j, part in enumerate(content)]
    elif content:
        block["content"] = content if isinstance(content, str) else orjson.dumps(content).decode()
    return block


def _thinking_blocks(message: dict[str, Any]) -> list[Block]:
    """Thinking sent back: Anthropic needs it, signature and all, before a tool_use it led to.
    Taken from OpenRouter's `reasoning_details`; a streamed answer's signature detail carries
    no text, which is then the message's `reasoning` / `reasoning_content`."""
    details = message.get("reasoning_details")
    if not isinstance(details, list):
        return []
    text = message.get("reasoning") or message.get("reasoning_content")
    blocks: list[Block] = []
    for detail in details:
        if not isinstance(detail, dict):
            continue
        kind = detail.get("type")
        if kind == "reasoning.text" and isinstance(signature := detail.get("signature"), str):
            thinking = detail.get("text")
            if not isinstance(thinking, str):
                thinking = text if isinstance(text, str) else ""
            blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
        elif kind == "reasoning.encrypted" and isinstance(data := detail.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": data})
    return blocks
