"""scripts/image-check: this machine's pip configuration made into build secrets, and the scan
of a saved image for any trace of them. Standard library only (a fresh machine's python3)."""

from __future__ import annotations

import configparser
import re
import tarfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path


def pip_settings(listing: str) -> dict[str, dict[str, str]]:
    """`pip config list` output as {section: {key: value}}; env values (":env:") apply to
    every command, as pip applies them, so they go to [global] over the files' values."""
    sections: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for line in listing.splitlines():
        match = re.fullmatch(r"(?P<section>:env:|[\w-]+)\.(?P<key>[\w-]+)='(?P<value>.*)'",
                             line.strip())
        if not match:
            continue
        if match["section"] == ":env:":
            env[match["key"]] = match["value"]
        else:
            sections.setdefault(match["section"], {})[match["key"]] = match["value"]
    sections.setdefault("global", {}).update(env)
    return sections


def local_path(value: str) -> str | None:
    if value.startswith("file:"):
        return urllib.parse.urlparse(value).path
    return value if value.startswith("/") else None


def build_pip_config(sections: dict[str, dict[str, str]], canary: str
                     ) -> tuple[str, str | None, list[str]]:
    """(pip.conf text for the build, the CA file named by `cert`, notes). Local paths cannot
    be seen inside the build: `cert` travels as its own secret, other local files and
    directories (a find-links folder, a file:// index, a constraints file) are left out."""
    config = configparser.ConfigParser(interpolation=None)
    notes: list[str] = []
    ca_file = None
    for section, values in sections.items():
        for key, value in values.items():
            if key == "cert":
                ca_file = value
                continue
            kept = [v for v in value.split() if local_path(v) is None]
            for dropped in (v for v in value.split() if local_path(v) is not None):
                notes.append(f"pip {section}.{key} {dropped}: a local path, left out of the "
                             f"build (it cannot see this machine's files)")
            if kept:
                if not config.has_section(section):
                    config.add_section(section)
                config.set(section, key, " ".join(kept))
    lines = [f"# image-check canary {canary}"]
    for section in config.sections():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in config.items(section, raw=True)]
    return "\n".join(lines) + "\n", ca_file, notes


def index_passwords(sections: dict[str, dict[str, str]]) -> list[str]:
    """Passwords inside index URLs (https://user:token@host/): they must not reach the image."""
    found = []
    for values in sections.values():
        for value in values.values():
            for word in value.split():
                password = urllib.parse.urlparse(word).password
                if password and len(password) >= 6:
                    found.append(password)
    return found


def ca_bodies(ca_text: str, base_bundle: str) -> list[str]:
    """One distinctive line of each certificate in the passed CA that the base does not have:
    the last full line, inside the signature (the first lines encode the issuer, shared by
    certificates of one authority)."""
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END CERTIFICATE-----",
                        ca_text, re.S)
    extra = [b for b in blocks if b not in base_bundle]
    return [b.splitlines()[-2] for b in extra if len(b.splitlines()) > 2]


def scan_archive(archive: Path, needles: dict[str, bytes]) -> list[str]:
    """Where each needle occurs in a docker-archive: layer files and JSON (config, history)."""
    found = []
    longest = max(len(n) for n in needles.values())
    with tarfile.open(archive) as outer:
        for member in outer:
            if not member.isfile():
                continue
            stream = outer.extractfile(member)
            assert stream is not None
            if member.name.endswith(".json"):
                text = stream.read()
                found += [f"{label} in {member.name}" for label, needle in needles.items()
                          if needle in text]
                continue
            if not member.name.endswith(".tar"):
                continue
            with tarfile.open(fileobj=stream, mode="r|*") as layer:
                for entry in layer:
                    if entry.isfile():
                        found += [f"{label} in {member.name}:/{entry.name}"
                                  for label in scan_file(layer, entry, needles, longest)]
    return found


def scan_file(layer: tarfile.TarFile, entry: tarfile.TarInfo, needles: dict[str, bytes],
              longest: int) -> Iterator[str]:
    handle = layer.extractfile(entry)
    assert handle is not None
    tail = b""
    seen = set()
    while True:
        chunk = handle.read(1 << 20)
        if not chunk:
            break
        window = tail + chunk
        for label, needle in needles.items():
            if label not in seen and needle in window:
                seen.add(label)
                yield label
        tail = window[-longest:]
