"""What the bench starts and calls: one `Spec` per process under test, checked before timing.

A Spec says how to start a process (the floor, one sidecar per row, each peer) and what a client
sends it (headers, which prompt). Every process is first timed from spawn to ready over a few
fresh spawns (`startup`), then started for good and checked (`check`): one chat (and one stream
where streams are measured) must come back whole, and for a sidecar row, `/sidecar/config` must
list the stages its features imply and its answers must carry their headers (rows.py). A
process that answers wrongly stops the run; a row that is not what its name says is a Note.
"""

from __future__ import annotations

import http.client
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml

from bench import rows
from bench.processes import Fleet, ServiceFailed, free_port
from bench.rows import Body, Kind, Row

Role = Literal["direct", "floor", "row", "peer"]
CLIENT_KEY = "sk-bench"  # what an application sends; passes through to the upstream
CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write one sentence that uses every letter of the alphabet."}],
    "temperature": 0.7, "max_tokens": 64}
# Three entities the redaction must find and pseudonymize, in a prompt of the same shape.
ENTITIES = ("Draft a short reply to Jane Doe (jane.doe@example.com, +1 415-555-0134): her "
            "refund for the card 4111 1111 1111 1111 was approved.")


def body_bytes(body: Body, kind: Kind) -> bytes:
    chat: dict[str, Any] = dict(CHAT)
    if body == "entities":
        chat["messages"] = [CHAT["messages"][0], {"role": "user", "content": ENTITIES}]
    elif body == "auto":  # the same chat, for the auto router to place
        chat["model"] = "sidecar/auto"
    if kind == "stream":
        chat["stream"] = True
    return orjson.dumps(chat)


def write_bodies(workdir: Path) -> dict[tuple[Body, Kind], Path]:
    paths: dict[tuple[Body, Kind], Path] = {}
    for body in ("chat", "entities", "auto"):
        for kind in ("json", "stream"):
            path = workdir / f"{body}-{kind}.json"
            path.write_bytes(body_bytes(body, kind))
            paths[body, kind] = path
    return paths


@dataclass(slots=True)
class Spec:
    """One process under test, and what its clients send."""

    name: str
    role: Role
    argv_for_port: Callable[[int], list[str]]
    ready_path: str
    env: dict[str, str] | None = None  # None: the harness's environment
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = "chat"
    kinds: tuple[Kind, ...] = ("json",)
    python: bool = True  # py-spy can sample it
    row: Row | None = None
    info: dict[str, Any] = field(default_factory=dict)


def client_headers(own: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The default client key, then a spec's headers, then --header (later names win)."""
    out = {"Authorization": f"Bearer {CLIENT_KEY}"}
    for layer in (own, extra):
        for key, value in layer.items():
            out = {k: v for k, v in out.items() if k.lower() != key.lower()}
            out[key] = value
    return out


def floor_spec(upstream: str, kinds: tuple[Kind, ...]) -> Spec:
    return Spec("floor", "floor",
                lambda port: [sys.executable, "-m", "bench.floor", "--port", str(port),
                              "--upstream", upstream], "/v1/models", kinds=kinds)


def sidecar_argv(port: int, config: Path, upstream: str | None = None) -> list[str]:
    """`llm-sidecar serve` with a config file; `upstream` overrides its upstream URL (for
    --sidecar-config: the rows' configs name the fake upstream themselves)."""
    script = Path(sys.executable).with_name("llm-sidecar")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "sidecar"]
    argv = [*command, "serve", "--config", str(config), "--port", str(port)]
    return [*argv, "--upstream", f"{upstream}/"] if upstream else argv


def sidecar_env(state_dir: Path, access_log: bool) -> dict[str, str]:
    """The environment without any SIDECAR_* of the caller's, so a run is reproducible."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIDECAR_")}
    env["SIDECAR_STATE_DIR"] = str(state_dir)
    if not access_log:
        env["SIDECAR_LOG_LEVEL"] = "warning"
    return env


def row_spec(row: Row, upstream: str, context: Mapping[str, str], workdir: Path,
             access_log: bool, config_file: Path | None = None) -> Spec:
    """A sidecar for `row`, its config written to the run's temporary directory (or the
    given file, for `--sidecar-config`)."""
    state = workdir / "state" / row.name
    state.mkdir(parents=True, exist_ok=True)
    override = upstream if config_file is not None else None
    if config_file is None:
        config_file = workdir / f"sidecar-{row.name}.yaml"
        config_file.write_text(yaml.safe_dump(
            rows.config(row, {**context, "state": str(state)}), sort_keys=False))
    path = config_file
    return Spec(row.name, "row", lambda port: sidecar_argv(port, path, override), "/readyz",
                env=sidecar_env(state, access_log), headers=rows.headers(row),
                body=rows.body(row), kinds=(row.kind,), row=row,
                info={"config": str(path), "features": list(row.features)})


def startup(fleet: Fleet, spec: Spec, cpus: frozenset[int] | None, spawns: int,
            notes: list[str]) -> list[float]:
    """Milliseconds from spawn to ready, over `spawns` fresh processes, each stopped after."""
    samples = []
    for _ in range(spawns):
        port = free_port()
        service = fleet.spawn(f"{spec.name}-startup", spec.argv_for_port(port), port=port,
                              ready_path=spec.ready_path, cpus=cpus, env=spec.env,
                              log_name=f"{spec.name}-startup.log")
        samples.append(service.wait_ready(timeout=120) * 1000)
        status = fleet.stop(service)
        if status != 0 and spec.role == "row":
            notes.append(f"{spec.name} exited with status {status} on SIGTERM (expected 0); "
                         f"see {service.log_path}")
    return samples


def _request(port: int, method: str, path: str, body: bytes | None,
             headers: Mapping[str, str]) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def check(name: str, port: int, spec: Spec | None, kind: Kind, body: bytes,
          headers: Mapping[str, str], notes: list[str]) -> int:
    """Two requests through the target must come back whole (the second one is a cache hit
    in `hit`), or the run would time error pages; a row's expectations are checked on the
    second answer. Returns the number of requests sent."""
    sent = {**headers, "Content-Type": "application/json"}
    for _ in range(2):
        status, got, answer = _request(port, "POST", "/v1/chat/completions", body, sent)
        whole = (b"[DONE]" in answer and got.get("content-type", "").startswith(
            "text/event-stream")) if kind == "stream" else b'"chat.completion"' in answer
        if status != 200 or not whole:
            raise ServiceFailed(f"{name} answered a {'stream' if kind == 'stream' else 'chat'} "
                                f"with {status}: {answer[:300]!r} (headers sent: "
                                f"{', '.join(headers)})")
    if spec is not None and spec.row is not None:
        for header, value in rows.answer_headers(spec.row):
            seen = got.get(header)
            if seen is None or (value is not None and seen != value):
                notes.append(f"row {name}: answers should carry `{header}: {value or '…'}` but "
                             f"carry {f'`{seen}`' if seen else 'no such header'}: the row may "
                             "not measure what its name says")
    return 2


def check_stages(spec: Spec, port: int, notes: list[str], *, judge: bool = True) -> None:
    """Record the sidecar's stage list; when judging, note stages a row's features imply but
    it lacks, and feature stages running where the row turns the feature off."""
    assert spec.row is not None
    status, _, answer = _request(port, "GET", "/sidecar/config", None, {})
    if status != 200:
        notes.append(f"row {spec.name}: /sidecar/config answered {status}; stages not checked")
        return
    stages = list(orjson.loads(answer).get("stages", []))
    spec.info["stages"] = stages
    if not judge:
        return
    missing = [s for s in rows.expected_stages(spec.row) if s not in stages]
    extra = [s for s in rows.forbidden_stages(spec.row) if s in stages]
    if missing or extra:
        said = "; ".join(part for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"running {', '.join(extra)} that the row turns off" if extra else "") if part)
        notes.append(f"row {spec.name}: stages {stages}: {said} (bench/rows.py says what each "
                     "row runs)")
