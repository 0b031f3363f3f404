"""The docs site's sources: the settings reference is complete, every page is in the
site, and nothing points readers at a document the repository does not have.

The site itself is built by ``scripts/build-docs.sh`` (Sphinx, warnings as errors);
these checks run in the test suite, without Sphinx.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from django_verifynow.conf import DEFAULTS, VerifyNowSettings, setting_property

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

from settings_reference import (  # noqa: E402
    UndocumentedSetting,
    settings_reference,
)

# -- the settings reference ----------------------------------------------------------


def test_the_reference_describes_every_key_from_the_code() -> None:
    """One entry per DEFAULTS key, in order, each with a type and a docstring."""
    found = settings_reference()
    assert [s.key for s in found] == list(DEFAULTS)
    by_key = {s.key: s for s in found}
    assert by_key["OTP_LENGTH"].default == "6"
    assert by_key["OTP_LENGTH"].type == "int"
    assert "WHATSAPP" in by_key["FLOW_TYPE"].doc
    assert all(s.doc and s.type for s in found)


def test_a_key_without_a_documented_property_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new key added to DEFAULTS without its typed, documented property fails here,
    before the docs build would."""
    monkeypatch.setitem(DEFAULTS, "NEW_KEY", 1)
    with pytest.raises(UndocumentedSetting, match="NEW_KEY: no setting_property"):
        settings_reference()
    monkeypatch.delitem(DEFAULTS, "NEW_KEY")

    def undocumented(self: VerifyNowSettings) -> int:
        return 1

    monkeypatch.setattr(
        VerifyNowSettings, "OTP_LENGTH", setting_property(undocumented), raising=True
    )
    undocumented.__name__ = "OTP_LENGTH"
    with pytest.raises(UndocumentedSetting, match="OTP_LENGTH: its property has no"):
        settings_reference()


def test_the_settings_page_renders_the_generated_reference() -> None:
    text = (DOCS / "settings.md").read_text()
    assert re.search(r"```\{eval-rst\}\n\.\. verifynow-settings::\n```", text)


def _readme_settings_rows() -> list[tuple[list[str], list[str]]]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Settings", 1)[1].split("\n\n")[2]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append(
            (re.findall(r"`(\w+)`", cells[0]), re.findall(r"`([^`]+)`", cells[1]))
        )
    return rows


def test_the_readme_settings_table_matches_the_code() -> None:
    """The README's short table lists every key once, with the code's defaults."""
    rows = _readme_settings_rows()
    keys = [key for names, _ in rows for key in names]
    assert sorted(keys) == sorted(DEFAULTS)
    compared = 0
    for names, defaults in rows:
        if len(defaults) != len(names):
            continue  # "—" or "see below"
        for key, shown in zip(names, defaults, strict=True):
            value = DEFAULTS[key]
            expected = list(value) if isinstance(value, tuple) else value
            try:
                literal = ast.literal_eval(shown)
            except (ValueError, SyntaxError):
                literal = shown  # a URL shown unquoted
            literal = list(literal) if isinstance(literal, tuple) else literal
            assert literal == expected, f"README shows {key} = {shown}"
            compared += 1
    assert compared >= 20


# -- the site's pages ----------------------------------------------------------------


def _toctree_entries() -> tuple[set[str], set[str]]:
    """The pages index.md's toctrees list, and those marked ``% optional``."""
    entries, optional = set(), set()
    for block in re.findall(
        r"```\{toctree\}\n(.*?)```", (DOCS / "index.md").read_text(), re.S
    ):
        for line in block.splitlines():
            if not line.strip() or line.startswith(":"):
                continue
            name = line.removesuffix("% optional").strip()
            entries.add(name)
            if line.endswith("% optional"):
                optional.add(name)
    return entries, optional


def test_every_page_is_in_the_site() -> None:
    entries, optional = _toctree_entries()
    pages = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert pages - entries == set(), "pages missing from docs/index.md's toctree"
    assert entries - pages - optional == set(), "toctree entries without a page"
    assert optional <= {"testing"}, "only pages written on other branches are optional"


# -- references to documents ----------------------------------------------------------

_SOURCES = [
    *ROOT.glob("*.md"),
    *DOCS.glob("*.md"),
    *DOCS.glob("*.py"),
    *(DOCS / "_ext").glob("*.py"),
    *[
        p
        for folder in ("django_verifynow", "tests", "benchmarks", "example_project")
        for p in (ROOT / folder).rglob("*")
        if p.suffix in {".py", ".md", ".html", ".js", ".css", ".txt"}
        and "__pycache__" not in p.parts
    ],
    *(ROOT / "scripts").glob("*"),
    *[p for p in (ROOT / ".ci").glob("*") if p.is_file()],
]
_DOCUMENT = re.compile(r"(?<![\w/.-])((?:\.\./|[\w-]+/)*[\w-]+\.md)\b")
_REQUIREMENT_ID = re.compile(r"\b[RS]\d{1,3}\b")


def _exists(reference: str, where: Path) -> bool:
    return any((base / reference).exists() for base in (where.parent, ROOT, DOCS))


def test_every_document_cited_is_in_the_repository() -> None:
    """Code comments and docs name only documents the repository has (no design
    notes kept elsewhere), and no requirement ids of such notes (R12, S24)."""
    _, optional = _toctree_entries()
    missing, ids = [], []
    for source in _SOURCES:
        if source == Path(__file__):
            continue  # names the kind of document it looks for
        text = source.read_text(encoding="utf-8", errors="replace")
        for line_no, line in enumerate(text.splitlines(), 1):
            for reference in _DOCUMENT.findall(line):
                if (
                    reference.removesuffix(".md") in optional
                    and source.name == "conf.py"
                ):
                    continue
                if reference == "page.md" and source.name.startswith("test_docs"):
                    continue  # the pages these tests write
                if not _exists(reference, source):
                    missing.append(f"{source.relative_to(ROOT)}:{line_no}: {reference}")
            if _REQUIREMENT_ID.search(line):
                ids.append(f"{source.relative_to(ROOT)}:{line_no}: {line.strip()}")
    assert missing == [], "documents that are not in the repository"
    assert ids == [], "requirement ids of documents that are not in the repository"


def test_the_citation_check_finds_a_missing_document(tmp_path: Path) -> None:
    source = tmp_path / "module.py"
    source.write_text("# see DESIGN.md section 4, and docs/api.md\n")
    found = _DOCUMENT.findall(source.read_text())
    assert found == ["DESIGN.md", "docs/api.md"]
    assert not _exists("DESIGN.md", source)
    assert _exists("docs/api.md", source)
