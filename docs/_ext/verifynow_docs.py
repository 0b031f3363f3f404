"""Sphinx extension of the django-verifynow docs.

* ``.. setting:: KEY`` / ``:setting:`KEY``` (``{setting}`KEY``` in MyST): one
  ``VERIFYNOW`` key, indexed and linkable.
* ``.. verifynow-settings::`` (in an ``{eval-rst}`` block of a MyST page, so that the
  docstrings are read as reStructuredText): the whole settings reference, generated from
  ``django_verifynow/defaults.py`` and the typed properties of ``conf.py`` (see
  ``settings_reference.py``), so it cannot drift from the code.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from settings_reference import settings_reference
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


def _links(doc: str, keys: set[str]) -> str:
    # conf.py's docstrings name other keys as :attr:`KEY` (they are properties there);
    # here each key is a setting with its own anchor.
    return re.sub(
        r":attr:`~?(\w+)`",
        lambda m: f":setting:`{m[1]}`" if m[1] in keys else m[0],
        doc,
    )


def _rst(setting: Any, keys: set[str]) -> list[str]:
    lines = [f".. setting:: {setting.key}", ""]
    kind = f"**Type:** ``{setting.type}``"
    if "\n" in setting.default or len(setting.default) > 60:
        lines += [f"   **Default:** below · {kind}", ""]
        lines += ["   .. code-block:: python", ""]
        lines += textwrap.indent(setting.default, "      ").splitlines()
    else:
        lines += [f"   **Default:** ``{setting.default}`` · {kind}"]
    lines.append("")
    lines += textwrap.indent(_links(setting.doc, keys), "   ").splitlines()
    lines.append("")
    return lines


class VerifyNowSettingsDirective(SphinxDirective):
    """Renders every ``VERIFYNOW`` key: default, type and docstring."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        lines: list[str] = []
        found = settings_reference()
        keys = {s.key for s in found}
        for setting in found:
            lines += _rst(setting, keys)
        container = nodes.container()
        source = self.get_source_info()[0] or "settings"
        self.state.nested_parse(StringList(lines, source=source), 0, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_object_type(
        "setting", "setting", indextemplate="pair: %s; VERIFYNOW setting"
    )
    app.add_directive("verifynow-settings", VerifyNowSettingsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
