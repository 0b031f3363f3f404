#!/usr/bin/env bash
# Run the test suite at one end of the supported matrix, in its own venv:
#
#   scripts/matrix.sh oldest [pytest args]   # Python 3.10, every dependency at its
#                                            # declared minimum (requirements-min.txt)
#   scripts/matrix.sh newest [pytest args]   # Python 3.13, the newest Django 6.1 and the
#                                            # newest release of everything else
#
# The venvs are .venv-oldest and .venv-newest at the repository root, rebuilt when
# pyproject.toml or a requirements file changes. Everything comes from the package index
# through pip (no local wheels, no git URLs). The PostgreSQL/Redis URLs and
# VERIFYNOW_REQUIRE_SERVICES pass through from the environment, as for dev.py test.
# The interpreter is found as python3.X on PATH, else under pyenv; set
# VERIFYNOW_PYTHON to use another one.
set -euo pipefail
cd "$(dirname "$0")/.."

end="${1:-}"
case "$end" in
  oldest) want=3.10 ;;
  newest) want=3.13 ;;
  *) echo "usage: scripts/matrix.sh oldest|newest [pytest args]" >&2; exit 2 ;;
esac
shift

find_python() {
  if [ -n "${VERIFYNOW_PYTHON:-}" ]; then echo "$VERIFYNOW_PYTHON"; return; fi
  # `command -v` is not enough: a pyenv shim exists for versions that are not active.
  if python"$want" -c '' 2>/dev/null; then command -v python"$want"; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    for candidate in "$(pyenv root)"/versions/"$want".*/bin/python"$want"; do
      if [ -x "$candidate" ]; then echo "$candidate"; return; fi
    done
  fi
  echo "matrix.sh: no Python $want found (set VERIFYNOW_PYTHON)" >&2
  exit 1
}

python="$(find_python)"
venv=".venv-$end"
stamp="$venv/.installed"

if [ ! -f "$stamp" ] || [ -n "$(find pyproject.toml requirements-*.txt -newer "$stamp")" ]; then
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  if [ "$end" = oldest ]; then
    # == pins at the declared minimums; pip fails if they cannot be met together.
    "$venv/bin/python" -m pip install --quiet -e ".[openapi,redis,otp,allauth,async]" \
      -r requirements-min.txt -r requirements-test.txt
  else
    "$venv/bin/python" -m pip install --quiet --upgrade -e ".[openapi,redis,otp,allauth,async]" \
      "Django>=6.1,<6.2" -r requirements-test.txt
  fi
  touch "$stamp"
fi

# Say what was tested, and refuse to pass for the wrong end of the matrix.
"$venv/bin/python" - "$end" <<'PY'
import sys
from importlib.metadata import version

end = sys.argv[1]
names = ["Django", "djangorestframework", "requests", "django-phonenumber-field",
         "phonenumbers", "drf-spectacular", "redis", "django-otp", "django-allauth",
         "httpx", "sniffio"]
found = {name: version(name) for name in names}
print(f"matrix {end}: Python {sys.version.split()[0]}, "
      + ", ".join(f"{n} {v}" for n, v in found.items()), flush=True)
if end == "oldest":
    pins = {}
    for line in open("requirements-min.txt"):
        line = line.split("#")[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            pins[name.strip()] = pinned.strip()
    # A pin this list does not name yet is read here too, not skipped.
    found.update({n: version(n) for n in pins if n not in found})
    wrong = {n: (found[n], p) for n, p in pins.items() if found[n] != p}
    if wrong:
        sys.exit(f"not at the declared minimums (installed, pinned): {wrong}")
elif not found["Django"].startswith("6.1"):
    sys.exit(f"newest must run Django 6.1, found {found['Django']}")
PY

exec "$venv/bin/python" -m pytest -p no:cacheprovider "$@"
