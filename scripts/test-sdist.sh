#!/usr/bin/env bash
# The source distribution is complete: build it, unpack it in a temporary directory,
# install it with its test requirements into a clean venv, and run its own test suite
# there (SQLite and the local-memory cache; the browser tests need Chromium, which
# scripts/install-browser.sh installs). Nothing from the checkout is used after the
# build: a file missing from MANIFEST.in fails here.
#   scripts/test-sdist.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

python3 -m venv "$tmp/venv"
pip=("$tmp/venv/bin/python" -m pip install --quiet)
"${pip[@]}" --upgrade pip build
"$tmp/venv/bin/python" -m build --sdist --outdir "$tmp/dist" . >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log" >&2; exit 1; }
sdist="$(ls "$tmp"/dist/django_verifynow-*.tar.gz)"
echo "built $(basename "$sdist"): $(tar -tzf "$sdist" | wc -l) files"
tar -xzf "$sdist" -C "$tmp"
src="$(ls -d "$tmp"/django_verifynow-*/)"

# Installed from the sdist itself (not the checkout), with the same extras and test
# requirements as python3 dev.py test.
"${pip[@]}" "django-verifynow[openapi,redis] @ file://$sdist" \
  -r "$src/requirements-test.txt" -r "$src/requirements-example.txt"

cd "$src"
# SQLite and locmem: the PostgreSQL/Redis tests are run by the other CI steps.
env -u VERIFYNOW_TEST_DATABASE_URL -u VERIFYNOW_TEST_REDIS_URL \
  -u VERIFYNOW_REQUIRE_SERVICES \
  "$tmp/venv/bin/python" -m pytest -p no:cacheprovider "$@"
