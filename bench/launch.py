"""Start everything a run measures and check it: the fake upstream, an OTLP receiver when a
telemetry row runs, the floor, one sidecar per row, the peers; then one `Target` per process
and kind of answer (JSON chats; paced streams when the `stream` row runs).

Each process under test is first timed from spawn to ready over fresh spawns, then started for
good on the CPU under test; each row's stages are checked (targets.py). The configs of the rows
are kept with the results (`configs/`), since the run's temporary directory goes at its end.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import otlp, peers, rows, targets
from bench.measurements import Pinning, Target
from bench.options import REPO, Options, relative
from bench.processes import Fleet, Service, free_port
from bench.rows import Kind, Row
from bench.targets import Spec

PEERS_DIR = REPO / "bench" / ".peers"
CUSTOM = "custom"  # the row of --sidecar-config


def selected_rows(options: Options) -> list[Row]:
    chosen = [rows.row(name) for name in options.rows]
    if options.sidecar_config is not None:
        chosen.append(Row(CUSTOM, (), f"the sidecar with {options.sidecar_config}"))
    return chosen


@dataclass(slots=True)
class Launched:
    """What the set-up hands to the measurements."""

    targets: list[Target] = field(default_factory=list)
    specs: dict[str, Spec] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def launch(fleet: Fleet, options: Options, pinning: Pinning, workdir: Path, chosen: list[Row],
          log: Callable[[str], None], notes: list[str]) -> tuple[Launched, Service]:
    """Spawn upstream, receiver, floor, rows and peers; time start-ups; check row stages."""
    kinds: tuple[Kind, ...] = ("json", "stream") if any(r.kind == "stream" for r in chosen) \
        else ("json",)
    bodies = targets.write_bodies(workdir)
    up_port = free_port()
    upstream = fleet.spawn(
        "upstream", [sys.executable, "-m", "bench.upstream", "--port", str(up_port),
                     "--chunks", str(options.chunks), "--pacing-ms", str(options.pacing_ms)],
        port=up_port, ready_path="/v1/models", cpus=pinning.upstream)
    upstream.wait_ready()
    upstream_url = f"http://127.0.0.1:{up_port}"
    started = Launched()
    context = {"upstream": upstream_url, "otlp": "http://127.0.0.1:4317",
               "otlp_protocol": "grpc"}
    if any(rows.needs_otlp(r) for r in chosen):
        receiver = otlp.plan(sys.executable, free_port(), free_port(), workdir)
        fleet.spawn("otlp", receiver.argv, port=receiver.port, ready_path="/",
                    cpus=pinning.upstream, ready_any=True).wait_ready()
        context.update(otlp=receiver.endpoint, otlp_protocol=receiver.protocol)
        started.settings["otlp"] = (f"{receiver.name}, OTLP/{receiver.protocol} at "
                                    f"{receiver.endpoint}")
        if receiver.name == "sink":
            notes.append("rotel is not installed (pip install -e '.[bench]'): the telemetry "
                         "rows export OTLP/HTTP to bench/otlp.py's sink instead of OTLP/gRPC")

    extra = dict(options.headers)
    specs = [targets.floor_spec(upstream_url, kinds)]
    for r in chosen:
        config = options.sidecar_config if r.name == CUSTOM else None
        specs.append(targets.row_spec(r, upstream_url, context, workdir, options.access_log,
                                      config))
    for name in options.peers:
        run = peers.prepare(name, PEERS_DIR, upstream_url, workdir, log)
        specs.append(Spec(name, "peer", run.argv_for_port, run.ready_path,
                          env={**os.environ, **run.env}, headers=run.headers, kinds=kinds,
                          python=run.python, info={"version": run.version}))
    started.settings["peers"] = {s.name: s.info["version"] for s in specs if s.role == "peer"}
    configs = options.results_dir / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        if "config" in spec.info:  # kept with the results: the temporary one goes at the end
            kept = configs / f"{spec.name}.yaml"
            shutil.copy(spec.info["config"], kept)
            spec.info["config"] = relative(kept)
    started.settings["configs"] = relative(configs)

    log(f"start-up ({options.startup_spawns} spawns each of {len(specs)} processes) ...")
    startup = {s.name: targets.startup(fleet, s, pinning.under_test, options.startup_spawns,
                                       notes) for s in specs}
    for spec in specs:
        port = free_port()
        started.services[spec.name] = fleet.spawn(
            spec.name, spec.argv_for_port(port), port=port, ready_path=spec.ready_path,
            cpus=pinning.under_test, env=spec.env)
        started.specs[spec.name] = spec
    for spec in specs:
        started.services[spec.name].wait_ready(timeout=120)
        if spec.row is not None:  # a --sidecar-config runs what its file says: not judged
            targets.check_stages(spec, started.services[spec.name].port, notes,
                                 judge=spec.name != CUSTOM)

    for kind in kinds:
        suffix = "" if kind == "json" else "-stream"
        started.targets.append(Target(
            f"direct{suffix}", kind, "direct", "direct (fake upstream)", upstream,
            f"{upstream.url}/v1", bodies["chat", kind],
            tuple(targets.client_headers({}, extra).items())))
        for spec in specs:
            if kind not in spec.kinds:
                continue
            name = spec.name if kind == spec.kinds[0] else f"{spec.name}{suffix}"
            service = started.services[spec.name]
            started.targets.append(Target(
                name, kind, spec.role, spec.name, service, f"{service.url}/v1",
                bodies[spec.body, kind],
                tuple(targets.client_headers(spec.headers, extra).items()),
                startup[spec.name] if name == spec.name else [], spec.info))
    return started, upstream
