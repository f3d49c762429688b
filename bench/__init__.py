"""The benchmark: `python -m bench` measures the sidecar against a floor relay and a direct call.

    load generator ─► direct:  fake upstream
                   ─► floor:   bench/floor.py    ─► fake upstream
                   ─► sidecar: llm-sidecar serve ─► fake upstream

Every piece runs as its own process (bench/README.md explains what each number means):
`upstream.py` the fast fake upstream and `floor.py` the thinnest aiohttp relay (both served by
`serving.py` as the sidecar serves itself), `loadgen.py` the asyncio load generator,
`drivers.py` which generator runs and how its output is read, `processes.py` spawning, pinning,
sampling and stopping processes, `measurements.py` one target's numbers over interleaved
rounds, `run.py` the sequence, `report.py` the table and the JSON, `profile.py` `--profile`.
Nothing here is imported by the sidecar.
"""
