"""Conformance: the openai SDK's own generated test suite against a mock of the OpenAPI spec it
was generated from, directly and through the sidecar, and every test that passes directly but
not through the sidecar.

    .venv/bin/python -m bench.conformance [--version V] [--spec PATH_OR_URL] [--cache DIR]
        [--tests tests/api_resources] [--workers 2] [--configs direct,defaults,every_feature]

It fetches what it needs when it runs (bench/conformance_setup.py: the sdist from PyPI, the
spec, a virtualenv with that openai version and pytest, Prism from npm), into `--cache`
(default ~/.cache/llm-sidecar/conformance); nothing third-party is kept in the repository. Then
it starts Prism on the spec and runs the sdist's `tests/api_resources` (every resource and
method: sync and async, raw and streaming variants) three ways:

    direct          TEST_API_BASE_URL = Prism
    defaults        through `llm-sidecar serve` with no config but the upstream (Prism) and a
                    state directory: memory cache, SQLite ledger, metrics, the inspector
    every_feature   through it with local keys (the suite's two keys), the provider's key,
                    cache, spend with prices and a blocking budget (unpriced paths recorded),
                    pseudonymizing redaction,
                    content capture, OTLP/HTTP export of every signal to a local receiver,
                    Prometheus and the inspector

It prints passed, failed and skipped per configuration, lists each test that passes directly
but fails through the sidecar (with the first line of its failure), and writes the whole result
to `<cache>/results-<version>.json`. It needs the network (PyPI, npm) and takes minutes: it is
not part of CI; each finding it made is covered by a test of the project's own
(tests/e2e/test_conformance.py). docs/conformance.md has the figures of the last run.
"""

from __future__ import annotations

import argparse
import http.server
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import orjson
import yaml

from bench.conformance_setup import SetupFailed, Suite, prepare
from bench.processes import free_port, wait_for_port

KEY, ADMIN_KEY = "My API Key", "My Admin API Key"  # what the suite's clients send
CONFIGS = ("direct", "defaults", "every_feature")


def sidecar_config(which: str, prism: str, state: Path, port: int, receiver: int
                   ) -> dict[str, Any]:
    config: dict[str, Any] = {"listen": {"port": port}, "state_dir": str(state),
                              "upstream": {"url": prism}}
    if which == "every_feature":
        config.update({
            "upstream": {"url": prism, "api_key": KEY},
            "auth": {"required": True, "keys": [{"name": "sdk", "token": KEY},
                                                {"name": "admin", "token": ADMIN_KEY}]},
            "cache": {"backend": "memory"},
            # unpriced passthrough paths recorded, not refused: under a blocking budget the
            # default (block) answers 403 unpriced_path to every write no price covers
            # (fine-tuning, runs, admin writes ...), which measures that rule, not the relay
            "spend": {"prices": {"*": {"prompt": 1e-6, "completion": 2e-6}},
                      "budgets": [{"name": "cap", "limit_usd": 1_000_000, "action": "block"}],
                      "unpriced_paths": "record"},
            "privacy": {"redact": {"mode": "pseudonymize"}},
            "telemetry": {"prometheus": True, "capture_content": True, "exporters": [
                {"protocol": "http", "endpoint": f"http://127.0.0.1:{receiver}"}]},
            "admin": {"ui": True}})
    return config


class _Receiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that accepts everything (the export must not fail the run)."""

    received = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def receiver() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


@contextmanager
def service(argv: list[str], port: int, log: Path, what: str, ready: str | None = None,
            timeout: float = 180.0) -> Iterator[None]:
    """A process on `port`, stopped on exit; `ready`: a path that must answer 200 first."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, what, timeout)
        deadline = time.monotonic() + timeout
        while ready is not None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{ready}", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"{what} did not become ready; see {log}") from None
                time.sleep(0.2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def run_tests(suite: Suite, base_url: str, junit: Path, tests: str, workers: int) -> None:
    env = {**os.environ, "TEST_API_BASE_URL": base_url}
    env.pop("OPENAI_API_KEY", None)
    env.pop("OPENAI_BASE_URL", None)
    argv = [str(suite.python), "-m", "pytest", tests, "-q", "-p", "no:cacheprovider",
            "-o", "addopts=", "--tb=line", f"--junitxml={junit}"]
    if workers > 1:
        argv += ["-n", str(workers)]
    subprocess.run(argv, cwd=suite.source, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


def outcomes(junit: Path) -> dict[str, tuple[str, str]]:
    """test id -> (passed | failed | skipped, the failure's first line)."""
    out: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        state, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                state = "failed"
                message = (child.get("message") or child.text or "").strip().split("\n")[0]
            elif child.tag == "skipped" and state == "passed":
                state = "skipped"
        out[test] = (state, message[:200])
    return out


def run(suite: Suite, configs: list[str], tests: str, workers: int, work: Path
        ) -> dict[str, dict[str, tuple[str, str]]]:
    prism_port = free_port()
    prism = f"http://127.0.0.1:{prism_port}"
    results: dict[str, dict[str, tuple[str, str]]] = {}
    argv = [str(suite.prism), "mock", "-h", "127.0.0.1", "-p", str(prism_port), str(suite.spec)]
    with service(argv, prism_port, work / "prism.log", "Prism", timeout=300), receiver() as otlp:
        for which in configs:
            started = time.monotonic()
            junit = work / f"{which}.xml"
            if which == "direct":
                run_tests(suite, prism, junit, tests, workers)
            else:
                port = free_port()
                state = work / f"state-{which}"
                state.mkdir()
                config = work / f"{which}.yaml"
                config.write_text(yaml.safe_dump(sidecar_config(which, prism, state, port, otlp)))
                serve = [str(Path(sys.executable).parent / "llm-sidecar"), "serve", "--config",
                         str(config)]
                with service(serve, port, work / f"sidecar-{which}.log", f"sidecar ({which})",
                             ready="/readyz"):
                    run_tests(suite, f"http://127.0.0.1:{port}/v1", junit, tests, workers)
            results[which] = outcomes(junit)
            print(f"  {which}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        print(f"  OTLP requests received (every_feature): {_Receiver.received}", file=sys.stderr)
    return results


def report(version: str, spec: Path, results: dict[str, dict[str, tuple[str, str]]]) -> str:
    lines = [f"openai {version}, spec {spec.name}", "",
             f"{'configuration':<16}{'tests':>8}{'passed':>8}{'failed':>8}{'skipped':>9}"]
    for which, found in results.items():
        counts = {state: sum(1 for s, _ in found.values() if s == state)
                  for state in ("passed", "failed", "skipped")}
        lines.append(f"{which:<16}{len(found):>8}{counts['passed']:>8}{counts['failed']:>8}"
                     f"{counts['skipped']:>9}")
    direct = results.get("direct", {})
    for which, found in results.items():
        if which == "direct":
            continue
        lost = sorted(test for test, (state, _) in direct.items()
                      if state == "passed" and found.get(test, ("missing", ""))[0] != "passed")
        lines += ["", f"passed directly, not through the sidecar ({which}): {len(lost)}"]
        lines += [f"  {test}  {found.get(test, ('', 'not run'))[1]}" for test in lost]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.conformance",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default=importlib.metadata.version("openai"),
                        help="the openai release whose suite runs (default: the installed one)")
    parser.add_argument("--spec", help="the OpenAPI spec, a path or URL (default: the one the "
                        "sdist names, else <cache>/openai-<version>.openapi.yml)")
    parser.add_argument("--cache", type=Path,
                        default=Path.home() / ".cache" / "llm-sidecar" / "conformance")
    parser.add_argument("--tests", default="tests/api_resources")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    if not set(configs) <= set(CONFIGS):
        parser.error(f"--configs: choose from {', '.join(CONFIGS)}")
    try:
        suite = prepare(args.version, args.cache, args.spec)
    except SetupFailed as exc:
        print(exc, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="conformance-") as tmp:
        results = run(suite, configs, args.tests, args.workers, Path(tmp))
    text = report(suite.version, suite.spec, results)
    print(text)
    (args.cache / f"results-{suite.version}.json").write_bytes(orjson.dumps(
        {"version": suite.version, "spec": str(suite.spec), "results": results},
        option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
