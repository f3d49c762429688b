"""The `llm-sidecar` command (INTERFACE.md §1): argument parsing and dispatch only."""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from sidecar import __version__
from sidecar.config import ConfigError, Settings, load_settings
from sidecar.inject.command import add_inject_parser
from sidecar.spend.windows import REPORT_BYS, REPORT_WINDOWS

EXIT_INVALID_CONFIG = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-sidecar",
        description="A local OpenAI-compatible proxy: point OPENAI_BASE_URL at "
                    "http://127.0.0.1:4141/v1.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the proxy")
    serve.add_argument("--config", help="YAML config file (default: $SIDECAR_CONFIG; "
                                        "none is needed)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 4141)")
    serve.add_argument("--upstream", metavar="URL|demo",
                       help="upstream base URL, or 'demo' for the built-in offline upstream")

    check = commands.add_parser("check-config", help="validate a config file; exit 2 if invalid")
    check.add_argument("file")

    health = commands.add_parser(
        "health", help="probe a running sidecar's /healthz (exit 0 when healthy), "
                       "e.g. for a container HEALTHCHECK")
    health.add_argument("--config", help="config file to find the listener from "
                                         "(default: $SIDECAR_CONFIG)")
    health.add_argument("--url", help="base URL to probe instead, e.g. http://127.0.0.1:4141")
    health.add_argument("--ready", action="store_true", help="probe /readyz instead")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")

    usage = commands.add_parser(
        "usage", help="spend and tokens from the ledger (works while the sidecar is stopped)")
    usage.add_argument("--window", choices=REPORT_WINDOWS, default="day",
                       help="the current UTC minute, hour, day, week (from Monday), month, or "
                            "all (default day)")
    usage.add_argument("--by", choices=REPORT_BYS, default="model",
                       help="group rows by (default model)")
    usage.add_argument("--json", action="store_true",
                       help="print the same JSON object as GET /sidecar/usage")
    where = usage.add_mutually_exclusive_group()
    where.add_argument("--config", help="config file naming the ledger (default: "
                                        "$SIDECAR_CONFIG; none: the default ledger)")
    where.add_argument("--url", help="a running sidecar's admin URL instead, e.g. "
                                     "http://127.0.0.1:4141")
    usage.add_argument("--token", default=os.environ.get("SIDECAR_ADMIN_TOKEN"),
                       help="admin token for --url (default: $SIDECAR_ADMIN_TOKEN)")

    reload = commands.add_parser(
        "reload", help="make a running sidecar read its configuration file again and apply it "
                       "without a restart (POST /sidecar/reload; SIGHUP does the same)")
    reload.add_argument("--config", help="config file to find the admin listener from "
                                         "(default: $SIDECAR_CONFIG)")
    reload.add_argument("--url", help="the sidecar's admin URL instead, e.g. "
                                      "http://127.0.0.1:4141")
    reload.add_argument("--token", default=os.environ.get("SIDECAR_ADMIN_TOKEN"),
                        help="admin token (default: $SIDECAR_ADMIN_TOKEN)")
    reload.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")

    add_inject_parser(commands)
    from sidecar.auto.explain import add_parser as add_auto

    add_auto(commands)
    commands.add_parser("version", help="print the version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"llm-sidecar {__version__}")
        return 0
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "inject":
        from sidecar.inject.command import run as run_inject

        return run_inject(args)
    config_path = args.config or os.environ.get("SIDECAR_CONFIG") or None
    if args.command == "health":
        return _health(args, config_path)
    if args.command == "usage":
        return _usage(args, config_path)
    if args.command == "auto":
        return _auto(args, config_path)
    if args.command == "reload":
        return _reload(args, config_path)
    overrides = {"listen.host": args.host, "listen.port": args.port,
                 "upstream.url": args.upstream}
    settings = _load_or_report(config_path, overrides)
    if settings is None:
        return EXIT_INVALID_CONFIG

    from sidecar.server import run
    from sidecar.telemetry.logs import configure_logging

    configure_logging(settings.telemetry.logs, zdr=settings.privacy.zdr)
    return run(settings, partial(load_settings, config_path, overrides=overrides),
               Path(config_path) if config_path else None)


def _load_or_report(path: str | None, overrides: dict[str, object]) -> Settings | None:
    try:
        return load_settings(path, overrides=overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config error: {problem}", file=sys.stderr)
        return None


def _usage(args: argparse.Namespace, config_path: str | None) -> int:
    from sidecar.spend.usage_cli import run as report

    if args.url:
        return report(args, None)
    settings = _load_or_report(config_path, {})
    return EXIT_INVALID_CONFIG if settings is None else report(args, settings)


def _auto(args: argparse.Namespace, config_path: str | None) -> int:
    from sidecar.auto.explain import run as explain

    settings = _load_or_report(config_path, {})
    return EXIT_INVALID_CONFIG if settings is None else explain(args, settings)


def _check_config(path: str) -> int:
    settings = _load_or_report(path, {})
    if settings is None:
        return EXIT_INVALID_CONFIG
    print(f"{path}: ok")
    return 0


def _admin_url(settings: Settings) -> str:
    """Where this config's admin routes (and probes) listen, as seen from this machine."""
    host, port = settings.listen.host, settings.listen.port
    if settings.admin.port is not None:
        host, port = settings.admin.host, settings.admin.port
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def _reload(args: argparse.Namespace, config_path: str | None) -> int:
    base = args.url
    if base is None:
        settings = _load_or_report(config_path, {})
        if settings is None:
            return EXIT_INVALID_CONFIG  # the running sidecar would refuse it too
        base = _admin_url(settings)
    request = urllib.request.Request(base.rstrip("/") + "/sidecar/reload", method="POST",
                                     data=b"", headers={"Authorization": f"Bearer {args.token}"}
                                     if args.token else {})
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        print(f"reload failed: {base}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    print(body.decode("utf-8", "replace"))
    return 0 if status == 200 else 1


def _health(args: argparse.Namespace, config_path: str | None) -> int:
    base = args.url
    if base is None:
        settings = _load_or_report(config_path, {})
        if settings is None:
            return 1  # not 2: Docker's HEALTHCHECK reserves exit code 2
        base = _admin_url(settings)
    url = base.rstrip("/") + ("/readyz" if args.ready else "/healthz")
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    print(f"healthy: {url}")
    return 0
