"""The benchmark: `python -m bench` measures sidecar configurations against a floor relay and a
direct call, and optionally peer gateways, all against one fast fake upstream.

    load generator ─► direct:          fake upstream
                   ─► floor:           bench/floor.py              ─► fake upstream
                   ─► one row each:    llm-sidecar serve --config  ─► fake upstream
                                                      (telemetry rows) ─► OTLP receiver
                   ─► peers (--peers): LiteLLM, Portkey            ─► fake upstream

Every piece runs as its own process (bench/README.md explains every row, column and flag):
`upstream.py` the fake upstream, `floor.py` the thinnest aiohttp relay and `otlp.py` the OTLP
sink (served by `serving.py` as the sidecar serves itself); `rows.py` the sidecar configurations
as data, `peers.py` the peers; `options.py` the settings, `launch.py` and `targets.py` start
and check what is measured; `loadgen.py` the asyncio load generator, `drivers.py` which
generator runs and how its output is read, `processes.py` spawning, pinning, sampling and
stopping processes; `measurements.py` one target's numbers over interleaved rounds, `memory.py`
the soak; `run.py` the sequence; `report.py`, `verdicts.py` and `table.py` the results, the
targets and the markdown; `profile.py` `--profile`. Nothing here is imported by the sidecar.
"""
