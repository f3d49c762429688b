"""What `python -m bench.conformance` fetches when it runs, into a cache directory (never into
the repository): the `openai` package's source distribution from PyPI, the OpenAPI spec it was
generated from, a virtualenv with that openai version and the test tools its suite needs, and
Prism (`@stoplight/prism-cli` from npm). Each step is skipped when its result is cached.

Where the spec comes from, first found wins:
1. `--spec PATH_OR_URL`;
2. the sdist's own pointer: `.stats.yml`'s `openapi_spec_url` (the Stainless-era releases), or
   `api_reference/openapi.transformed.yml` with `.castiron.stats.yml` (later ones);
3. `<cache>/openai-<version>.openapi.yml`, put there by hand (the README of the page,
   docs/conformance.md, says how it was obtained when neither of the above could be).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PRISM = "@stoplight/prism-cli@5"
# The suite's own test dependencies (its pyproject's `dev` group, the part the generated
# tests import); the SDK brings its own runtime dependencies.
TEST_TOOLS = ("pytest>=8", "pytest-asyncio>=0.24", "pytest-xdist>=3.6", "inline-snapshot",
              "dirty-equals", "rich", "respx")


class SetupFailed(RuntimeError):
    """A download or install failed; the message says which and how to do it by hand."""


@dataclass(frozen=True, slots=True)
class Suite:
    version: str
    source: Path  # the extracted sdist (its tests/ and pyproject.toml)
    spec: Path
    python: Path  # the virtualenv's interpreter, with openai==version and the test tools
    prism: Path  # the prism executable


def _run(argv: list[str], what: str, cwd: Path | None = None) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise SetupFailed(f"{what} failed ({' '.join(argv)}):\n{tail}")


def sdist(version: str, cache: Path) -> Path:
    """openai-<version>.tar.gz from PyPI, with pip (the build of its metadata runs in pip's
    isolated environment), extracted."""
    target = cache / f"openai-{version}"
    if (target / "tests" / "api_resources").is_dir():
        return target
    downloads = cache / "sdist"
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / f"openai-{version}.tar.gz"
    if not archive.exists():
        _run([sys.executable, "-m", "pip", "download", f"openai=={version}", "--no-deps",
              "--no-binary", "openai", "-d", str(downloads)], "Downloading the sdist")
    with tarfile.open(archive) as tar:
        tar.extractall(cache, filter="data")
    return target


def spec(version: str, source: Path, cache: Path, given: str | None) -> Path:
    if given is None:
        stats = source / ".stats.yml"
        if stats.exists():
            for line in stats.read_text().splitlines():
                if line.startswith("openapi_spec_url:"):
                    given = line.split(":", 1)[1].strip()
        transformed = source / "api_reference" / "openapi.transformed.yml"
        if given is None and transformed.exists():
            return transformed
    if given is None:
        by_hand = cache / f"openai-{version}.openapi.yml"
        if by_hand.exists():
            return by_hand
        raise SetupFailed(
            f"The openai {version} sdist names no OpenAPI spec (no .stats.yml, no "
            f"api_reference/): pass --spec PATH_OR_URL, or put the spec at {by_hand} "
            "(docs/conformance.md says where the spec of a release can be found).")
    if "://" not in given:
        return Path(given)
    target = cache / f"spec-{given.rsplit('/', 1)[-1]}"
    if not target.exists():
        try:
            with urllib.request.urlopen(given, timeout=120) as response:
                target.write_bytes(response.read())
        except OSError as exc:
            raise SetupFailed(f"Fetching the spec {given} failed ({exc}): download it "
                              f"elsewhere and pass --spec PATH.") from exc
    return target


def venv(version: str, cache: Path) -> Path:
    """A virtualenv with exactly this openai version and the suite's test tools."""
    root = cache / f"venv-{version}"
    python = root / "bin" / "python"
    stamp = root / ".installed"
    if stamp.exists():
        return python
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(root)], "Creating the test virtualenv")
    _run([str(python), "-m", "pip", "install", "--quiet", f"openai[aiohttp]=={version}",
          *TEST_TOOLS], "Installing openai and the test tools")
    stamp.touch()
    return python


def prism(cache: Path) -> Path:
    """Prism from npm, installed under the cache (no global install)."""
    root = cache / "prism"
    binary = root / "node_modules" / ".bin" / "prism"
    if not binary.exists():
        root.mkdir(parents=True, exist_ok=True)
        _run(["npm", "install", "--prefix", str(root), "--no-audit", "--no-fund", PRISM],
             "Installing Prism from npm")
    return binary


def prepare(version: str, cache: Path, given_spec: str | None) -> Suite:
    cache.mkdir(parents=True, exist_ok=True)
    source = sdist(version, cache)
    return Suite(version, source, spec(version, source, cache, given_spec),
                 venv(version, cache), prism(cache))
