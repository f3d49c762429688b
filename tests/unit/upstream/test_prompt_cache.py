"""The breakpoint rule on both body shapes: where markers go, when the rule stands down, the
minimum length per model family, blocks never marked, and bodies never edited in place."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.provider_cache import marker_paths
from sidecar.upstream.prompt_cache import (
    CHARS_PER_TOKEN,
    MAX_BREAKPOINTS,
    is_anthropic_family,
    mark_anthropic,
    mark_openai_chat,
    minimum_tokens,
)

LONG = "You are a careful assistant for the billing team. " * 100  # ~5,000 characters
SHORT = "Be brief."
THOUGHT = {"type": "thinking", "thinking": "let me see", "signature": "sig"}


def anthropic_body(system: Any = LONG, turns: int = 2) -> dict[str, Any]:
    """A conversation of `turns` user turns, with a thinking block on each assistant turn."""
    messages: list[dict[str, Any]] = []
    for i in range(turns):
        messages.append({"role": "user", "content": f"question {i}"})
        if i < turns - 1:
            messages.append({"role": "assistant", "content": [
                THOUGHT, {"type": "text", "text": f"answer {i}"}]})
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 100,
                            "messages": messages}
    if system is not None:
        body["system"] = system
    return body


def openai_body(system: str | None = LONG) -> dict[str, Any]:
    """An agent's chat: a question, a tool call and its result, an answer, a new question."""
    messages: list[dict[str, Any]] = [] if system is None else [
        {"role": "system", "content": system}]
    messages += [
        {"role": "user", "content": "what is the weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
        {"role": "user", "content": "and tomorrow?"},
    ]
    return {"model": "anthropic/claude-sonnet-4.5", "messages": messages}


def test_anthropic_markers_on_the_system_prompt_and_before_the_newest_user_turn() -> None:
    """The last system block and the last markable block of the turn before the newest user
    turn (its text, not its thinking) get `cache_control: ephemeral`."""
    body = anthropic_body(system=[{"type": "text", "text": "intro"},
                                  {"type": "text", "text": LONG}], turns=3)
    out, added = mark_anthropic(body, 1024)
    assert added == 2
    assert marker_paths(out) == ["system[1]", "messages[3].content[1]"]
    assert out["system"][1]["cache_control"] == {"type": "ephemeral"}


def test_anthropic_string_system_becomes_a_marked_block() -> None:
    """A string system prompt is turned into one text block to carry the marker."""
    out, added = mark_anthropic(anthropic_body(turns=1), 1024)
    assert (added, out["system"]) == (1, [{"type": "text", "text": LONG,
                                           "cache_control": {"type": "ephemeral"}}])


def test_anthropic_without_system_marks_the_last_tool() -> None:
    """No system prompt: the last tool closes the cached prefix (tools come first)."""
    body = anthropic_body(system=None, turns=1)
    body["tools"] = [{"name": "a", "input_schema": {"type": "object"}, "description": LONG},
                     {"name": "b", "input_schema": {"type": "object"}}]
    out, added = mark_anthropic(body, 1024)
    assert (added, marker_paths(out)) == (1, ["tools[1]"])


def test_tool_results_are_the_newest_user_turn() -> None:
    """An agent's tool results are its newest user turn: the marker goes on the tool call
    before them."""
    body = anthropic_body(turns=1)
    body["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "w",
                                           "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1",
                                      "content": "sunny"}]}]
    out, _ = mark_anthropic(body, 1024)
    assert marker_paths(out) == ["system[0]", "messages[1].content[0]"]


@pytest.mark.parametrize("where", ["request", "tool", "system", "message_block", "message",
                                  "tool_result_block"])
def test_anthropic_stands_down_when_the_client_set_a_marker(where: str) -> None:
    """Any cache_control of the client's, wherever it is, and no marker is added at all."""
    body = anthropic_body(system=[{"type": "text", "text": LONG}], turns=2)
    body["tools"] = [{"name": "a", "input_schema": {}}]
    mark = {"type": "ephemeral"}
    if where == "request":
        body["cache_control"] = mark
    elif where == "tool":
        body["tools"][0]["cache_control"] = mark
    elif where == "system":
        body["system"][0]["cache_control"] = mark
    elif where == "message_block":
        body["messages"][1]["content"][1]["cache_control"] = mark
    elif where == "message":
        body["messages"][0]["cache_control"] = mark
    else:
        body["messages"][2]["content"] = [{"type": "tool_result", "tool_use_id": "x",
                                           "content": [{"type": "text", "text": "r",
                                                        "cache_control": mark}]}]
    before = copy.deepcopy(body)
    out, added = mark_anthropic(body, 1024)
    assert (added, out) == (0, before)


def test_below_the_minimum_nothing_is_marked() -> None:
    """A prefix estimated below the model's minimum gets no marker."""
    out, added = mark_anthropic(anthropic_body(system=SHORT, turns=3), 1024)
    assert (added, marker_paths(out)) == (0, [])


def test_the_conversation_marker_counts_the_whole_prefix() -> None:
    """A short system prompt is not marked, but a conversation that makes the prefix long
    enough gets its marker."""
    body = anthropic_body(system=SHORT, turns=2)
    body["messages"][1]["content"][1]["text"] = LONG
    out, added = mark_anthropic(body, 1024)
    assert (added, marker_paths(out)) == (1, ["messages[1].content[1]"])


def test_the_minimum_follows_the_model_family() -> None:
    """The same prompt is long enough for Sonnet (1024 tokens) but not for Haiku 3.5 (2048)."""
    prompt = "x" * (1500 * CHARS_PER_TOKEN)
    body = anthropic_body(system=prompt, turns=1)
    assert mark_anthropic(body, minimum_tokens("claude-sonnet-4-5"))[1] == 1
    assert mark_anthropic(body, minimum_tokens("anthropic/claude-3.5-haiku"))[1] == 0


@pytest.mark.parametrize(("model", "tokens"), [
    ("claude-sonnet-4-5-20250929", 1024), ("anthropic/claude-sonnet-4.5", 1024),
    ("claude-opus-4-1", 1024), ("claude-3-7-sonnet-latest", 1024),
    ("anthropic/claude-sonnet-4.6", 2048), ("claude-3-5-haiku-20241022", 2048),
    ("claude-3-haiku-20240307", 2048), ("claude-haiku-4-5", 4096),
    ("anthropic/claude-opus-4.5", 4096), ("claude-opus-4-6", 4096),
    ("some-future-claude", 1024),
])
def test_minimum_tokens_by_family(model: str, tokens: int) -> None:
    """Anthropic's documented minimum cacheable length for each family."""
    assert minimum_tokens(model) == tokens


@pytest.mark.parametrize(("model", "family"), [
    ("anthropic/claude-sonnet-4.5", True), ("claude-3-5-haiku", True),
    ("anthropic/anything", True), ("openai/gpt-4o", False), ("meta/llama-3", False)])
def test_anthropic_family(model: str, family: bool) -> None:
    """anthropic/* and any model named claude are Anthropic's."""
    assert is_anthropic_family(model) is family


def test_never_on_empty_text_or_thinking() -> None:
    """The turn before the newest user turn ends in an empty text block and a thinking
    block: the marker goes on the last block Anthropic accepts one on."""
    body = anthropic_body(turns=2)
    body["messages"][1]["content"] = [{"type": "text", "text": "kept"}, THOUGHT,
                                      {"type": "redacted_thinking", "data": "x"},
                                      {"type": "text", "text": ""}]
    out, _ = mark_anthropic(body, 1024)
    assert marker_paths(out) == ["system[0]", "messages[1].content[0]"]


def test_the_input_is_never_edited() -> None:
    """Markers go on copies: the body given (the client's) is left exactly as it was."""
    body = anthropic_body(system=[{"type": "text", "text": LONG}], turns=3)
    before = copy.deepcopy(body)
    out, added = mark_anthropic(body, 1024)
    assert added == 2 and body == before and out != before
    chat = openai_body()
    before = copy.deepcopy(chat)
    out, added = mark_openai_chat(chat, 1024)
    assert added == 2 and chat == before and out != before


def test_openai_markers_on_system_and_before_the_newest_user_turn() -> None:
    """OpenAI's shape: the system message's text and the assistant answer before the newest
    user message, each as a text part carrying the marker."""
    out, added = mark_openai_chat(openai_body(), 1024)
    assert added == 2
    assert marker_paths(out) == ["messages[0].content[0]", "messages[4].content[0]"]
    assert out["messages"][4]["content"] == [{"type": "text", "text": "It is sunny.",
                                              "cache_control": {"type": "ephemeral"}}]


def test_openai_tool_messages_are_a_user_turn() -> None:
    """Tool results after a tool call are the newest user turn; the tool call itself carries
    no content part, so the marker goes on the last text before it."""
    body = openai_body()
    body["messages"] = body["messages"][:4]  # ... assistant tool call, tool result
    out, _ = mark_openai_chat(body, 1024)
    assert marker_paths(out) == ["messages[0].content[0]", "messages[1].content[0]"]


def test_openai_stands_down_for_a_client_marker() -> None:
    """A client's cache_control on any content part: the body is left alone."""
    body = openai_body()
    body["messages"][1]["content"] = [{"type": "text", "text": "q",
                                       "cache_control": {"type": "ephemeral"}}]
    out, added = mark_openai_chat(body, 1024)
    assert (added, out) == (0, body)


def test_a_mention_in_text_is_not_a_marker() -> None:
    """The word in a message's text (a conversation about caching) is no breakpoint."""
    body = openai_body()
    body["messages"][1]["content"] = "what does cache_control do?"
    assert mark_openai_chat(body, 1024)[1] == 2


def test_the_client_scan_can_be_done_on_the_body_before_translation() -> None:
    """`marked` given: the translated body is not scanned again (its markers came from the
    client's body, which was)."""
    body = anthropic_body(turns=2)
    assert mark_anthropic(body, 1024, marked=True) == (body, 0)
    assert mark_anthropic(body, 1024, marked=False)[1] == 2


def test_openai_style_breakpoints_count_as_the_clients() -> None:
    """prompt_cache_breakpoint (OpenAI's marker, which OpenRouter translates) stands down too."""
    body = openai_body()
    body["messages"][1] = {"role": "user", "content": [
        {"type": "text", "text": "q", "prompt_cache_breakpoint": {}}]}
    assert mark_openai_chat(body, 1024)[1] == 0


_TEXT = st.text(alphabet="ab ", max_size=40)
_BLOCK = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, _TEXT),
    st.just(THOUGHT),
    st.builds(lambda t: {"type": "tool_result", "tool_use_id": "x", "content": t}, _TEXT))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["user", "assistant"]),
                          st.one_of(_TEXT, st.lists(_BLOCK, max_size=4))), max_size=12),
       st.one_of(st.none(), _TEXT, st.lists(_BLOCK, max_size=3)),
       st.integers(min_value=1, max_value=40))
def test_any_conversation_gets_at_most_the_limit(messages: list[tuple[str, Any]], system: Any,
                                                 minimum: int) -> None:
    """Whatever the conversation, no more than two markers are added (so never more than
    Anthropic's four), none on a thinking or empty block, and the input is unchanged."""
    body: dict[str, Any] = {"messages": [{"role": r, "content": c} for r, c in messages]}
    if system is not None:
        body["system"] = system
    before = copy.deepcopy(body)
    out, added = mark_anthropic(body, minimum)
    paths = marker_paths(out)
    assert added == len(paths) <= 2 <= MAX_BREAKPOINTS
    assert body == before
    for path in paths:
        block: Any = out
        for part in path.replace("]", "").replace(".", "[").split("["):
            block = block[int(part)] if part.isdigit() else block[part]
        assert block.get("type") != "thinking"
        assert block.get("type") != "text" or block["text"]
