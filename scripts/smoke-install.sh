#!/usr/bin/env bash
# Packaging smoke test: `pip install .` into a clean venv must give a package whose
# sandbox server starts and answers a token request, with templates, static files and
# py.typed inside the installed package.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp="$(mktemp -d)"
trap 'kill "${server_pid:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --upgrade pip
"$tmp/venv/bin/pip" install --quiet .
"$tmp/venv/bin/python" - <<'PY'
import importlib.resources as r
pkg = r.files("django_verifynow")
for rel in ("py.typed", "static/django_verifynow/verifynow.js",
            "templates/django_verifynow/widgets/phone_verification.html"):
    assert pkg.joinpath(rel).is_file(), f"missing from the installed package: {rel}"
print("installed package carries py.typed, templates and static files")
PY

# A free port unless VERIFYNOW_SMOKE_PORT names one (to stay in a range you own).
port="${VERIFYNOW_SMOKE_PORT:-$("$tmp/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
(cd "$tmp" && exec "$tmp/venv/bin/python" -m django_verifynow.sandbox --port "$port" --quiet) &
server_pid=$!
"$tmp/venv/bin/python" - "$port" <<'PY'
import base64, json, sys, time, urllib.parse, urllib.request
port = sys.argv[1]
query = urllib.parse.urlencode({"customerId": "C-SANDBOX", "scope": "NEW",
                                "key": base64.b64encode(b"sandbox").decode()})
url = f"http://127.0.0.1:{port}/auth/v1/authentication/token?{query}"
for _ in range(50):
    try:
        body = json.load(urllib.request.urlopen(url, timeout=2))
        break
    except OSError:
        time.sleep(0.2)
else:
    sys.exit("the installed sandbox server did not answer")
assert body["status"] == 200 and body["token"].count(".") == 2, body
print(f"installed sandbox server answered on port {port}")
PY
