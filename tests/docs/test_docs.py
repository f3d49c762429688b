"""The documentation (README.md and docs/*.md) against the repository and the settings schema.

Links: every relative link names a file that exists, and every `#anchor` a heading of the page
it points to, by GitHub's slug rules. Configuration: the reference tables of
docs/configuration.md list exactly the keys of `sidecar.config.schema.Settings`, each once,
with the schema's default.

How the reference spells a key: a table whose header starts `| key | ... | default | ...`, one
row per key, the dotted path in backticks: `listen.port`; `[]` for each element of a list
(`auth.keys[].token`); `<name>` for each entry of a map (`spend.prices.<glob>.prompt`). A key
holding a nested section (`listen`, `privacy.redact`) is no row of its own; a list or map of
models (`providers`, `spend.budgets`) has a row and so has each field of its elements. The
default cell is one YAML value in backticks (`4141`, `"off"`, `null`, `["*"]`) or `required`.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import unquote

import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from sidecar.config.schema import Settings

ROOT = Path(__file__).resolve().parents[2]
FRONT = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [FRONT, *DOCS]
REFERENCE = ROOT / "docs" / "configuration.md"


# --- Markdown, as GitHub reads it ------------------------------------------------------------

_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK_TARGET = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_INLINE_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    lines, fence = [], ""
    for number, line in enumerate(text.split("\n"), start=1):
        opening = _FENCE.match(line)
        if fence:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence):
                fence = ""
            continue
        if opening:
            fence = opening.group(1)
            continue
        lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: rendered text, lower case, punctuation removed,
    spaces to hyphens."""
    text = _INLINE_LINK.sub(r"\1", heading)
    text = _CODE_SPAN.sub(r"\2", text)
    text = re.sub(r"<[^>]+>", "", text).replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... in order, as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}:{self.target}"


def relative_links(page: Path) -> list[Link]:
    """The links of a page that stay in the repository (no scheme, no protocol-relative URL),
    outside code blocks and code spans."""
    links = []
    for number, line in prose_lines(page.read_text()):
        for target in _LINK_TARGET.findall(_CODE_SPAN.sub("", line)):
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//", target):
                continue
            links.append(Link(page, number, target))
    return links


LINKS = [link for page in PAGES for link in relative_links(page)]


def test_slug_rules_match_github() -> None:
    """The slug function gives GitHub's anchors for headings with code, punctuation and case."""
    assert slug("Anthropic (format: anthropic)") == "anthropic-format-anthropic"
    assert slug("Admission: why it never overshoots") == "admission-why-it-never-overshoots"
    assert slug("Accuracy and speed, and why not Presidio") == (
        "accuracy-and-speed-and-why-not-presidio")
    assert slug("The `routes` key, and `max_tokens`") == "the-routes-key-and-max_tokens"
    assert slug("1. Build the image") == "1-build-the-image"
    assert anchors("# Cache\n## Figures\n```\n## Figures\n```\n## Figures\n") == {
        "cache", "figures", "figures-1"}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_front_page_links_every_docs_page(page: Path) -> None:
    """README.md links each page under docs/, so every page is one click from the front page."""
    targets = {(ROOT / unquote(link.target.partition("#")[0])).resolve()
               for link in LINKS if link.page == FRONT}
    assert page.resolve() in targets, f"README.md has no link to docs/{page.name}"


@pytest.mark.parametrize("link", LINKS, ids=str)
def test_relative_link_resolves(link: Link) -> None:
    """A relative link names an existing file, and its #anchor a heading of that page."""
    path, _, anchor = link.target.partition("#")
    target = (link.page.parent / unquote(path)).resolve() if path else link.page
    assert target.exists(), f"{link}: no file {target}"
    assert target.is_relative_to(ROOT), f"{link}: points outside the repository"
    if anchor:
        assert target.suffix == ".md", f"{link}: an anchor into a file that is not Markdown"
        assert anchor in anchors(target.read_text()), (
            f"{link}: no heading of {target.relative_to(ROOT)} has the anchor #{anchor}")


# --- The configuration reference against the schema -----------------------------------------

ANY_NAME = "<*>"


def _models_in(annotation: Any, suffix: str = "") -> list[tuple[str, type[BaseModel]]]:
    """The models a field's type holds, each with the path between the field and its keys:
    "" for the field itself (or a union member), "[]" per list, ".<*>" per map."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(suffix, annotation)]
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _models_in(args[0], suffix)
    if origin in (list, set, frozenset, tuple):
        return [found for arg in args if arg is not Ellipsis
                for found in _models_in(arg, suffix + "[]")]
    if origin is dict:
        return _models_in(args[1], suffix + "." + ANY_NAME)
    if origin in (Union, types.UnionType):
        return [found for arg in args for found in _models_in(arg, suffix)]
    return []  # a scalar, a Literal, a list or map of scalars


def schema_keys(model: type[BaseModel], prefix: str = "") -> dict[str, FieldInfo]:
    """Every configuration key of a model, walked through nested sections, lists and maps."""
    keys: dict[str, FieldInfo] = {}
    for name, field in model.model_fields.items():
        path = prefix + name
        nested = _models_in(field.annotation)
        if not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            keys[path] = field
        for suffix, inner in nested:
            keys.update(schema_keys(inner, f"{path}{suffix}."))
    return keys


@dataclass(frozen=True)
class Row:
    key: str
    default: str
    line: int


def reference_rows(text: str) -> list[Row]:
    """The rows of every table of the reference whose first column is `key`."""
    rows: list[Row] = []
    columns: list[str] | None = None
    for number, line in prose_lines(text):
        if not line.startswith("|"):
            columns = None
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if columns is None:
            columns = [cell.lower() for cell in cells] if cells and cells[0].lower() == "key" \
                else []
            continue
        if not columns or set("".join(cells)) <= set("-: "):
            continue
        key = cells[0].strip("`")
        default = cells[columns.index("default")] if "default" in columns else ""
        rows.append(Row(key, default, number))
    return rows


def _normal(key: str) -> str:
    return re.sub(r"<[^>]*>", ANY_NAME, key)


SCHEMA = schema_keys(Settings)
ROWS = reference_rows(REFERENCE.read_text())
DOCUMENTED = {_normal(row.key): row for row in ROWS}


def test_walk_reaches_lists_maps_and_unions() -> None:
    """The schema walk finds keys in sections, list elements, map values and union members."""
    for key in ("listen.port", "privacy.redact.mode", "auth.keys[].allowed_models",
                "providers[].prices.<*>.completion", "spend.budgets[].limit_usd",
                "spend.unknown_model_price.prompt", "telemetry.exporters[].signals"):
        assert key in SCHEMA
    assert "listen" not in SCHEMA and "providers" in SCHEMA and "spend.prices" in SCHEMA


def test_reference_lists_each_key_once() -> None:
    """No key has two rows in the reference (two rows could say two different things)."""
    keys = [_normal(row.key) for row in ROWS]
    assert len(keys) > 50
    assert sorted({k for k in keys if keys.count(k) > 1}) == []


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.key)
def test_documented_key_is_in_the_schema(row: Row) -> None:
    """A key the reference documents is a key the settings schema accepts."""
    assert _normal(row.key) in SCHEMA, (
        f"docs/configuration.md:{row.line}: {row.key} is not a key of sidecar.config.schema")


@pytest.mark.parametrize("key", sorted(SCHEMA))
def test_schema_key_is_documented(key: str) -> None:
    """A key the settings schema accepts has its row in the reference."""
    assert key in DOCUMENTED, f"{key} is a setting with no row in docs/configuration.md"


def _schema_default(field: FieldInfo) -> Any:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return value.model_dump()
    return value


@pytest.mark.parametrize("key", sorted(set(SCHEMA) & set(DOCUMENTED)))
def test_documented_default_is_the_schema_default(key: str) -> None:
    """The reference's default for a key is the default the schema applies."""
    field, row = SCHEMA[key], DOCUMENTED[key]
    where = f"docs/configuration.md:{row.line}: {row.key}"
    if field.is_required():
        assert row.default == "required", f"{where}: the schema requires it"
        return
    spans = _CODE_SPAN.fullmatch(row.default)
    assert spans, f"{where}: the default {row.default!r} is not one `value` (or required)"
    documented = yaml.safe_load(spans.group(2))
    actual = _schema_default(field)
    if isinstance(actual, Path):
        documented = Path(str(documented)).expanduser()
    assert documented == actual, f"{where}: documented {documented!r}, the schema has {actual!r}"
