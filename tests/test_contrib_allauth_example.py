"""The example project's allauth variant (``python3 dev.py example --allauth``): its
settings load, pass the system checks, and allauth's signup page works with the
sandbox. Run in a subprocess: the suite's own settings stay the test settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "example_project" / "manage.py"
SETTINGS = "--settings=example_project.settings_allauth"

# Runs inside the example's settings: the signup page, one signup, the code page.
SCRIPT = """
from django.test import Client
from django_verifynow.models import VerificationAttempt
from django_verifynow.contrib.allauth.models import AccountPhone

client = Client()
page = client.get("/accounts/signup/")
assert page.status_code == 200, page.status_code
assert b'name="phone"' in page.content
answer = client.post("/accounts/signup/", {
    "username": "newcomer", "phone": "+91 98765 43210",
    "password1": "correct horse battery staple",
    "password2": "correct horse battery staple",
})
assert answer.status_code == 302, answer.status_code
assert answer.url == "/accounts/phone/verify/", answer.url
assert client.get(answer.url).status_code == 200
attempt = VerificationAttempt.objects.get()
print("purpose", attempt.purpose, "stored", AccountPhone.objects.get().verified)
"""


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args, SETTINGS],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def example_env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "EXAMPLE_DB": str(tmp_path / "allauth.sqlite3")}
    for var in (
        "DJANGO_SETTINGS_MODULE",
        "VERIFYNOW_CUSTOMER_ID",
        "VERIFYNOW_PASSWORD",
        "EXAMPLE_DATABASE_URL",
        "EXAMPLE_REDIS_URL",
    ):
        env.pop(var, None)
    return env


def test_the_allauth_variant_checks_migrates_and_signs_up(
    example_env: dict[str, str],
) -> None:
    check = _manage("check", "--fail-level", "WARNING", env=example_env)
    assert check.returncode == 0, check.stdout + check.stderr

    migrate = _manage("migrate", "--noinput", env=example_env)
    assert migrate.returncode == 0, migrate.stderr
    assert "verifynow_allauth.0001_initial... OK" in migrate.stdout

    run = _manage("shell", "-c", SCRIPT, env=example_env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "purpose allauth_phone stored False" in run.stdout


def test_dev_py_documents_the_variant() -> None:
    usage = subprocess.run(
        [sys.executable, str(ROOT / "dev.py")], capture_output=True, text=True
    )
    assert "python3 dev.py example --allauth" in usage.stderr
