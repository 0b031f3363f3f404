"""The pytest plugin and the TestCase mixin for sites' own tests, and the snippets of
docs/testing.md run as a site would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import caches
from django.test import TestCase

from django_verifynow import services
from django_verifynow.conf import verifynow_settings
from django_verifynow.exceptions import RateLimited
from django_verifynow.sandbox import peek_default_engine
from django_verifynow.testing import (
    TEST_CACHE_ALIAS,
    SandboxTestMixin,
    sandbox_session,
)

ROOT = Path(__file__).resolve().parent.parent
PHONE = "+919876543210"


def run_pytest(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    """pytest in a subprocess, as a site runs it: the installed plugin, no conftest
    of this repo."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "--import-mode=importlib",
            *args,
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


# -- sandbox_session -------------------------------------------------------------------
@pytest.mark.django_db
def test_a_session_starts_with_empty_limits_and_restores_everything():
    before = settings.VERIFYNOW
    engine_before = peek_default_engine()
    for _ in range(2):  # the cooldown of the first session does not reach the second
        with sandbox_session() as session:
            assert verifynow_settings.SANDBOX is True
            assert verifynow_settings.CACHE == TEST_CACHE_ALIAS
            first = services.send_otp(PHONE)
            with pytest.raises(RateLimited):
                services.resend_otp(first)
            assert session.count("send") == 1 and session.last_code(PHONE)
        first.delete()  # the live attempt (the next session may send again)
    assert settings.VERIFYNOW is before
    assert peek_default_engine() is engine_before
    assert TEST_CACHE_ALIAS not in settings.CACHES


def test_a_session_never_touches_the_site_cache():
    caches["default"].set("site-key", "kept")
    with sandbox_session():
        caches[TEST_CACHE_ALIAS].set("inside", 1)
    assert caches["default"].get("site-key") == "kept"


def test_a_session_reads_codes_in_any_format():
    with sandbox_session(fixed_code="4321") as session:
        engine = session.engine
        engine.handle(
            "POST",
            "/verification/v3/send",
            {"countryCode": "44", "mobileNumber": "7911123456", "flowType": "SMS"},
            {"authToken": engine.issue_token()},
        )
        assert session.last_code("07911 123456", region="GB") == "4321"
        assert session.codes_for("+44 7911 123456") == ["4321"]
        assert session.last_code(PHONE) is None
        with pytest.raises(ValueError):
            session.last_code("07911 123456")


class MixinTests(SandboxTestMixin, TestCase):
    verifynow_engine = {"fixed_code": "654321"}

    def test_the_mixin_runs_each_test_in_a_session(self):
        self.assertEqual(verifynow_settings.CACHE, TEST_CACHE_ALIAS)
        attempt = services.send_otp(PHONE)
        self.assertEqual(self.verifynow.last_code(PHONE), "654321")
        attempt = services.validate_otp(attempt.pk, "654321")
        self.assertEqual(attempt.state, "verified")

    def test_a_second_test_has_its_own_outbox(self):
        self.assertEqual(self.verifynow.outbox, [])


# -- the plugin ------------------------------------------------------------------------
def test_the_plugin_is_registered_as_an_entry_point():
    from importlib.metadata import entry_points

    [plugin] = [
        e for e in entry_points(group="pytest11") if e.name == "django_verifynow"
    ]
    assert plugin.value == "django_verifynow.pytest_plugin"


def test_the_plugin_does_nothing_in_a_project_that_does_not_use_it(tmp_path):
    (tmp_path / "test_plain.py").write_text(
        "import sys\n"
        "def test_plain():\n"
        "    assert 'django_verifynow.pytest_plugin' in sys.modules\n"
        "    assert 'django_verifynow.testing' not in sys.modules\n"
        "    assert 'django.conf' not in sys.modules\n"
    )
    done = run_pytest(tmp_path, "-p", "no:django", "test_plain.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_marker_is_accepted_with_strict_markers(tmp_path):
    (tmp_path / "test_marked.py").write_text(
        "import pytest\n"
        "@pytest.mark.verifynow_sandbox(fixed_code='111111')\n"
        "def test_marked(verifynow_sandbox):\n"
        "    assert verifynow_sandbox.engine.fixed_code == '111111'\n"
    )
    done = run_pytest(
        tmp_path, "--strict-markers", "--ds=tests.settings", "test_marked.py"
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- docs/testing.md -------------------------------------------------------------------
def doc_snippets() -> list[str]:
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_docs_snippets_pass_twice_in_one_run(tmp_path):
    tests = [s for s in doc_snippets() if "def test" in s]
    assert len(tests) >= 5
    for index, snippet in enumerate(tests):
        for copy in ("a", "b"):  # twice: no test may depend on a fresh process
            (tmp_path / f"test_doc_{index}_{copy}.py").write_text(snippet)
    done = run_pytest(tmp_path, "--ds=tests.settings", "-p", "no:randomly")
    assert done.returncode == 0, done.stdout + done.stderr
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))
    assert passed == 2 * sum(s.count("def test") for s in tests)
    # The snippets that are not tests still run as written (the URLconf).
    for snippet in doc_snippets():
        if "def test" not in snippet:
            exec(compile(snippet, "docs/testing.md", "exec"), {})
