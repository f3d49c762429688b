"""What a request is made of, read from its body by one small function per endpoint shape.

The classifier (classify.py) never looks at a body itself: it reads a `Shape`, which each
endpoint's reader fills from the fields that endpoint has:

    chat/completions  messages[] (content: a string or text/image_url/input_audio/file parts;
                      tool_calls; role tool/function: tool results), tools[] or functions[],
                      response_format, reasoning_effort or OpenRouter's reasoning{},
                      max_completion_tokens / max_tokens
    completions       prompt (a string or a list of strings), max_tokens
    responses         instructions, input (a string or items: messages with input_text /
                      input_image / input_file parts, function_call, function_call_output),
                      tools[], text.format, reasoning{}, max_output_tokens
    messages          Anthropic's Messages (and messages/count_tokens): system (a string or
                      text blocks), messages[] (text, image, document, tool_use, tool_result
                      blocks), tools[], thinking{}, output_format, max_tokens

An endpoint with no reader (embeddings, images, audio) cannot be routed by a tier: `read`
returns None and the stage says so. Malformed fields are skipped, never raised on: the upstream
answers a bad body as it would without the router.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["READERS", "Shape", "read"]

_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})


@dataclass(slots=True)
class Shape:
    texts: list[str] = field(default_factory=list)  # every text the model reads, in order
    task: str = ""  # the last user message's text: what is asked now
    system: str = ""  # system / developer / instructions text
    messages: int = 0  # conversation depth: messages or input items, system excluded
    tools: int = 0  # tool definitions offered
    tool_results: int = 0  # tool results in the conversation: an agent loop under way
    images: int = 0  # images and files the model must look at
    schema: str | None = None  # "json_schema" or "json_object": structured output asked
    schema_fields: int = 0  # properties at the top of a json_schema
    reasoning: str | None = None  # an explicit effort: none .. max, "budget" for a token budget
    max_output: int | None = None  # the client's own completion limit


def read(endpoint: str | None, body: dict[str, Any]) -> Shape | None:
    reader = READERS.get(endpoint or "")
    if reader is None:
        return None
    shape = Shape()
    reader(body, shape)
    return shape


# -- chat/completions -------------------------------------------------------------------------

def _chat(body: dict[str, Any], shape: Shape) -> None:
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        text = _content(message.get("content"), shape)
        if role in ("system", "developer"):
            shape.system += text
            shape.texts.append(text)
            continue
        shape.messages += 1
        if role in ("tool", "function"):
            shape.tool_results += 1
        elif role == "user":
            shape.task = text
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            for call in calls:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    shape.texts.append(function["arguments"])
        if text:
            shape.texts.append(text)
    tools = body.get("tools") or body.get("functions")
    shape.tools = len(tools) if isinstance(tools, list) else 0
    _format(body.get("response_format"), shape)
    effort = body.get("reasoning_effort")
    shape.reasoning = effort if effort in _EFFORTS else _reasoning(body.get("reasoning"))
    shape.max_output = _limit(body, "max_completion_tokens", "max_tokens")


def _content(content: Any, shape: Shape) -> str:
    """A message's text (its parts joined); images and files counted on the shape."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in _TEXT_PARTS and isinstance(text := part.get("text"), str):
            texts.append(text)
        elif kind in _IMAGE_PARTS or kind in ("file", "input_file", "document"):
            shape.images += 1
        elif kind == "tool_result":  # Anthropic: a tool's answer inside a user message
            shape.tool_results += 1
            texts.append(_content(part.get("content"), shape))
        elif kind == "tool_use" and isinstance(part.get("input"), dict):
            texts.append(str(part["input"]))
    return "\n".join(texts)


def _format(fmt: Any, shape: Shape) -> None:
    """response_format (chat) or text.format (responses)."""
    if not isinstance(fmt, dict):
        return
    kind = fmt.get("type")
    if kind == "json_object":
        shape.schema = "json_object"
    elif kind == "json_schema":
        shape.schema = "json_schema"
        inner = fmt.get("json_schema")
        holder: dict[str, Any] = inner if isinstance(inner, dict) else fmt
        schema = holder.get("schema")
        properties = schema.get("properties") if isinstance(schema, dict) else None
        shape.schema_fields = len(properties) if isinstance(properties, dict) else 0


def _reasoning(value: Any) -> str | None:
    """OpenRouter's / the Responses API's `reasoning` object as one effort word."""
    if not isinstance(value, dict):
        return None
    effort = value.get("effort")
    if effort in _EFFORTS:
        return str(effort)
    if value.get("enabled") is False:
        return "none"
    budget = value.get("max_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
        return "budget"
    return "medium" if value.get("enabled") is True else None


def _limit(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


# -- completions ------------------------------------------------------------------------------

def _completions(body: dict[str, Any], shape: Shape) -> None:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else [
        p for p in prompt if isinstance(p, str)] if isinstance(prompt, list) else []
    shape.texts += prompts
    shape.task = prompts[-1] if prompts else ""
    shape.messages = 1
    shape.max_output = _limit(body, "max_tokens")


# -- responses --------------------------------------------------------------------------------

def _responses(body: dict[str, Any], shape: Shape) -> None:
    if isinstance(instructions := body.get("instructions"), str):
        shape.system = instructions
        shape.texts.append(instructions)
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind == "message":
            text = _content(item.get("content"), shape)
            if item.get("role") in ("system", "developer"):
                shape.system += text
            else:
                shape.messages += 1
                if item.get("role") == "user":
                    shape.task = text
        elif kind in ("function_call_output", "custom_tool_call_output"):
            shape.messages += 1
            shape.tool_results += 1
            text = _content(item.get("output"), shape)
        elif kind == "function_call":
            shape.messages += 1
            text = item["arguments"] if isinstance(item.get("arguments"), str) else ""
        else:
            continue
        if text:
            shape.texts.append(text)
    tools = body.get("tools")
    shape.tools = len(tools) if isinstance(tools, list) else 0
    text_options = body.get("text")
    if isinstance(text_options, dict):
        _format(text_options.get("format"), shape)
    shape.reasoning = _reasoning(body.get("reasoning"))
    shape.max_output = _limit(body, "max_output_tokens")


# -- messages (Anthropic) ---------------------------------------------------------------------

def _messages(body: dict[str, Any], shape: Shape) -> None:
    system = body.get("system")
    shape.system = system if isinstance(system, str) else _content(system, shape)
    if shape.system:
        shape.texts.append(shape.system)
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        shape.messages += 1
        before = shape.tool_results
        text = _content(message.get("content"), shape)
        if message.get("role") == "user" and shape.tool_results == before:
            shape.task = text  # a user turn that carries only tool results is no new task
        if text:
            shape.texts.append(text)
    tools = body.get("tools")
    shape.tools = len(tools) if isinstance(tools, list) else 0
    _format(body.get("output_format"), shape)
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        kind = thinking.get("type")
        shape.reasoning = "none" if kind == "disabled" else "budget" if kind in (
            "enabled", "adaptive") else None
    shape.max_output = _limit(body, "max_tokens")


READERS: dict[str, Callable[[dict[str, Any], Shape], None]] = {
    "chat/completions": _chat,
    "completions": _completions,
    "responses": _responses,
    "messages": _messages,
    # the same body, counted: routed like the message it counts, so the count is the model's
    # that would answer it
    "messages/count_tokens": _messages,
}
