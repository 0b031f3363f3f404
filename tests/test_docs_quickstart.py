"""docs/quickstart.md, followed to the letter in a new ``startproject``.

The page's blocks are pasted where it says (the end of ``mysite/settings.py``,
``mysite/views.py``, ``mysite/urls.py``, ``templates/signup.html``), then the project
is migrated and checked with its own ``manage.py``, and a signup goes through the
page's form and API with a verified number, in sandbox mode.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .doc_snippets import ROOT, Snippet, snippets

PAGE = ROOT / "docs" / "quickstart.md"

FLOW = r"""
import json
import django.test.utils
from django.contrib.auth import get_user_model
from django.test import Client
from django_verifynow.models import VerificationAttempt
from django_verifynow.testing import last_code

django.test.utils.setup_test_environment()  # lets the test client's host in
client = Client()
page = client.get("/signup/")
assert page.status_code == 200, page.status_code
assert b"data-verifynow" in page.content, "the widget is on the page"
phone = "+919876543210"
r = client.post("/api/verify/", {"phone_number": phone, "purpose": "signup"},
                content_type="application/json")
assert r.status_code == 201, r.content
attempt = r.json()["id"]
r = client.post(f"/api/verify/{attempt}/validate/", {"code": last_code(phone)},
                content_type="application/json")
assert r.json()["status"] == "verified", r.content
r = client.post("/signup/", {"username": "asha", "password1": "x-Correct-horse-9",
                             "password2": "x-Correct-horse-9", "phone": phone,
                             "phone_attempt": attempt})
assert r.status_code == 302, r.content[:2000]
assert get_user_model().objects.filter(username="asha").exists()
used = VerificationAttempt.objects.get(pk=attempt)
assert used.consumed_at is not None and used.user.username == "asha", used.user
print("signed up")
"""


def _block(blocks: list[Snippet], language: str, first_line: str = "") -> str:
    for block in blocks:
        if block.language == language and block.code.startswith(first_line):
            return block.code
    raise AssertionError(f"quickstart.md has no {language} block {first_line!r}")


def _manage(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_the_quick_start_ends_in_a_verified_signup(tmp_path: Path) -> None:
    blocks = list(snippets(PAGE))
    project = tmp_path / "site"
    project.mkdir()
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite", str(project)],
        check=True,
        timeout=120,
    )
    settings = project / "mysite" / "settings.py"
    settings.write_text(
        settings.read_text()
        + "\n"
        + _block(blocks, "python", "INSTALLED_APPS +=")
        + "\n"
        + _block(blocks, "python", "LOGGING = {")
    )
    (project / "mysite" / "views.py").write_text(
        _block(blocks, "python", "# mysite/views.py")
    )
    (project / "mysite" / "urls.py").write_text(
        _block(blocks, "python", "# mysite/urls.py")
    )
    (project / "templates").mkdir()
    (project / "templates" / "signup.html").write_text(_block(blocks, "html"))

    _manage(project, "migrate", "--verbosity", "0")
    checked = _manage(project, "check")
    said = checked.stdout + checked.stderr
    # The one warning the page announces, and no other.
    assert "(django_verifynow.W003)" in said
    assert "System check identified 1 issue (0 silenced)" in said
    flow = _manage(project, "shell", "--command", FLOW)
    assert "signed up" in flow.stdout
    # The sandbox logs the code it "sent", masked number, as the page says.
    assert "+91********10" in flow.stderr
