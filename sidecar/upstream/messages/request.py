"""An Anthropic Messages request → an OpenAI chat completions request, and its `Plan`.

Fields, one by one:

    system, messages          → messages (content.py)
    max_tokens                → max_completion_tokens for OpenAI's own API (its reasoning
                                models refuse max_tokens), max_tokens elsewhere
    temperature, top_p        → the same
    top_k                     → the same for OpenRouter; dropped elsewhere (OpenAI has none)
    stop_sequences            → stop
    metadata.user_id          → user
    tools                     → function tools (input_schema → parameters)
    tool_choice               → auto / required (any) / none / a named function;
                                disable_parallel_tool_use → parallel_tool_calls: false
    thinking                  → OpenRouter's reasoning {max_tokens: budget_tokens} (adaptive:
                                {enabled: true}); other targets have no common field, so it is
                                dropped there (a reasoning model still reasons, and its
                                reasoning still comes back as thinking blocks)
    output_format json_schema → response_format json_schema
    stream                    → stream, with stream_options.include_usage (Anthropic's streams
                                always carry usage)

Refused with a 400 naming the field (the answer could not be what the client asked for):
Anthropic's server tools (web search, code execution, bash, text editor, computer use: tools
with a `type` of their own), `mcp_servers`, `container`. Dropped: service_tier,
context_management and any other field Anthropic's API has and an OpenAI-format API does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.errors import InvalidRequest
from sidecar.upstream.messages.content import convert_messages, system_message
from sidecar.upstream.openrouter import OPENROUTER_POLICY

_CUSTOM_TOOL_TYPES = (None, "custom")


@dataclass(frozen=True, slots=True)
class Target:
    """What the translation must know of the provider it writes for."""

    openrouter: bool = False  # takes reasoning, top_k, cache_control, provider preferences
    openai: bool = False  # OpenAI's own API: max_completion_tokens


@dataclass(frozen=True, slots=True)
class Plan:
    """What translating the answer back needs to know about the request."""

    model: str  # the model asked for, named in the answer when the upstream names none
    stream: bool = False
    stop_sequences: tuple[str, ...] = ()


def translate_request(body: dict[str, Any], model: str, target: Target, *, zdr: bool = False
                      ) -> tuple[dict[str, Any], Plan]:
    """The chat request for `body` (the effective Messages body) sent as `model`. `zdr`:
    OpenRouter is asked to route only to providers that retain nothing."""
    _refuse_unsupported(body)
    messages = convert_messages(body.get("messages"), cache=target.openrouter,
                                reasoning=target.openrouter)
    system = system_message(body.get("system"), target.openrouter)
    out: dict[str, Any] = {"model": model,
                           "messages": [system, *messages] if system else messages}
    limit = body.get("max_tokens")
    if type(limit) is not int or limit < 1:
        raise InvalidRequest("'max_tokens' must be a positive integer.", param="max_tokens")
    out["max_completion_tokens" if target.openai else "max_tokens"] = limit
    for name in ("temperature", "top_p", *(("top_k",) if target.openrouter else ())):
        if body.get(name) is not None:
            out[name] = body[name]
    stops = _stop_sequences(body.get("stop_sequences"))
    if stops:
        out["stop"] = list(stops)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(user := metadata.get("user_id"), str) and user:
        out["user"] = user
    _tools(body, out)
    if target.openrouter:
        if (reasoning := _reasoning(body.get("thinking"))) is not None:
            out["reasoning"] = reasoning
        if zdr:
            out["provider"] = dict(OPENROUTER_POLICY)
    if (response_format := _response_format(body.get("output_format"))) is not None:
        out["response_format"] = response_format
    stream = body.get("stream") is True
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out, Plan(model, stream, stops)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for field in ("mcp_servers", "container"):
        if body.get(field):
            raise InvalidRequest(f"'{field}' has no equivalent on an OpenAI-format provider: "
                                 "route this model to an Anthropic-format provider.",
                                 param=field)


def _stop_sequences(stops: Any) -> tuple[str, ...]:
    if stops is None:
        return ()
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise InvalidRequest("'stop_sequences' must be an array of strings.",
                             param="stop_sequences")
    return tuple(s for s in stops if s)


def _tools(body: dict[str, Any], out: dict[str, Any]) -> None:
    tools = body.get("tools")
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array of tools.", param="tools")
    functions = [_function(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if functions:
        out["tools"] = functions
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise InvalidRequest("'tool_choice' must be an object with a type: auto, any, tool or "
                             "none.", param="tool_choice")
    kind = choice.get("type")
    if kind == "auto":
        mapped: Any = "auto"
    elif kind == "any":
        mapped = "required"
    elif kind == "none":
        mapped = "none"
    elif kind == "tool" and isinstance(name := choice.get("name"), str):
        mapped = {"type": "function", "function": {"name": name}}
    else:
        raise InvalidRequest("'tool_choice.type' must be auto, any, none, or tool with a "
                             "name.", param="tool_choice")
    if not functions:
        return  # OpenAI refuses a tool_choice without tools; without tools none is the rule
    out["tool_choice"] = mapped
    if choice.get("disable_parallel_tool_use") is True and mapped != "none":
        out["parallel_tool_calls"] = False


def _function(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise InvalidRequest(f"{where} must be an object.", param=where)
    kind = tool.get("type")
    if kind not in _CUSTOM_TOOL_TYPES:
        raise InvalidRequest(f"{where}: '{kind}' is one of Anthropic's server or built-in "
                             "tools, which an OpenAI-format provider does not run; route this "
                             "model to an Anthropic-format provider, or define the tool with "
                             "an input_schema.", param=where)
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name is required.", param=f"{where}.name")
    schema = tool.get("input_schema")
    function: dict[str, Any] = {"name": name, "parameters": schema if isinstance(schema, dict)
                                else {"type": "object", "properties": {}}}
    if isinstance(description := tool.get("description"), str):
        function["description"] = description
    return {"type": "function", "function": function}


def _reasoning(thinking: Any) -> dict[str, Any] | None:
    """OpenRouter's `reasoning` for Anthropic's `thinking`."""
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if type(budget) is not int or budget < 1:
            raise InvalidRequest("'thinking.budget_tokens' must be a positive integer.",
                                 param="thinking.budget_tokens")
        return {"max_tokens": budget}
    if kind == "adaptive":
        return {"enabled": True}
    return None  # disabled, or a kind added later: the model's default


def _response_format(output_format: Any) -> dict[str, Any] | None:
    if output_format is None:
        return None
    schema = output_format.get("schema") if isinstance(output_format, dict) else None
    if not isinstance(output_format, dict) or output_format.get("type") != "json_schema" or (
            not isinstance(schema, dict)):
        raise InvalidRequest("'output_format' must be {\"type\": \"json_schema\", \"schema\": "
                             "{...}}.", param="output_format")
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema,
                                                   "strict": True}}
