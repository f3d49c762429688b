"""An OpenAI chat-completions request → an Anthropic Messages request, and its `Plan`.

Fields, one by one:

    messages                    → system + messages (content.py)
    max_completion_tokens,      → max_tokens (Anthropic requires it: DEFAULT_MAX_TOKENS when
      max_tokens                  absent, plus the thinking budget when reasoning is on)
    temperature, top_p, top_k   → the same (Anthropic's temperature range is 0..1: its own 400
                                  says so for a larger value)
    stop                        → stop_sequences
    user (else safety_identifier) → metadata.user_id
    tools, tool_choice,         → tools (input_schema), tool_choice auto / none / any / tool,
      parallel_tool_calls         disable_parallel_tool_use when parallel_tool_calls is false
    response_format             → a forced tool whose input is the answer (JSON_TOOL, below)
    reasoning, reasoning_effort → thinking {budget_tokens} (OpenRouter's effort fractions)
    stream, stream_options      → stream; include_usage goes to the Plan (Anthropic always
                                  reports usage; the usage chunk is only sent when asked)

Refused with a 400 naming the field (the answer could not be what the client asked for):
n > 1, logprobs, top_logprobs, logit_bias, audio output, prediction, web_search_options,
functions / function_call. Dropped (no Anthropic equivalent; they only nudge sampling or are
another service's bookkeeping, as OpenRouter drops them): seed, frequency_penalty,
presence_penalty, store, metadata, service_tier, prompt_cache_key, verbosity, and OpenRouter's
routing fields. Any other field passes through unchanged, so Anthropic's own options
(`thinking`, `context_management`, ...) work through `extra_body`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sidecar.errors import InvalidRequest
from sidecar.upstream.anthropic.content import Block, convert_messages

# Absent max_tokens: OpenAI means "up to the model's limit", Anthropic has no such default. 4096
# is what LiteLLM sends, and equals spend.reserve_max_tokens, so the budget reservation and the
# upstream cap agree. A client that wants longer answers says so with max_tokens.
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024  # Anthropic's minimum budget_tokens
JSON_TOOL = "json_answer"  # the forced tool of response_format; its input is the answer
# OpenRouter's reasoning.effort → share of max_tokens for thinking.
_EFFORT = {"max": 0.95, "xhigh": 0.95, "high": 0.8, "medium": 0.5, "low": 0.2, "minimal": 0.1}
_DROPPED = frozenset((
    "seed", "frequency_penalty", "presence_penalty", "store", "metadata", "service_tier",
    "prompt_cache_key", "verbosity", "safety_identifier",
    "models", "provider", "route", "transforms", "plugins", "usage", "include_reasoning",
    "session_id", "trace", "debug",
))
_MAPPED = frozenset((
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
    "stop", "user", "tools", "tool_choice", "parallel_tool_calls", "response_format",
    "reasoning", "reasoning_effort", "stream", "stream_options",
    "n", "logprobs", "top_logprobs", "logit_bias", "modalities", "audio", "prediction",
))
_HANDLED = _DROPPED | _MAPPED


@dataclass(frozen=True, slots=True)
class Plan:
    """What translating the answer back needs to know about the request."""

    stream: bool = False
    include_usage: bool = False  # stream: end with the usage chunk (choices: [])
    json_tool: str | None = None  # response_format: this tool's input is the message content
    reasoning: bool = True  # show thinking as reasoning (False: OpenRouter's reasoning.exclude)


def translate_request(body: dict[str, Any], model: str) -> tuple[dict[str, Any], Plan]:
    """The Anthropic request for `body` (the effective OpenAI body) sent as `model`."""
    _refuse_unsupported(body)
    system, messages = convert_messages(body.get("messages"))
    out = {key: value for key, value in body.items() if key not in _HANDLED}
    out["model"] = model
    if system:
        out["system"] = system
    out["messages"] = messages
    thinking, shown = _thinking(body)
    out["max_tokens"] = _max_tokens(body, thinking)
    if thinking is not None:
        out["thinking"] = thinking
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    if stop := _stop_sequences(body.get("stop")):
        out["stop_sequences"] = stop
    user = body.get("user") or body.get("safety_identifier")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    native = out.get("thinking")  # Anthropic's own field, sent through extra_body
    thinks = thinking is not None or (isinstance(native, dict) and native.get("type") != "disabled")
    json_tool = _tools(body, out, thinking=thinks)
    stream = body.get("stream") is True
    if stream:
        out["stream"] = True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    return out, Plan(stream, include_usage, json_tool, shown)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    def refuse(field: str, why: str) -> None:
        raise InvalidRequest(f"'{field}' is not supported for Anthropic models: {why}",
                             param=field)

    if body.get("n") not in (None, 1):
        refuse("n", "Anthropic returns one choice per request; send n=1 and repeat the request.")
    if body.get("logprobs"):
        refuse("logprobs", "Anthropic does not return token log probabilities.")
    if body.get("top_logprobs"):
        refuse("top_logprobs", "Anthropic does not return token log probabilities.")
    if body.get("logit_bias"):
        refuse("logit_bias", "Anthropic has no token biasing.")
    modalities = body.get("modalities")
    if body.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        refuse("audio", "Anthropic models answer in text only.")
    for field in ("prediction", "web_search_options", "functions", "function_call"):
        if body.get(field) is not None:
            refuse(field, "it has no Anthropic equivalent (legacy functions: use tools).")


def _max_tokens(body: dict[str, Any], thinking: dict[str, Any] | None) -> Any:
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None:
            return body[name]  # a bad value gets Anthropic's own 400, which names the field
    # Thinking counts against max_tokens on Anthropic: add its budget to keep the answer's room.
    return DEFAULT_MAX_TOKENS + (thinking["budget_tokens"] if thinking else 0)


def _stop_sequences(stop: Any) -> list[str] | None:
    if isinstance(stop, str):
        return [stop] if stop else None
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return [s for s in stop if s] or None
    if stop is not None:
        raise InvalidRequest("'stop' must be a string or an array of strings.", param="stop")
    return None


def _thinking(body: dict[str, Any]) -> tuple[dict[str, Any] | None, bool]:
    """Extended thinking from OpenRouter's `reasoning` or OpenAI's `reasoning_effort`, and
    whether to show it (`reasoning.exclude` hides it)."""
    reasoning = body.get("reasoning")
    effort = body.get("reasoning_effort")
    budget: Any = None
    shown = True
    if isinstance(reasoning, dict):
        shown = reasoning.get("exclude") is not True
        if reasoning.get("max_tokens") is not None:
            budget = reasoning["max_tokens"]
            if type(budget) is not int or budget <= 0:
                raise InvalidRequest("'reasoning.max_tokens' must be a positive integer.",
                                     param="reasoning.max_tokens")
        elif reasoning.get("effort") is not None:
            effort = reasoning["effort"]
        elif "enabled" in reasoning:
            effort = "medium" if reasoning["enabled"] is True else "none"
    if budget is None and effort is not None and effort != "none":
        share = _EFFORT.get(effort) if isinstance(effort, str) else None
        if share is None:
            raise InvalidRequest(f"Reasoning effort '{effort}' is not one of "
                                 f"{', '.join([*_EFFORT, 'none'])}.", param="reasoning.effort")
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        base = limit if isinstance(limit, int) and limit > 0 else DEFAULT_MAX_TOKENS
        budget = max(MIN_THINKING_BUDGET, int(base * share))
    if budget is None:
        return None, shown
    return {"type": "enabled", "budget_tokens": budget}, shown


def _tools(body: dict[str, Any], out: dict[str, Any], *, thinking: bool) -> str | None:
    """Set `tools` and `tool_choice` on `out`; return the answer tool's name when
    response_format is carried by one."""
    given = body.get("tools") or []
    if not isinstance(given, list):
        raise InvalidRequest("'tools' must be an array of function tools.", param="tools")
    tools: list[Block] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(given)]
    choice = _tool_choice(body.get("tool_choice"))
    answer = _answer_tool(body.get("response_format"))
    json_tool = None
    if answer is not None and (choice is None or choice["type"] in ("auto", "none")):
        if thinking:
            raise InvalidRequest("response_format cannot be combined with reasoning on "
                                 "Anthropic models: the JSON answer is a forced tool call, and "
                                 "Anthropic allows no forced tool while thinking.",
                                 param="response_format")
        if any(tool.get("name") == JSON_TOOL for tool in tools):
            raise InvalidRequest(f"The tool name '{JSON_TOOL}' is reserved for response_format "
                                 "on Anthropic models; rename your tool.", param="tools")
        # With tools the client may still call: any tool (its own, or the answer); else the
        # answer tool, forced.
        usable = tools and (choice is None or choice["type"] == "auto")
        choice = {"type": "any"} if usable else {"type": "tool", "name": JSON_TOOL}
        tools.append(answer)
        json_tool = JSON_TOOL
    if not tools:
        return None
    out["tools"] = tools
    if body.get("parallel_tool_calls") is False and (choice is None or choice["type"] != "none"):
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        out["tool_choice"] = choice
    return json_tool


def _tool(tool: Any, where: str) -> Block:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not (
            isinstance(function, dict) and isinstance(function.get("name"), str)):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise InvalidRequest(f"{where} must be a function tool with a name (type '{kind}' has "
                             "no Anthropic equivalent).", param=where)
    parameters = function.get("parameters")
    block: Block = {"name": function["name"],
                    "input_schema": parameters if isinstance(parameters, dict)
                    else {"type": "object", "properties": {}}}
    if isinstance(description := function.get("description"), str):
        block["description"] = description
    if (cache := tool.get("cache_control")) is not None:
        block["cache_control"] = cache
    return block


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and isinstance(function := choice.get("function"), dict) and (
            isinstance(name := function.get("name"), str)):
        return {"type": "tool", "name": name}
    raise InvalidRequest("'tool_choice' must be auto, none, required or "
                         "{\"type\": \"function\", \"function\": {\"name\": ...}}.",
                         param="tool_choice")


def _answer_tool(response_format: Any) -> Block | None:
    """response_format as a tool: the model "calls" it with the answer as input, and the
    translation back makes that input the message content."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise InvalidRequest("'response_format' must be an object: text, json_object, or "
                             "json_schema with a schema.", param="response_format")
    kind = response_format.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"name": JSON_TOOL, "input_schema": {"type": "object"},
                "description": "Give your answer as a JSON object: call this tool with it."}
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if kind != "json_schema" or not isinstance(spec, dict) or not isinstance(schema, dict):
        raise InvalidRequest("'response_format' must be text, json_object, or json_schema "
                             "with a schema.", param="response_format")
    if schema.get("type", "object") != "object":
        raise InvalidRequest("response_format.json_schema.schema must describe an object "
                             "(type: object) for Anthropic models, as OpenAI's strict mode "
                             "requires too.", param="response_format.json_schema.schema")
    about = f" ({spec['description']})" if isinstance(spec.get("description"), str) else ""
    return {"name": JSON_TOOL, "input_schema": schema,
            "description": f"Give your answer as JSON matching the schema "
                           f"'{spec.get('name', 'answer')}'{about}: call this tool with it."}
