"""Build Settings: defaults → YAML file → `SIDECAR_*` env vars → command-line flags.

Each later source wins. String values in the file may use `${VAR}` / `${VAR:-default}` (expanded
from the environment) and `file:/path` (read from a mounted secret; one trailing newline is
dropped). Every problem is collected, then raised together as one `ConfigError` whose lines name
the dotted key, so `check-config` can print one line per problem.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sidecar.config.schema import Settings

# Env var -> dotted key. INTERFACE.md §2 lists these; SIDECAR_CONFIG names the file (see cli.py).
ENV_OVERRIDES: dict[str, str] = {
    "SIDECAR_HOST": "listen.host",
    "SIDECAR_PORT": "listen.port",
    "SIDECAR_ADMIN_HOST": "admin.host",  # the injector pins the probed admin listener (inject/)
    "SIDECAR_ADMIN_PORT": "admin.port",
    "SIDECAR_UPSTREAM_URL": "upstream.url",
    "SIDECAR_UPSTREAM_API_KEY": "upstream.api_key",
    "SIDECAR_CACHE": "cache.backend",
    "SIDECAR_REDIS_URL": "cache.redis_url",
    "SIDECAR_REDIS_PASSWORD": "cache.redis_password",
    "SIDECAR_LEDGER": "spend.ledger",
    "SIDECAR_ZDR": "privacy.zdr",
    "SIDECAR_LOG_FORMAT": "telemetry.logs.format",
    "SIDECAR_LOG_LEVEL": "telemetry.logs.level",
    "SIDECAR_STATE_DIR": "state_dir",
}

# Names pydantic puts into an error's location for the branches of a union (not config keys).
_UNION_BRANCHES = frozenset({"Price"})
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """The configuration is invalid; `problems` holds one human-readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_settings(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read, expand, override and validate; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    problems: list[str] = []
    raw, refs = _read_yaml(Path(path), problems) if path is not None else ({}, {})
    raw = _expand(raw, "", env, problems, refs)
    sources: dict[str, str] = {}
    for var, dotted in ENV_OVERRIDES.items():
        if var in env:
            _set_dotted(raw, dotted, env[var])
            sources[dotted] = var
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
            sources[dotted] = "command line"
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems += _describe(exc, sources)
    if problems:
        raise ConfigError(problems)
    return settings


def _read_yaml(path: Path, problems: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse the file with each ${...} swapped for a plain placeholder first.

    So `token: ${TOKEN}` parses even inside a flow mapping (`{...}`, where a bare `{` would
    start a nested map), and an expanded value can never change the YAML's structure: values
    are substituted after parsing, into strings only. Returns the data and placeholder -> ref.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        problems.append(f"{path}: cannot read the config file ({exc.strerror or exc})")
        return {}, {}
    refs: dict[str, str] = {}
    prefix = f"sidecarref{secrets.token_hex(4)}n"

    def protect(match: re.Match[str]) -> str:
        placeholder = f"{prefix}{len(refs)}x"
        refs[placeholder] = match.group(0)
        return placeholder

    try:
        data = yaml.safe_load(_VAR.sub(protect, text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.append(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}")
        return {}, {}
    if data is None:
        return {}, refs
    if not isinstance(data, dict):
        problems.append(f"{path}: the top level must be a mapping of sections, "
                        f"not a {type(data).__name__}")
        return {}, {}
    return data, refs


def _expand(value: Any, key: str, env: Mapping[str, str], problems: list[str],
            refs: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{key}.{k}" if key else str(k), env, problems, refs)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{key}[{i}]", env, problems, refs) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    for placeholder, ref in refs.items():
        if placeholder in value:
            value = value.replace(placeholder, ref)

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env and (env[name] or default is None):
            return env[name]
        if default is not None:
            return default
        problems.append(f"{key}: environment variable {name} is not set "
                        f"(use ${{{name}:-}} to allow it to be empty)")
        return ""

    expanded = _VAR.sub(substitute, value)
    if expanded.startswith("file:"):
        secret_path = Path(expanded[5:])
        try:
            return secret_path.read_text().removesuffix("\n")
        except OSError as exc:
            problems.append(f"{key}: cannot read secret file {secret_path} "
                            f"({exc.strerror or exc})")
            return ""
    return expanded


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _describe(exc: ValidationError, sources: Mapping[str, str]) -> list[str]:
    lines: list[str] = []
    for error in exc.errors(include_url=False, include_input=False):
        parts: list[str] = []
        for part in error["loc"]:
            if isinstance(part, int):
                parts[-1:] = [f"{parts[-1] if parts else ''}[{part}]"]
            elif not (part in _UNION_BRANCHES or part.startswith("literal[")):
                parts.append(part)
        dotted = ".".join(parts) or "(top level)"
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see the configuration reference)"
        source = sources.get(dotted)
        line = f"{dotted} (from {source}): {message}" if source else f"{dotted}: {message}"
        if line not in lines:
            lines.append(line)
    return lines
