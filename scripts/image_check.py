"""scripts/image-check: build the image with podman on a stand-in base and exercise it.

Run through scripts/image-check (which checks for root and installs podman and debootstrap).
Standard library only: it runs on a fresh machine's python3, before any virtualenv exists.
Helpers: image_secrets.py (pip's configuration as build secrets, the secret scan),
image_run.py (commands and the entrypoint run from the image's filesystem), image_contents.py
(compilers, pip, sizes).

Steps, each a failure with a message when it does not hold:
 1. base   - a stand-in for python:3.11-slim-bookworm from Debian's packages (debootstrap),
             as two images: "build" (python3, venv, pip) for the build stage and "python"
             (python3 alone) for the final one; rootfs tarballs cached between runs.
 2. build  - podman build --isolation=chroot, this machine's pip configuration and CA passed
             as build secrets (with a random canary in each, so a copy in the image is found).
 3. run    - version, check-config of the default config, inject --help: from the image's
             filesystem (podman image mount), with its env, as its user (chroot --userspec).
 4. serve  - the entrypoint + cmd on a read-only bind mount of that filesystem, /tmp and the
             state volume as tmpfs, in a private network namespace (ports 4141/4142 are free
             there, whatever runs on this machine): /healthz on every exposed port, the image's
             HEALTHCHECK command, the ledger written to the volume, exit 0 on SIGTERM.
 5. audit  - no compiler, no pip, and no canary, no extra CA certificate, no index password in
             any layer, in the image config or its history.
 6. size   - the image, its base, and the layers the Dockerfile adds (raw and gzip-compressed).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from image_contents import du, largest_packages, layer_sizes, tools_found
from image_run import CheckFailed, config_env, in_image, inspect, log, run, serve_inside
from image_secrets import build_pip_config, ca_bodies, index_passwords, pip_settings, scan_archive

ROOT = Path(__file__).resolve().parents[1]
SUITE = "bookworm"
BUILD_PACKAGES = ("python3", "python3-venv", "python3-pip", "ca-certificates", "passwd")
# Removed from the build rootfs to make the final stage's base: python3 without pip, as the
# Dockerfile leaves python:slim (which it rids of pip, setuptools and wheel).
PIP_PACKAGES = ("python3-pip", "python3-venv", "python3.11-venv", "python3-pip-whl",
                "python3-setuptools-whl", "python3-setuptools", "python3-wheel",
                "python3-pkg-resources", "python3-distutils", "python3-lib2to3")
# python:slim's PATH and LANG: the Dockerfile's ENV PATH builds on the base's.
BASE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
BASE_VERSION = "1"  # bump to rebuild every cached stand-in
UID = "10001:10001"


# ---- 1. the stand-in base ----

def base_key(mirror: str) -> str:
    text = "|".join([BASE_VERSION, SUITE, mirror, *BUILD_PACKAGES, *PIP_PACKAGES, *BASE_ENV])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def image_exists(name: str) -> bool:
    return subprocess.run(["podman", "image", "exists", name]).returncode == 0


def stand_in_base(cache: Path, mirror: str, fresh: bool) -> tuple[str, str]:
    """(build image, python image), imported from the cached tarballs, made when missing."""
    key = base_key(mirror)
    names = (f"localhost/llm-sidecar-standin-build:{key}",
             f"localhost/llm-sidecar-standin-python:{key}")
    tars = (cache / f"standin-{key}-build.tar", cache / f"standin-{key}-python.tar")
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "lock", "w") as lock:  # one debootstrap at a time per cache
        fcntl.flock(lock, fcntl.LOCK_EX)
        if fresh:
            for tar in tars:
                tar.unlink(missing_ok=True)
            for name in names:
                subprocess.run(["podman", "rmi", "--force", name], capture_output=True)
        if not all(t.exists() for t in tars):
            began = time.monotonic()
            make_base_tarballs(cache, mirror, tars)
            log(f"stand-in base made in {time.monotonic() - began:.0f} s, cached in {cache}")
        for name, tar in zip(names, tars, strict=True):
            if not image_exists(name):
                changes = [arg for env in BASE_ENV for arg in ("--change", f"ENV {env}")]
                run(["podman", "import", *changes, "--change", 'CMD ["python3"]', str(tar),
                     name])
    return names


def make_base_tarballs(cache: Path, mirror: str, tars: tuple[Path, Path]) -> None:
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        rootfs = work / "rootfs"
        log(f"debootstrap {SUITE} ({', '.join(BUILD_PACKAGES)}) from {mirror}: a few minutes, "
            f"once")
        run(["debootstrap", "--variant=minbase", f"--include={','.join(BUILD_PACKAGES)}",
             SUITE, str(rootfs), mirror])
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
        for lists in (rootfs / "var/lib/apt/lists").glob("*_*"):
            lists.unlink()
        (rootfs / "usr/bin/python").symlink_to("python3")  # python:slim has `python`
        run(["tar", "-C", str(rootfs), "-cf", str(tars[0]) + ".part", "."])
        run(["chroot", str(rootfs), "dpkg", "--purge", *PIP_PACKAGES])
        run(["tar", "-C", str(rootfs), "-cf", str(tars[1]) + ".part", "."])
        for tar in tars:
            os.replace(str(tar) + ".part", tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---- 2. the build, with pip's configuration as secrets ----

def build(tag: str, bases: tuple[str, str], secrets_dir: Path, canaries: dict[str, str],
          no_cache: bool) -> dict[str, Any]:
    """Build the image; return what the audit looks for (canaries, extra CA bodies)."""
    listing = subprocess.run([sys.executable, "-m", "pip", "config", "list"], text=True,
                             capture_output=True).stdout
    sections = pip_settings(listing)
    pip_conf, ca_file, notes = build_pip_config(sections, canaries["pip.conf"])
    for note in notes:
        log(note)
    # --format docker: OCI images drop HEALTHCHECK and STOPSIGNAL, which the Dockerfile sets.
    argv = ["podman", "build", "--isolation=chroot", "--format", "docker", "--layers",
            *(["--no-cache"] if no_cache else []), "--pull=never",
            "--build-arg", f"BUILD_IMAGE={bases[0]}", "--build-arg", f"PYTHON_IMAGE={bases[1]}",
            "--tag", tag, "--file", str(ROOT / "Dockerfile")]
    (secrets_dir / "pip.conf").write_text(pip_conf)
    argv += ["--secret", f"id=pip.conf,src={secrets_dir / 'pip.conf'}"]
    ca_text = ""
    if ca_file:
        ca_text = Path(ca_file).read_text()
        # PEM readers skip text outside BEGIN/END blocks: the canary does not change the CA.
        (secrets_dir / "pip-ca").write_text(ca_text.rstrip("\n") +
                                            f"\n# image-check canary {canaries['pip-ca']}\n")
        argv += ["--secret", f"id=pip-ca,src={secrets_dir / 'pip-ca'}"]
    log(f"podman build (secrets: pip.conf{', pip-ca from ' + ca_file if ca_file else ''})")
    began = time.monotonic()
    result = subprocess.run([*argv, str(ROOT)], text=True, capture_output=True)
    if result.returncode != 0:
        raise CheckFailed(f"the image does not build:\n{(result.stdout + result.stderr)[-4000:]}")
    log(f"built {tag} in {time.monotonic() - began:.0f} s")
    return {"ca_text": ca_text, "passwords": index_passwords(sections)}


# ---- 3. run commands from the image's filesystem ----

def run_commands(root: Path, config: dict[str, Any], version: str) -> None:
    out = run(in_image(root, config, ["llm-sidecar", "version"])).stdout.strip()
    if out != f"llm-sidecar {version}":
        raise CheckFailed(f"`llm-sidecar version` printed {out!r}, not llm-sidecar {version}")
    log(f"{out} (as uid {config['User']})")
    path = config_env(config)["SIDECAR_CONFIG"]
    out = run(in_image(root, config, ["llm-sidecar", "check-config", path])).stdout.strip()
    log(f"check-config: {out}")
    run(in_image(root, config, ["llm-sidecar", "inject", "--help"]))
    log("inject --help: ok")


# ---- 4. serve on a read-only copy, inside private mount and network namespaces ----

def serve_check(root: Path, config_file: Path) -> None:
    """Re-run this script inside new mount and network namespaces (see serve_inside)."""
    result = subprocess.run(["unshare", "--mount", "--net", "--fork", "--propagation",
                             "private", sys.executable, __file__, "--serve-inside", str(root),
                             str(config_file)], text=True, capture_output=True, timeout=300)
    sys.stdout.write(result.stdout)
    if result.returncode != 0:
        raise CheckFailed(f"serve on a read-only filesystem failed:\n"
                          f"{(result.stdout + result.stderr)[-4000:]}")


# ---- 5. audit: compilers, pip, secrets ----

def audit(archive: Path, root: Path, config: dict[str, Any], base: str,
          canaries: dict[str, str], built: dict[str, Any]) -> None:
    compilers, pips = tools_found(root)
    if compilers:
        raise CheckFailed(f"compilers in the image: {', '.join(compilers)}")
    if pips:
        raise CheckFailed(f"pip in the image: {', '.join(pips)}")
    probe = subprocess.run(in_image(root, config, ["python3", "-c", "import pip"]),
                           capture_output=True)
    if probe.returncode == 0:
        raise CheckFailed("`python3 -c 'import pip'` works in the image")
    log("no compiler, no pip")
    base_root = Path(run(["podman", "image", "mount", base]).stdout.strip())
    try:
        bundle = (base_root / "etc/ssl/certs/ca-certificates.crt").read_text(errors="replace")
    finally:
        run(["podman", "image", "unmount", base])
    needles = {f"canary of {name}": value.encode() for name, value in canaries.items()}
    extra = ca_bodies(built["ca_text"], bundle)
    needles.update({f"extra CA certificate {i + 1}": b.encode() for i, b in enumerate(extra)})
    needles.update({f"index password {i + 1}": p.encode()
                    for i, p in enumerate(built["passwords"])})
    found = scan_archive(archive, needles)
    if found:
        raise CheckFailed("secrets passed to the build are in the image: " + "; ".join(found))
    if (root / "run/secrets").exists() and any((root / "run/secrets").iterdir()):
        raise CheckFailed("/run/secrets is not empty in the image")
    log(f"no secret in any layer, the config or the history ({len(needles)} needles: the "
        f"canaries, {len(extra)} CA certificate(s) not in the base, "
        f"{len(built['passwords'])} index password(s))")


# ---- 6. size ----

def sizes(archive: Path, tag: str, base: str, root: Path) -> dict[str, Any]:
    """The image and its base as podman counts them; the layers the Dockerfile adds (those not
    in the base), raw and gzip-compressed as a registry would store them; the venv."""
    image, base_info = inspect(tag), inspect(base)
    added, raw, compressed = layer_sizes(archive, base_info["RootFS"]["Layers"])
    packages = largest_packages(root / "opt/llm-sidecar")
    return {"image_mb": image["Size"] / 1e6, "base_mb": base_info["Size"] / 1e6,
            "added_layers": added, "added_mb": raw / 1e6, "added_gzip_mb": compressed / 1e6,
            "venv_mb": du(root / "opt/llm-sidecar") / 1e6,
            "largest_packages": packages}


# ---- main ----

def main() -> int:
    if sys.version_info < (3, 10):  # noqa: UP036 - a fresh machine's python3, not the venv
        log("needs Python 3.10 or newer (Debian 12 has 3.11)")
        return 1
    if len(sys.argv) == 4 and sys.argv[1] == "--serve-inside":
        try:
            return serve_inside(Path(sys.argv[2]), Path(sys.argv[3]))
        except (CheckFailed, subprocess.SubprocessError, OSError) as exc:
            print(f"image-check: FAILED: serve: {exc}", flush=True)
            return 1
    parser = argparse.ArgumentParser(prog="scripts/image-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "LLM_SIDECAR_IMAGE_CACHE", Path.home() / ".cache" / "llm-sidecar-image")),
        help="where the stand-in base tarballs are kept (default ~/.cache/llm-sidecar-image, "
             "or $LLM_SIDECAR_IMAGE_CACHE)")
    parser.add_argument("--mirror", default=os.environ.get("DEBIAN_MIRROR",
                                                           "http://deb.debian.org/debian"),
                        help="Debian mirror for debootstrap (default deb.debian.org, or "
                             "$DEBIAN_MIRROR)")
    parser.add_argument("--tag", help="image name (default localhost/llm-sidecar:check-<id of "
                                      "this checkout>)")
    parser.add_argument("--fresh-base", action="store_true",
                        help="make the stand-in base again (debootstrap) instead of the cache")
    parser.add_argument("--no-cache", action="store_true",
                        help="build every layer again (podman build --no-cache)")
    args = parser.parse_args()
    tag = args.tag or ("localhost/llm-sidecar:check-" +
                       hashlib.sha256(str(ROOT).encode()).hexdigest()[:8])
    version = re.search(r'__version__ = "([^"]+)"',
                        (ROOT / "sidecar/__init__.py").read_text())
    assert version is not None
    began, step = time.monotonic(), "base"
    mounted = False
    work = Path(tempfile.mkdtemp(prefix="image-check-"))
    try:
        bases = stand_in_base(args.cache, args.mirror, args.fresh_base)
        log(f"stand-in base: {bases[1]} (build stage: {bases[0]})")
        step = "build"
        canaries = {name: secrets.token_hex(16) for name in ("pip.conf", "pip-ca")}
        (secrets_dir := work / "secrets").mkdir(mode=0o700)
        built = build(tag, bases, secrets_dir, canaries, args.no_cache)
        step = "inspect"
        image = inspect(tag)
        config = dict(image["Config"])
        # podman reports a docker-format HEALTHCHECK beside the config, docker inside it
        config.setdefault("Healthcheck", image.get("Healthcheck"))
        if config.get("User") != UID:
            raise CheckFailed(f"the image's USER is {config.get('User')!r}, not {UID}")
        root = Path(run(["podman", "image", "mount", tag]).stdout.strip())
        mounted = True
        step = "run"
        run_commands(root, config, version.group(1))
        step = "serve"
        (work / "config.json").write_text(json.dumps(config))
        serve_check(root, work / "config.json")
        step = "audit"
        archive = work / "image.tar"
        run(["podman", "save", "--format", "docker-archive", "-o", str(archive), tag])
        audit(archive, root, config, bases[1], canaries, built)
        step = "size"
        figures = sizes(archive, tag, bases[1], root)
    except (CheckFailed, subprocess.SubprocessError, OSError) as exc:
        log(f"FAILED at {step}: {exc}")
        return 1
    finally:
        if mounted:
            subprocess.run(["podman", "image", "unmount", tag], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    log(f"size: {figures['image_mb']:.0f} MB ({figures['base_mb']:.0f} MB stand-in base + "
        f"{figures['added_mb']:.1f} MB in {figures['added_layers']} layers of ours, "
        f"{figures['added_gzip_mb']:.1f} MB gzip-compressed); the venv "
        f"{figures['venv_mb']:.0f} MB, largest: " +
        ", ".join(f"{name} {size} MB" for name, size in figures["largest_packages"]))
    log(f"ok: {tag} in {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
