#!/usr/bin/env bash
# Builds the documentation site into docs/_build/html, with every Sphinx warning an
# error (a broken cross-reference, an undocumented setting, a page left out of the
# toctree fail the build).
#
# It installs requirements-docs.txt into its own .venv-docs, not the test .venv, so
# the suite runs with only what the project declares: Sphinx brings babel, and with
# babel django-phonenumber-field takes its country names from CLDR instead.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-docs
stamp="$venv/.installed"
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if [[ ! -f "$stamp" || requirements-docs.txt -nt "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -e ".[openapi]" -r requirements-docs.txt
  touch "$stamp"
fi

rm -rf docs/_build/html
"$venv/bin/sphinx-build" -W --keep-going -q -b html docs docs/_build/html "$@"
echo "docs built: docs/_build/html/index.html"
