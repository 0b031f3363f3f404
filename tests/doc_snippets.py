"""Collects the code blocks of ``docs/*.md`` and ``README.md`` so the suite runs them.

``tests/test_docs_snippets.py`` turns every block found here into one test. What a
block is decides how it is checked:

* a ``python`` block is compiled and then executed in the test settings (sandbox mode,
  the test database), in a namespace that holds only the names a page leaves to the
  reader (:data:`PRELUDE`). A ``VERIFYNOW`` dict it defines is validated key by key
  through :data:`~django_verifynow.conf.verifynow_settings`. ``test_*`` functions it
  defines are called **twice in a row** with the fixtures they name, without clearing
  the cache in between, as a second test in a reader's suite would run;
* a ``python`` block of dict entries only (``"KEY": value,`` lines, as in a settings
  excerpt) is compiled wrapped in ``{}``, and its ``VERIFYNOW`` keys validated;
* ``sh`` blocks are not run here, except their ``curl`` commands against the API, which
  run through Django's test client (see ``tests/test_docs_snippets.py``);
* other languages (``json``, ``cron``, ``nginx``, plain text) are examples, not code.

An HTML comment right before a block changes that (invisible on GitHub and in the
site)::

    <!-- snippet: compile -->      a settings fragment that needs the reader's
                                   environment: compiled and its keys validated, not run
    <!-- snippet: equals NAME -->  the block is a Python expression equal to the object
                                   at dotted path NAME (a default shown in a page)
    <!-- snippet: signature NAME --> a ``text`` block showing ``NAME(...)``'s
                                   parameters: they match the code's signature
    <!-- snippet: skip -->         not checked at all (shell commands only)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The pages whose blocks are collected.
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
_MARKER = re.compile(
    r"^\s*<!--\s*snippet:\s*(?P<kind>[\w-]+)\s*(?P<arg>[^>]*?)\s*-->\s*$"
)
_KINDS = ("compile", "equals", "signature", "skip")


@dataclass(frozen=True)
class Snippet:
    """One fenced code block of a page."""

    path: Path
    line: int  #: line of the opening fence, 1-based
    language: str
    code: str
    marker: str | None = None  #: the ``snippet:`` comment's kind, if any
    argument: str = ""

    @property
    def id(self) -> str:
        """``docs/forms.md:190``: where to find the block."""
        inside = self.path.is_relative_to(ROOT)
        where = self.path.relative_to(ROOT) if inside else self.path
        return f"{where}:{self.line}"


def _language(info: str) -> str:
    # ```python, ```{code-block} python (MyST), ```sh
    info = info.strip()
    if info.startswith("{"):
        info = info.partition("}")[2]
    return (info.split() or [""])[0].lower()


def snippets(path: Path) -> Iterator[Snippet]:
    """The fenced blocks of one markdown page, with the marker before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    marker: tuple[str, str] | None = None
    while i < len(lines):
        line = lines[i]
        found = _MARKER.match(line)
        if found:
            kind = found["kind"]
            if kind not in _KINDS:
                raise ValueError(
                    f"{path.name}:{i + 1}: unknown snippet marker {kind!r} "
                    f"(one of {', '.join(_KINDS)})"
                )
            marker = (kind, found["arg"])
            i += 1
            continue
        opening = _FENCE.match(line)
        if not opening:
            if line.strip():
                marker = None  # a marker applies to the block right after it
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            text = lines[j]
            body.append(text[len(indent) :] if text.startswith(indent) else text)
            j += 1
        kind, argument = marker or (None, "")
        yield Snippet(
            path=path,
            line=i + 1,
            language=_language(opening["info"]),
            code="\n".join(body) + "\n",
            marker=kind,
            argument=argument,
        )
        marker = None
        i = j + 1


def all_snippets(languages: tuple[str, ...]) -> list[Snippet]:
    """Every block in :data:`PAGES` in one of ``languages``."""
    return [s for page in PAGES for s in snippets(page) if s.language in languages]
