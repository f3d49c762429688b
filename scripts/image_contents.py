"""scripts/image-check: what an image's filesystem holds (compilers, pip) and how big its layers
are. Standard library only (a fresh machine's python3)."""

from __future__ import annotations

import json
import os
import re
import tarfile
import zlib
from pathlib import Path
from typing import Any

COMPILERS = re.compile(r"(?:[\w.-]+-linux-gnu-)?(?:gcc|g\+\+|cc|c\+\+|cpp|clang|clang\+\+|tcc|"
                       r"ld|as|ld\.bfd|ld\.gold)(?:-\d+(?:\.\d+)*)?")


def tools_found(root: Path) -> tuple[list[str], list[str]]:
    """(compilers, pip installations) in a filesystem tree."""
    compilers, pips = [], []
    for directory, subdirs, files in os.walk(root):
        relative = "/" + os.path.relpath(directory, root).lstrip(".")
        if relative.startswith(("/proc", "/sys", "/dev")):
            subdirs[:] = []
            continue
        for name in files:
            path = Path(directory) / name
            executable = os.access(path, os.X_OK) and not path.is_dir()
            if executable and relative.endswith("/bin") and COMPILERS.fullmatch(name):
                compilers.append(f"{relative}/{name}")
            if executable and relative.endswith("/bin") and re.fullmatch(r"pip[\d.]*", name):
                pips.append(f"{relative}/{name}")
        for name in subdirs:
            if name == "pip" and relative.endswith(("site-packages", "dist-packages")):
                pips.append(f"{relative}/{name}")
    return compilers, pips


def gzip_size(source: Any) -> int:
    """Bytes of the stream once gzip-compressed (level 6, as registries' clients do)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    size = 0
    while True:
        chunk = source.read(1 << 20)
        if not chunk:
            return size + len(compressor.flush())
        size += len(compressor.compress(chunk))


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def layer_sizes(archive: Path, base_layers: list[str]) -> tuple[int, int, int]:
    """(count, bytes, gzip-compressed bytes) of the layers of a docker-archive (`podman save`)
    that are not the base's (its RootFS layer digests)."""
    base = {layer.split(":")[1] for layer in base_layers}
    added = raw = compressed = 0
    with tarfile.open(archive) as outer:
        manifest = outer.extractfile("manifest.json")
        assert manifest is not None
        for name in json.load(manifest)[0]["Layers"]:
            if Path(name).name.split(".")[0] in base:
                continue
            member = outer.getmember(name)
            added, raw = added + 1, raw + member.size
            compressed += gzip_size(outer.extractfile(member))
    return added, raw, compressed


def largest_packages(venv: Path, count: int = 5) -> list[tuple[str, float]]:
    """The venv's biggest packages: (name, MB)."""
    site = next((venv / "lib").glob("python3*")) / "site-packages"
    sized = sorted(((du(p), p.name) for p in site.iterdir()
                    if p.is_dir() and not p.name.endswith("-info")), reverse=True)[:count]
    return [(name, round(size / 1e6, 1)) for size, name in sized]
