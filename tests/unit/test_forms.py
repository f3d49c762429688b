"""Multipart forms: parsed with aiohttp's reader into text fields and file parts, written back
byte for byte when nothing changed, rebuilt around the same files when a field did, and any
malformed body refused with a reason (never an exception of another kind, never a warning)."""

from __future__ import annotations

import contextlib
import random

import pytest
from aiohttp import MultipartWriter

from sidecar.forms import Form, FormError, parse_form

BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
AUDIO = bytes(range(256)) * 4


async def sample() -> bytes:
    writer = MultipartWriter("form-data", boundary=BOUNDARY)
    for name, value in (("model", "whisper-1"), ("prompt", "Call jane@example.com"),
                        ("include[]", "logprobs"), ("include[]", "words")):
        writer.append(value).set_content_disposition("form-data", name=name)
    writer.append(AUDIO).set_content_disposition("form-data", name="file", filename="a.mp3")
    return await writer.as_bytes()


async def test_fields_files_and_an_unchanged_form_written_back_exactly() -> None:
    """Text fields by name (a repeated name as a list), files kept apart, and the form written
    with its own fields is the client's bytes."""
    raw = await sample()
    form = await parse_form(raw, CONTENT_TYPE)
    assert form.fields() == {"model": "whisper-1", "prompt": "Call jane@example.com",
                             "include[]": ["logprobs", "words"]}
    assert (form.files, form.file_bytes) == (1, len(AUDIO))
    assert form.render(form.fields()) == raw


async def test_a_changed_field_is_written_around_the_same_file() -> None:
    """A redacted prompt, a new field and a dropped one: the file's bytes and headers stay."""
    form = await parse_form(await sample(), CONTENT_TYPE)
    fields = {**form.fields(), "prompt": "Call <EMAIL_1>", "language": "en"}
    del fields["include[]"]
    again = await parse_form(form.render(fields), CONTENT_TYPE)
    assert again.fields() == {"model": "whisper-1", "prompt": "Call <EMAIL_1>",
                              "language": "en"}
    [file] = [p for p in again.parts if p.filename is not None]
    assert file.data == AUDIO and dict(file.headers) == dict(
        next(p for p in form.parts if p.filename).headers)


@pytest.mark.parametrize(("content_type", "raw"), [
    ("multipart/form-data", b"--x--"),
    ("multipart/mixed; boundary=x", b"--x--"),
    (CONTENT_TYPE, b""),
    (CONTENT_TYPE, b"--b0undary\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b0undary--"),
    (CONTENT_TYPE, b'--b0undary\r\nContent-Disposition: form-data; name="p"\r\n\r\n\xff\xfe'
                   b"\r\n--b0undary--"),
], ids=["no_boundary", "not_form_data", "empty", "no_name", "not_utf8"])
async def test_malformed_forms_are_refused(content_type: str, raw: bytes) -> None:
    """Each is a FormError with a reason."""
    with pytest.raises(FormError):
        await parse_form(raw, content_type)


async def test_mangled_forms_never_raise_anything_else() -> None:
    """500 random mutations of a valid form: parsed, or a FormError; nothing else escapes."""
    base = await sample()
    rng = random.Random(7)
    for _ in range(500):
        raw = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(raw) + 1)
            if rng.random() < 0.5:
                del raw[at:at + rng.randint(1, 20)]
            else:
                raw[at:at] = rng.choice([b"\r\n", b"--b0undary", b'"', b";", b"\xff", b"name="])
        with contextlib.suppress(FormError):
            assert isinstance(await parse_form(bytes(raw), CONTENT_TYPE), Form)
