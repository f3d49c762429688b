"""scripts/image-check: running an image's commands from its mounted filesystem as a container
runtime would (its env, user and workdir), and its entrypoint on a read-only copy inside new
mount and network namespaces. Standard library only (a fresh machine's python3)."""

from __future__ import annotations

import fcntl
import json
import signal
import socket
import struct
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class CheckFailed(Exception):
    """One check did not hold; the message says which and why."""


def log(message: str) -> None:
    print(f"image-check: {message}", flush=True)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, text=True, capture_output=True, **kwargs)
    if result.returncode != 0:
        raise CheckFailed(f"{' '.join(argv[:4])}... exited {result.returncode}:\n"
                          f"{(result.stdout + result.stderr)[-3000:]}")
    return result


def inspect(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run(["podman", "image", "inspect", name]).stdout)[0]
    return data


def container_env(config: dict[str, Any], root: Path) -> dict[str, str]:
    """The image's Env, plus HOME from its passwd entry, as a container runtime sets them."""
    env = dict(item.split("=", 1) for item in config.get("Env") or [])
    uid = (config.get("User") or "0").split(":")[0]
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 5 and fields[2] == uid:
            env.setdefault("HOME", fields[5])
    return env


def in_image(root: Path, config: dict[str, Any], argv: list[str]) -> list[str]:
    """argv run inside `root` as the image's user, in its WORKDIR, with only its env."""
    env = container_env(config, root)
    workdir = config.get("WorkingDir") or "/"
    return ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "chroot",
            f"--userspec={config['User']}", str(root), "/bin/sh", "-c", 'cd "$0" && exec "$@"',
            workdir, *argv]


def config_env(config: dict[str, Any]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in config.get("Env") or [])


def loopback_up() -> None:
    """A new network namespace's lo is down; SIOCSIFFLAGS brings it up (no `ip` needed)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, siocgifflags, request))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sH22x", b"lo", flags | iff_up))


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code


def serve_inside(image_root: Path, config_file: Path) -> int:
    config: dict[str, Any] = json.loads(config_file.read_text())
    loopback_up()
    root = Path(tempfile.mkdtemp(prefix="image-check-ro-"))
    run(["mount", "--bind", str(image_root), str(root)])
    run(["mount", "-o", "remount,bind,ro", str(root)])
    try:
        (root / "image-check-write-probe").write_text("x")
        raise CheckFailed("the read-only copy is writable")
    except OSError:
        pass
    user = config["User"].split(":")
    volumes = list(config.get("Volumes") or {})
    for volume in volumes:  # the image's VOLUMEs, as a runtime gives them (owned by its user)
        run(["mount", "-t", "tmpfs", "-o", f"uid={user[0]},gid={user[1]},mode=0700", "tmpfs",
             str(root / volume.lstrip("/"))])
    run(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", str(root / "tmp")])
    run(["mount", "-t", "proc", "proc", str(root / "proc")])
    run(["mount", "--rbind", "/dev", str(root / "dev")])
    argv = in_image(root, config, [*(config.get("Entrypoint") or []),
                                   *(config.get("Cmd") or [])])
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        assert server.stdout is not None
        for line in server.stdout:  # the sidecar logs "listening" once both listeners are up
            lines.append(line)
            if '"event":"listening"' in line.replace(" ", ""):
                break
        else:
            raise CheckFailed(f"serve exited {server.wait()} before listening:\n"
                              f"{''.join(lines)[-3000:]}")
        ports = sorted(int(p.split("/")[0]) for p in config.get("ExposedPorts") or {})
        for port in ports:
            status = http_status(f"http://127.0.0.1:{port}/healthz")
            if status != 200:
                raise CheckFailed(f"/healthz on port {port} answered {status}")
        log(f"serve (read-only root, uid {config['User']}): /healthz 200 on ports "
            f"{', '.join(map(str, ports))}")
        test = (config.get("Healthcheck") or {}).get("Test") or []
        if test[:1] != ["CMD"]:
            raise CheckFailed(f"no exec-form HEALTHCHECK in the image: {test}")
        out = run(in_image(root, config, test[1:])).stdout.strip()
        log(f"HEALTHCHECK {' '.join(test[1:])}: {out}")
        written = [str(p.relative_to(root)) for v in volumes
                   for p in (root / v.lstrip("/")).iterdir()]
        log(f"written to the state volume by uid {config['User']}: {', '.join(written)}")
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        if code != 0:
            raise CheckFailed(f"serve exited {code} on SIGTERM")
        log("SIGTERM: exit 0")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return 0
