"""scripts/image-check's own logic, on small inputs (the whole check builds the image with
podman and runs as a CI step of its own, see .ci/run): pip's configuration turned into build
secrets, the secret scan of an image archive, the compiler and pip finder, and CI wiring."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest
import trustme

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "image_check.py"


def load_script(name: str) -> ModuleType:
    """One of the script's helper modules (standard library only, importable alone)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


secrets_ = load_script("image_secrets")
contents = load_script("image_contents")

# What `pip config list` prints on a machine like the CI's: files, then the environment.
LISTING = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple https://user:s3cr3t-token@pypi.corp.example/simple'
global.find-links='/opt/wheels'
install.no-compile='false'
"""


def test_pip_settings_merge_files_and_environment() -> None:
    """Sections keep their keys; :env: values override [global] as pip applies them."""
    sections = secrets_.pip_settings(LISTING)
    assert sections["global"]["default-timeout"] == "180"
    assert sections["global"]["cert"] == "/etc/ssl/certs/ca-certificates.crt"
    assert sections["install"] == {"no-compile": "false"}


def test_the_builds_pip_conf_keeps_network_settings_and_carries_a_canary() -> None:
    """Local paths are left out with a note each, the CA file is returned apart (its own
    secret), network URLs and plain values are kept, and the canary heads the file."""
    text, ca_file, notes = secrets_.build_pip_config(secrets_.pip_settings(LISTING), "c4n4ry")
    assert ca_file == "/etc/ssl/certs/ca-certificates.crt"
    assert text.splitlines()[0] == "# image-check canary c4n4ry"
    assert "extra-index-url = https://user:s3cr3t-token@pypi.corp.example/simple" in text
    assert "default-timeout = 180" in text and "[install]" in text
    for local in ("/opt/wheels", "/opt/pypi/simple", "/etc/xdg/pip/constraints.txt", "cert"):
        assert local not in text.split("canary", 1)[1]
    assert len(notes) == 3 and all("a local path, left out of the build" in n for n in notes)
    assert secrets_.index_passwords(secrets_.pip_settings(LISTING)) == ["s3cr3t-token"]


def archive_with(tmp_path: Path, files: dict[str, bytes], config: bytes = b"{}") -> Path:
    """A docker-archive like `podman save` writes: manifest, config JSON, one layer tar."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "image.tar"
    with tarfile.open(path, "w") as outer:
        for name, data in (("manifest.json", json.dumps([{"Config": "abc.json",
                                                           "Layers": ["l1.tar"]}]).encode()),
                           ("abc.json", config), ("l1.tar", layer.getvalue())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            outer.addfile(info, io.BytesIO(data))
    return path


def test_the_scan_finds_a_needle_across_a_read_boundary(tmp_path: Path) -> None:
    """A canary straddling the 1 MiB read boundary of a big layer file is found and named."""
    needle = b"0123456789abcdef0123456789abcdef"
    big = b"x" * ((1 << 20) - 10) + needle + b"y" * 100
    archive = archive_with(tmp_path, {"usr/share/big.bin": big, "etc/ok": b"nothing"})
    assert secrets_.scan_archive(archive, {"canary of pip.conf": needle}) == [
        "canary of pip.conf in l1.tar:/usr/share/big.bin"]


def test_the_scan_reads_the_config_and_history_too(tmp_path: Path) -> None:
    """A secret passed as a build ARG lands in the config JSON's history: found there."""
    archive = archive_with(tmp_path, {"etc/ok": b"fine"},
                           config=b'{"history": [{"created_by": "ARG TOKEN=s3cr3t-token"}]}')
    assert secrets_.scan_archive(archive, {"index password 1": b"s3cr3t-token"}) == [
        "index password 1 in abc.json"]


def test_a_clean_archive_has_no_findings(tmp_path: Path) -> None:
    """Nothing found when no needle is there."""
    archive = archive_with(tmp_path, {"etc/passwd": b"root:x:0:0"})
    assert secrets_.scan_archive(archive, {"canary": b"not-there-at-all"}) == []


def test_ca_certificates_the_base_lacks_are_the_ones_looked_for() -> None:
    """Of a CA bundle passed to the build, only certificates not in the base's bundle count."""
    ours, theirs = trustme.CA().cert_pem.bytes().decode(), trustme.CA().cert_pem.bytes().decode()
    bodies = secrets_.ca_bodies(ours + theirs, base_bundle=theirs)
    assert len(bodies) == 1 and bodies[0] in ours and bodies[0] not in theirs


def executable(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)


def test_compilers_and_pip_are_found_in_a_tree(tmp_path: Path) -> None:
    """gcc-12, cc, a cross gcc, pip3 and a site-packages/pip are all reported; python3, a
    non-executable 'cc' file and a 'pip' directory outside site-packages are not."""
    for name in ("usr/bin/gcc-12", "usr/bin/cc", "usr/bin/x86_64-linux-gnu-gcc-12",
                 "usr/local/bin/pip3", "usr/bin/python3"):
        executable(tmp_path / name)
    (tmp_path / "usr/share/doc/cc").mkdir(parents=True)
    (tmp_path / "usr/lib/python3.11/site-packages/pip").mkdir(parents=True)
    (tmp_path / "usr/share/pip").mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/cc").write_text("not a program")
    compilers, pips = contents.tools_found(tmp_path)
    assert sorted(compilers) == ["/usr/bin/cc", "/usr/bin/gcc-12",
                                 "/usr/bin/x86_64-linux-gnu-gcc-12"]
    assert sorted(pips) == ["/usr/lib/python3.11/site-packages/pip", "/usr/local/bin/pip3"]


def test_a_clean_tree_has_no_compiler_or_pip(tmp_path: Path) -> None:
    """A venv with only the sidecar's packages reports nothing."""
    executable(tmp_path / "opt/llm-sidecar/bin/llm-sidecar")
    (tmp_path / "opt/llm-sidecar/lib/python3.11/site-packages/aiohttp").mkdir(parents=True)
    assert contents.tools_found(tmp_path) == ([], [])


def test_ci_runs_the_image_check_after_the_test_command() -> None:
    """.ci/run runs ./scripts/test, then ./scripts/image-check, and says so."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands.index('./scripts/test "$@"') < commands.index("exec ./scripts/image-check")
    assert any("after the README's test command" in line for line in lines)


@pytest.mark.parametrize("script", ["image-check", "image_check.py"])
def test_the_script_documents_itself(script: str) -> None:
    """`--help` of the entry point's Python part describes the steps and options (the shell
    entry point itself needs root, and says so)."""
    if script == "image-check":
        text = (ROOT / "scripts" / script).read_text()
        assert "needs root" in text and "apt-get install" in text
        return
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0
    for word in ("--cache", "--fresh-base", "--no-cache", "read-only", "no compiler"):
        assert word in result.stdout
