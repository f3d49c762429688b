"""A fake upstream for the media endpoints, over real HTTP: images, speech, transcriptions and
translations, moderations, each answered the way OpenAI answers, so the spend tests know what
each request costs.

- images (generations as JSON, edits and variations as forms): `n` images (`b64_json`), plus
  gpt-image-1's `usage` in tokens when `image_usage` is set;
- speech: `audio` bytes (audio/mpeg), no usage, as OpenAI's speech answers;
- transcriptions and translations: `{"text"}` with `usage: {"type": "duration", "seconds"}`
  (`seconds`), or a verbose_json answer with `duration`, or plain text for `text`, srt, vtt;
- moderations: one result per input.
Each request is kept in `requests` (path, text fields, file parts) before it is answered;
`gate` holds every answer until set.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import BodyPartReader, web


@dataclass
class Received:
    path: str
    fields: dict[str, Any]  # JSON body, or a form's text fields
    files: dict[str, bytes] = field(default_factory=dict)  # a form's files by field name
    content_type: str = ""


@dataclass
class MediaUpstream:
    seconds: float = 12.5  # the duration a transcription reports
    audio: bytes = b"ID3" + b"\x00" * 61  # what speech answers
    image_usage: dict[str, Any] | None = None  # gpt-image-1's usage, when set
    requests: list[Received] = field(default_factory=list)
    gate: asyncio.Event | None = None
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{endpoint:.*}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _read(self, request: web.Request) -> Received:
        path = request.match_info["endpoint"]
        if request.content_type != "multipart/form-data":
            return Received(path, orjson.loads(await request.read()),
                            content_type=request.content_type)
        fields: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        async for part in await request.multipart():
            assert isinstance(part, BodyPartReader) and part.name is not None
            data = await part.read()
            if part.filename is None:
                fields[part.name] = data.decode()
            else:
                files[part.name] = bytes(data)
        return Received(path, fields, files, request.headers["Content-Type"])

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        received = await self._read(request)
        self.requests.append(received)
        if self.gate is not None:
            await self.gate.wait()
        path, body = received.path, received.fields
        if path.startswith("images/"):
            n = int(body.get("n", 1))
            answer: dict[str, Any] = {"created": 1700000000,
                                      "data": [{"b64_json": "aW1n"} for _ in range(n)]}
            if self.image_usage is not None:
                answer["usage"] = self.image_usage
            return web.json_response(answer)
        if path == "audio/speech":
            return web.Response(body=self.audio, content_type="audio/mpeg")
        if path.startswith("audio/"):
            form = body.get("response_format", "json")
            if form in ("text", "srt", "vtt"):
                return web.Response(text="hello there", content_type="text/plain")
            if form == "verbose_json":
                return web.json_response({"task": "transcribe", "language": "english",
                                          "duration": self.seconds, "text": "hello there",
                                          "segments": []})
            return web.json_response({"text": "hello there", "usage": {
                "type": "duration", "seconds": self.seconds}})
        if path == "moderations":
            inputs = body.get("input")
            count = len(inputs) if isinstance(inputs, list) else 1
            return web.json_response({"id": "modr-1", "model": body.get("model", "m"),
                                      "results": [{"flagged": False, "categories": {},
                                                   "category_scores": {}}] * count})
        return web.json_response({"error": {"message": f"no such path {path}"}}, status=404)
