"""`llm-sidecar inject`: its flags, and running the webhook until SIGTERM.

Every flag has an environment variable (LLM_SIDECAR_INJECT_<FLAG>), so the chart can set them
either way. Importing this module imports argparse only: the server's modules load when the
command runs (`llm-sidecar version` stays fast).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sidecar.inject.admission import Injector
    from sidecar.inject.server import ServingCertificate

ENV_PREFIX = "LLM_SIDECAR_INJECT_"
EXIT_INVALID_CONFIG = 2
DESCRIPTION = """\
Serve the Kubernetes mutating admission webhook that injects llm-sidecar into pods labelled
llm-sidecar.io/inject=true, or into every pod of a namespace so labelled (HTTPS, AdmissionReview
v1; POST /inject for pod labels, POST /inject/namespace for namespace labels, GET /healthz).
Pod annotations override per pod: llm-sidecar.io/config-map, llm-sidecar.io/image,
llm-sidecar.io/secret, llm-sidecar.io/{cpu,memory}-{request,limit}; llm-sidecar.io/inject:
"false" opts a pod out. Each flag can also be set by the environment variable shown."""
EPILOG = """\
failures: the webhook configuration's failurePolicy decides what the API server does when it
gets no answer (injector down, timeout, TLS error): Ignore creates the pod without the sidecar,
Fail refuses it. --fail-closed decides what the injector answers when it fails itself while
deciding: admit without the sidecar (default, with a warning) or refuse. Invalid llm-sidecar.io
annotations always refuse the pod, naming them.

exit status: 0 after SIGTERM/SIGINT; 1 when it cannot listen; 2 when a flag, the template or
the certificate is invalid."""


def _env(flag: str) -> str:
    return ENV_PREFIX + flag.upper().replace("-", "_")


def add_inject_parser(commands: Any) -> None:
    """Add the `inject` sub-command to the CLI's sub-parsers."""
    parser = commands.add_parser(
        "inject", help="serve the Kubernetes admission webhook that injects the sidecar",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)

    def flag(name: str, help_text: str, **kwargs: Any) -> None:
        env = _env(name)
        default = os.environ.get(env, kwargs.pop("default", None))
        parser.add_argument(f"--{name}", default=default, help=f"{help_text} (${env})", **kwargs)

    flag("cert-file", "required: the TLS certificate (PEM, chain first) the webhook serves; "
                      "re-read when it changes", metavar="FILE")
    flag("key-file", "required: its private key (PEM)", metavar="FILE")
    flag("host", "listen address (default 0.0.0.0)", default="0.0.0.0")
    flag("port", "listen port (default 8443)", default="8443", metavar="PORT")
    flag("template", "the sidecar template file the chart renders (default: the packaged "
                     "one, made from the chart's default values)", metavar="FILE")
    flag("config-map", "ConfigMap (key config.yaml, in the pod's namespace) the sidecar reads "
                       "when the pod names none (default: the template's, llm-sidecar)",
         metavar="NAME")
    flag("image", "sidecar image when the pod names none (default: the template's)",
         metavar="IMAGE")
    flag("secret", "Secret (in the pod's namespace) whose keys become the sidecar's "
                   "environment, e.g. SIDECAR_UPSTREAM_API_KEY, when the pod names none "
                   "(default: none)", metavar="NAME")
    flag("fail-closed", "deny a pod when the injector itself fails (default: admit it "
                        "without the sidecar, with a warning)", action="store_const",
         const="true")
    flag("cert-check-seconds", "how often the certificate files are checked for a change "
                               "(default 30)", default="30", metavar="S")
    flag("log-format", "json or console (default json)", default="json",
         choices=["json", "console"])
    flag("log-level", "debug, info, warning or error (default info)", default="info",
         choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    """Check the flags and files, then serve until SIGTERM/SIGINT. Exit 2 on bad settings."""
    from sidecar.config.schema import LogSettings
    from sidecar.telemetry.logs import configure_logging

    problems, options = _checked(args)
    for problem in problems:
        print(f"llm-sidecar inject: {problem}", file=sys.stderr)
    if options is None:
        return EXIT_INVALID_CONFIG
    configure_logging(LogSettings(format=args.log_format, level=args.log_level))
    return asyncio.run(_serve(**options))


def _checked(args: argparse.Namespace) -> tuple[list[str], dict[str, Any] | None]:
    from sidecar.inject.admission import Injector
    from sidecar.inject.annotations import is_image_reference, is_object_name
    from sidecar.inject.patch import Defaults
    from sidecar.inject.server import ServingCertificate
    from sidecar.inject.template import TemplateError, load_template

    problems = []
    for name in ("cert_file", "key_file"):
        if not getattr(args, name):
            problems.append(f"--{name.replace('_', '-')} is required (or ${_env(name)})")
    port = _number(args.port, "--port", problems, low=1, high=65535)
    interval = _number(args.cert_check_seconds, "--cert-check-seconds", problems, low=1)
    for value, what in ((args.config_map, "--config-map"), (args.secret, "--secret")):
        if value is not None and not is_object_name(value):
            problems.append(f"{what} must be a Kubernetes object name, not {value!r}")
    if args.image is not None and not is_image_reference(args.image):
        problems.append(f"--image is not an image reference: {args.image!r}")
    for name, allowed in (("log_format", ("json", "console")),
                          ("log_level", ("debug", "info", "warning", "error"))):
        if getattr(args, name) not in allowed:
            problems.append(f"--{name.replace('_', '-')} must be one of {', '.join(allowed)}, "
                            f"not {getattr(args, name)!r}")
    fail_closed = str(args.fail_closed or "false").lower()
    if fail_closed not in ("true", "false", "1", "0"):
        problems.append(f"{_env('fail-closed')} must be true or false, not {args.fail_closed!r}")
    try:
        template = load_template(args.template)
    except TemplateError as exc:
        problems.append(str(exc))
    if problems:
        return problems, None
    try:
        certificate = ServingCertificate(Path(args.cert_file), Path(args.key_file))
    except ValueError as exc:
        return [str(exc)], None
    injector = Injector(template, Defaults(config_map=args.config_map, image=args.image,
                                           secret=args.secret),
                        fail_closed=fail_closed in ("true", "1"))
    return [], {"injector": injector, "certificate": certificate, "host": args.host,
                "port": port, "interval_s": interval}


def _number(text: str, what: str, problems: list[str], *, low: int,
            high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        problems.append(f"{what} must be a whole number, not {text!r}")
        return 0
    if value < low or (high is not None and value > high):
        problems.append(f"{what} must be between {low} and {high}" if high is not None
                        else f"{what} must be at least {low}")
    return value


async def _serve(injector: Injector, certificate: ServingCertificate, host: str, port: int,
                 interval_s: int) -> int:
    import structlog
    from aiohttp import web

    from sidecar import __version__
    from sidecar.inject.server import create_inject_app

    log = structlog.get_logger("sidecar.inject")
    runner = web.AppRunner(create_inject_app(injector), access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=certificate.context).start()
    except OSError as exc:
        log.error("listen_failed", host=host, port=port, error=str(exc))
        await runner.cleanup()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    watch = asyncio.create_task(certificate.watch(interval_s))
    log.info("listening", version=__version__, url=f"https://{host}:{port}",
             sidecar_image=injector.defaults.image or injector.template.image,
             config_map=injector.defaults.config_map or injector.template.config_map,
             fail_closed=injector.fail_closed)
    await stop.wait()
    watch.cancel()
    log.info("stopping")
    await runner.cleanup()
    return 0
