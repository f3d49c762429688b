"""The Dockerfile: linted by hadolint, its promises (multi-stage, pinned slim base, non-root,
state volume, ports, health check) read off its instructions, and its entry command run
outside a container.

The image itself is built and run by scripts/image-check (podman, on a stand-in base; .ci/run
runs it after the test suite). Here, in the suite, the final stage's ENTRYPOINT + CMD,
HEALTHCHECK, ENV and default-config RUN are executed as they are written, with the venv's
`llm-sidecar` standing in for /opt/llm-sidecar/bin and only ports and paths changed to fit a
shared machine.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import shlex
import signal
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port
from tests.deploy.conftest import ROOT, VENV_BIN, clean_environ
from tests.fakes.waits import wait_ready

DOCKERFILE = ROOT / "Dockerfile"
IMAGE_BIN = "/opt/llm-sidecar/bin"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (no heredocs used)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    instructions: list[Instruction] = []
    stage = -1
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    return instructions


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text())
FINAL_STAGE = max(i.stage for i in INSTRUCTIONS)
FINAL = [i for i in INSTRUCTIONS if i.stage == FINAL_STAGE]


def final(keyword: str) -> list[str]:
    return [i.args for i in FINAL if i.keyword == keyword]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in final("ENV"):
        for pair in shlex.split(args):
            name, _, value = pair.partition("=")
            env[name] = value
    return env


def exec_form(args: str) -> list[str]:
    argv = json.loads(args)
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), args
    return argv


def healthcheck_argv() -> list[str]:
    (args,) = final("HEALTHCHECK")
    _, _, command = args.partition("CMD ")
    assert command, "HEALTHCHECK must use CMD"
    return exec_form(command)


def on_this_machine(argv: list[str]) -> list[str]:
    """The image's command with its program taken from the venv (it is on the image's PATH)."""
    program = argv[0].removeprefix(IMAGE_BIN + "/")
    assert "/" not in program, f"{argv[0]} is not on the image's PATH"
    return [str(VENV_BIN / program), *argv[1:]]


def default_config_into(directory: Path) -> Path:
    """Run the final stage's RUN that writes SIDECAR_CONFIG, with that path moved here."""
    image_path = image_env()["SIDECAR_CONFIG"]
    (command,) = [args for args in final("RUN") if image_path in args and "printf" in args]
    target = directory / Path(image_path).name
    env = clean_environ() | {"PATH": f"{VENV_BIN}:/usr/bin:/bin"}
    subprocess.run(["sh", "-ec", command.replace(image_path, str(target))], env=env,
                   check=True, capture_output=True, timeout=30)
    return target


def process_env(config: Path) -> dict[str, str]:
    """The image's ENV on this machine: SIDECAR_CONFIG and PATH point at local paths."""
    env = clean_environ() | image_env()
    env["SIDECAR_CONFIG"] = str(config)
    env["PATH"] = f"{VENV_BIN}:{clean_environ().get('PATH', '/usr/bin:/bin')}"
    return env


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


# ---- lint and structure ----

def test_hadolint_finds_nothing() -> None:
    """hadolint reports no finding at all (threshold info, stricter than warning)."""
    result = subprocess.run([str(VENV_BIN / "hadolint"), "--no-color", "--failure-threshold",
                             "info", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def global_args() -> dict[str, str]:
    """The ARG defaults declared before the first FROM, each expanded with those before it."""
    args: dict[str, str] = {}
    for instruction in INSTRUCTIONS:
        if instruction.keyword == "ARG" and instruction.stage == -1:
            name, _, default = instruction.args.partition("=")
            args[name] = expand(default, args)
    return args


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], text)


def test_multi_stage_on_a_version_pinned_slim_python() -> None:
    """Two stages, both FROM the same python:3.11.<patch>-slim-<debian> image by default; the
    base is an ARG (the build stage's follows it) so a stand-in can take its place."""
    bases = [i.args for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert bases == ["${BUILD_IMAGE} AS build", "${PYTHON_IMAGE}"]
    args = global_args()
    images = {expand(base.split()[0], args) for base in bases}
    (image,) = images
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", image), image


def test_pip_settings_reach_the_build_as_secrets_only() -> None:
    """The build's pip reads a pip.conf and a CA from secret mounts (present for that RUN only);
    no ARG or ENV carries a pip setting, which would be written into the image's metadata."""
    (install,) = [i.args for i in INSTRUCTIONS if i.keyword == "RUN" and " install " in i.args
                  and "uninstall" not in i.args]
    assert install.startswith("--mount=type=secret,id=pip.conf --mount=type=secret,id=pip-ca ")
    assert "PIP_CONFIG_FILE=/run/secrets/pip.conf" in install
    assert "PIP_CERT=/run/secrets/pip-ca" in install
    declared = " ".join(i.args for i in INSTRUCTIONS if i.keyword in ("ARG", "ENV"))
    assert not re.search(r"PIP_|pip\.conf|INDEX_URL|CERT", declared, re.IGNORECASE)


def test_final_stage_has_no_build_tools() -> None:
    """The final stage installs no packages and removes pip; the venv comes from the build."""
    runs = " ".join(final("RUN"))
    assert not re.search(r"apt-get|apk |gcc|build-essential|pip install", runs)
    assert "pip uninstall" in runs
    assert any(args.startswith("--from=build ") for args in final("COPY"))


def test_runs_as_a_numeric_non_root_user() -> None:
    """USER is a numeric uid:gid other than 0, so runAsNonRoot can verify it."""
    (user,) = final("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0


def test_environment_suits_a_read_only_root_filesystem() -> None:
    """No bytecode writes, and no SIDECAR_* default but the config path (env beats the file)."""
    env = image_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert [name for name in env if name.startswith("SIDECAR_")] == ["SIDECAR_CONFIG"]
    assert env["PATH"].startswith(IMAGE_BIN + ":")


def test_state_dir_is_a_volume_and_both_ports_are_exposed(tmp_path: Path) -> None:
    """VOLUME is the default config's state_dir; EXPOSE lists its proxy and admin ports."""
    config = yaml.safe_load(default_config_into(tmp_path).read_text())
    (volume,) = final("VOLUME")
    assert exec_form(volume) == [config["state_dir"]]
    exposed = {int(port) for args in final("EXPOSE") for port in args.split()}
    assert exposed == {config["listen"]["port"], config["admin"]["port"]}
    assert config["listen"]["host"] == "127.0.0.1"
    assert config["admin"]["host"] == "0.0.0.0"


def test_healthcheck_is_the_sidecars_own_command() -> None:
    """HEALTHCHECK runs `llm-sidecar health` (exec form), with a timeout and start period."""
    (args,) = final("HEALTHCHECK")
    assert "--timeout=" in args and "--start-period=" in args
    assert healthcheck_argv() == ["llm-sidecar", "health"]
    assert final("STOPSIGNAL") == ["SIGTERM"]


def test_dockerignore_sends_only_what_the_build_copies() -> None:
    """.dockerignore sends pyproject.toml, README.md and sidecar/; never .venv, .git or tests."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

    def matches(pattern: str, path: str) -> bool:
        # Docker's rules: a pattern is matched from the context root, `**/` at any depth, and
        # a match on a directory covers everything inside it; the last matching line wins.
        parts = path.split("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            tail = pattern.removeprefix("**/")
            return any(fnmatch.fnmatch("/".join(parts[k:n]), tail)
                       for n in range(1, len(parts) + 1) for k in range(n))
        return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)

    def excluded(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            if matches(pattern.removeprefix("!").rstrip("/"), path):
                verdict = not pattern.startswith("!")
        return verdict

    for kept in ("pyproject.toml", "README.md", "sidecar/cli.py", "sidecar/config/schema.py"):
        assert not excluded(kept), kept
    for dropped in (".venv/bin/python", ".git/HEAD", "tests/conftest.py",
                    "sidecar/__pycache__/cli.cpython-311.pyc", "deploy/README.md"):
        assert excluded(dropped), dropped
    copied = [i.args.split()[0] for i in INSTRUCTIONS if i.keyword == "COPY"
              and not i.args.startswith("--from")]
    assert copied == ["pyproject.toml", "sidecar"]


# ---- the entry command, run outside a container ----

def test_image_default_config_is_valid(tmp_path: Path) -> None:
    """The config the image writes passes `llm-sidecar check-config` (its RUN runs it too)."""
    config = default_config_into(tmp_path)
    result = subprocess.run([str(VENV_BIN / "llm-sidecar"), "check-config", str(config)],
                            env=clean_environ(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_entry_command_answers_healthz_passes_healthcheck_and_exits_0_on_sigterm(
        tmp_path: Path) -> None:
    """The entry command serves /healthz, passes HEALTHCHECK, and exits 0 on SIGTERM."""
    config_file = default_config_into(tmp_path)
    config = yaml.safe_load(config_file.read_text())
    config["listen"]["port"] = free_port()
    config["admin"]["port"] = free_port()
    config["state_dir"] = str(tmp_path / "state")
    config_file.write_text(yaml.safe_dump(config))
    env = process_env(config_file)
    (entrypoint,) = final("ENTRYPOINT")
    (cmd,) = final("CMD")
    argv = on_this_machine(exec_form(entrypoint) + exec_form(cmd))
    admin = f"http://127.0.0.1:{config['admin']['port']}"
    proxy = f"http://127.0.0.1:{config['listen']['port']}"

    log = tmp_path / "sidecar.log"
    with log.open("w") as output, subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=output,
                                                   stderr=subprocess.STDOUT) as server:
        try:
            try:
                asyncio.run(wait_ready(admin, path="/healthz", returncode=server.poll))
            except AssertionError as exc:
                pytest.fail(f"the entry command: {exc}: {log.read_text()}")
            assert http_status(f"{proxy}/healthz") == 200
            assert http_status(f"{admin}/readyz") == 200

            check = subprocess.run(on_this_machine(healthcheck_argv()), env=env,
                                   capture_output=True, text=True, timeout=30)
            assert check.returncode == 0, check.stderr
            assert f"{admin}/healthz" in check.stdout

            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=40) == 0, log.read_text()
        finally:
            if server.poll() is None:
                server.kill()
                server.wait()

    after = subprocess.run(on_this_machine(healthcheck_argv()), env=env, capture_output=True,
                           text=True, timeout=30)
    assert after.returncode == 1


def bearer_status(url: str, token: str | None = None) -> int | None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@pytest.mark.parametrize("token", [None, "image-admin-S3NTINEL"])
def test_image_default_config_closes_the_admin_routes_without_a_token(
        tmp_path: Path, token: str | None) -> None:
    """With the image's default config the admin port (0.0.0.0) serves probes and /metrics to
    anyone; its other admin routes are 403 unless SIDECAR_ADMIN_TOKEN gives a token, and then
    they need it."""
    config_file = default_config_into(tmp_path)
    config = yaml.safe_load(config_file.read_text())
    config["listen"]["port"], config["admin"]["port"] = free_port(), free_port()
    config["state_dir"] = str(tmp_path / "state")
    config_file.write_text(yaml.safe_dump(config))
    env = process_env(config_file) | ({"SIDECAR_ADMIN_TOKEN": token} if token else {})
    argv = on_this_machine(exec_form(final("ENTRYPOINT")[0]) + exec_form(final("CMD")[0]))
    admin = f"http://127.0.0.1:{config['admin']['port']}"
    log = tmp_path / "sidecar.log"
    with log.open("w") as output, subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=output,
                                                   stderr=subprocess.STDOUT) as server:
        try:
            try:
                asyncio.run(wait_ready(admin, returncode=server.poll))
            except AssertionError as exc:
                pytest.fail(f"{exc}: {log.read_text()}")
            assert http_status(f"{admin}/healthz") == 200
            assert http_status(f"{admin}/metrics") == 200
            for path in ("/sidecar/config", "/sidecar/usage", "/sidecar/ui"):
                if token is None:
                    assert bearer_status(admin + path, "anything") == 403, path
                else:
                    assert bearer_status(admin + path) == 401, path
                    assert bearer_status(admin + path, token) == 200, path
        finally:
            server.terminate()
            server.wait(timeout=40)
    if token is None:
        assert '"event":"admin_routes_need_token"' in log.read_text()
