"""Multipart form bodies (image edits and variations, transcriptions, translations): parsed once
with aiohttp's multipart reader, written again only when a stage changed a text field.

read_body reads the whole body (bounded by `listen.max_body_bytes`, as a JSON body is) and hands
it here. The text fields (parts without a filename: `model`, `prompt`, `response_format`, ...)
become the Call's `body`, a dict of strings (a name sent more than once, `include[]`, maps to a
list of them), so redaction, spend and fallback read a form as they read a JSON body. The file
parts stay in the `Form`, byte for byte.

The client's exact bytes go upstream unless something changed (redaction replaced a prompt, a
fallback candidate or a provider's model name): then `render` writes the form again, every part
in its place with its headers as the client sent them and the same boundary, so the client's
Content-Type header stays true. (It writes the parts itself: aiohttp's MultipartWriter would add
a Content-Type to every text field, which the client did not send.)
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import BadContentDispositionHeader, BodyPartReader, MultipartReader, StreamReader
from aiohttp.base_protocol import BaseProtocol
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["Form", "FormError", "Part", "parse_form"]

MAX_PARTS = 1_000  # a real form has a dozen; a flood of tiny parts is refused, not walked


class FormError(ValueError):
    """The body is not a multipart form this endpoint can read (the message says why)."""


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str | None  # None: a text field
    headers: tuple[tuple[str, str], ...]  # as the client sent them, in order
    data: bytes


@dataclass(frozen=True, slots=True)
class Form:
    boundary: str
    parts: tuple[Part, ...]

    def fields(self) -> dict[str, Any]:
        """The text fields by name: a string, or a list when the name repeats."""
        out: dict[str, Any] = {}
        for part in self.parts:
            if part.filename is not None:
                continue
            value = part.data.decode()  # checked decodable by parse_form
            known = out.get(part.name)
            if known is None:
                out[part.name] = value
            elif isinstance(known, list):
                known.append(value)
            else:
                out[part.name] = [known, value]
        return out

    @property
    def file_bytes(self) -> int:
        """Bytes of every file part together (the audio a transcription bounds its length by)."""
        return sum(len(part.data) for part in self.parts if part.filename is not None)

    @property
    def files(self) -> int:
        return sum(part.filename is not None for part in self.parts)

    def render(self, fields: Mapping[str, Any]) -> bytes:
        """The form with its text fields taken from `fields` (new names appended at the end,
        names missing from `fields` dropped), files and headers untouched."""
        dash = b"--" + self.boundary.encode()
        out: list[bytes] = []
        seen: dict[str, int] = {}
        for part in self.parts:
            data = part.data
            if part.filename is None:
                if part.name not in fields:
                    continue
                value = fields[part.name]
                if isinstance(value, list):
                    index = seen.get(part.name, 0)
                    seen[part.name] = index + 1
                    if index >= len(value):
                        continue
                    value = value[index]
                data = _text(value)
            out.append(_part(dash, part.headers, data))
        named = {part.name for part in self.parts if part.filename is None}
        for name, value in fields.items():
            if name in named:
                continue
            for item in value if isinstance(value, list) else [value]:
                quoted = name.replace('"', "%22")
                out.append(_part(dash, (("Content-Disposition",
                                         f'form-data; name="{quoted}"'),), _text(item)))
        return b"".join(out) + dash + b"--\r\n"


async def parse_form(raw: bytes, content_type: str) -> Form:
    """Parse a whole multipart/form-data body. Raises FormError."""
    mime = parse_mimetype(content_type)
    boundary = mime.parameters.get("boundary")
    if mime.type != "multipart" or mime.subtype != "form-data" or not boundary:
        raise FormError("send the body as multipart/form-data with a boundary")
    stream = StreamReader(BaseProtocol(asyncio.get_running_loop()), len(raw) + 1)
    stream.feed_data(raw)
    stream.feed_eof()
    parts: list[Part] = []
    # The whole body is in the stream already, so the reader never suspends: no other task
    # runs while the warning filter is changed. A Content-Disposition aiohttp can only warn
    # about (a name it cannot read) is a bad request here, not a warning in the log.
    with warnings.catch_warnings():
        warnings.simplefilter("error", BadContentDispositionHeader)
        try:
            await _read_parts(MultipartReader({"Content-Type": content_type}, stream), parts)
        except FormError:
            raise
        except (ValueError, RuntimeError, AssertionError, LookupError, HttpProcessingError,
                Warning) as exc:
            raise FormError(f"it is not a valid multipart form ({exc})") from None
    return Form(boundary, tuple(parts))


async def _read_parts(reader: MultipartReader, parts: list[Part]) -> None:
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise FormError("a part is itself a multipart body; send plain fields and files")
        if part.name is None:
            raise FormError("a part has no name (Content-Disposition: form-data; name=...)")
        if len(parts) >= MAX_PARTS:
            raise FormError(f"more than {MAX_PARTS} parts")
        data = await part.read(decode=False)
        if part.filename is None:
            data.decode()  # a text field must be UTF-8 (UnicodeDecodeError is a ValueError)
        parts.append(Part(part.name, part.filename, tuple(part.headers.items()), bytes(data)))
    if not reader.at_eof():
        raise FormError("the body ends before the closing boundary")


def _text(value: Any) -> bytes:
    return (value if isinstance(value, str) else str(value)).encode()


def _part(dash: bytes, headers: tuple[tuple[str, str], ...], data: bytes) -> bytes:
    head = b"".join(f"{name}: {value}\r\n".encode() for name, value in headers)
    return dash + b"\r\n" + head + b"\r\n" + data + b"\r\n"
