"""The Call and Reply types: what goes upstream, and a Reply's one body."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson
import pytest
from multidict import CIMultiDict

from sidecar.call import Reply
from sidecar.globs import Globs
from tests.fakes.calls import make_call


async def _chunks() -> AsyncGenerator[bytes, None]:
    yield b"x"


def test_a_reply_holds_a_body_or_chunks_never_both() -> None:
    """Building a Reply with a body and chunks is refused."""
    chunks = _chunks()
    with pytest.raises(ValueError, match="never both"):
        Reply(200, CIMultiDict(), body=b"x", chunks=chunks)


def test_upstream_body_is_the_clients_bytes_unless_something_changed() -> None:
    """Unchanged: the exact bytes. Overrides, edits or another model name: re-serialised."""
    call = make_call(model="openai/gpt-4o")
    call.raw_body = b'{"model":  "openai/gpt-4o", "messages": []}'
    assert call.body is not None
    assert call.upstream_body() is call.raw_body
    assert call.upstream_body("openai/gpt-4o") is call.raw_body
    renamed = orjson.loads(call.upstream_body("gpt-4o") or b"")
    assert renamed["model"] == "gpt-4o"
    call.overrides["max_tokens"] = 5
    assert orjson.loads(call.upstream_body() or b"")["max_tokens"] == 5
    assert "max_tokens" not in call.body  # overrides never touch the body itself


@pytest.mark.parametrize(("patterns", "name", "matches"), [
    (["openai/*"], "openai/gpt-4o", True),
    (["openai/*"], "anthropic/claude", False),
    (["*-mini", "meta/*"], "openai/gpt-4o-mini", True),
    ([], "anything", False),
    (["gpt-4o"], "gpt-4o-mini", False),
])
def test_globs(patterns: list[str], name: str, matches: bool) -> None:
    """Model globs match whole names, `*` crossing `/`; no patterns match nothing."""
    assert Globs(patterns).match(name) is matches
