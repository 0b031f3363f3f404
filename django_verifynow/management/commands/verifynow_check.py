"""``manage.py verifynow_check``: validate the VERIFYNOW settings and fetch a token.

Prints what it checked and the outcome, never a secret: no password, key, token or full
customer id appears in the output. Exits non-zero when something is wrong, so it fits a
deployment pipeline.
"""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_verifynow.conf import DEFAULTS, verifynow_settings
from django_verifynow.exceptions import VerifyNowConfigurationError, VerifyNowError


def _hint(value: str | None) -> str:
    """A recognisable but useless fragment of an identifier (never of a secret)."""
    if not value:
        return "not set"
    return f"set ({value[:2]}…, {len(value)} characters)"


class Command(BaseCommand):
    """Validate the VerifyNow configuration and fetch a token."""

    help = (
        "Validate the VERIFYNOW settings and fetch a VerifyNow token with them. "
        "Prints the outcome without any secret; exits with status 1 on failure."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-token",
            action="store_true",
            help="only validate the settings; do not contact VerifyNow",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        problems = self._check_settings()
        if problems:
            raise CommandError(
                f"{problems} configuration problem(s): fix the VERIFYNOW settings above."
            )
        if options["no_token"]:
            return
        self._check_token()

    def _check_settings(self) -> int:
        s = verifynow_settings
        problems = 0
        for key in DEFAULTS:
            try:
                getattr(s, key)
            except VerifyNowConfigurationError as exc:
                self.stderr.write(self.style.ERROR(f"  {exc}"))
                problems += 1
        if problems:
            return problems
        mode = (
            "sandbox (in-process simulator, nothing leaves this machine)"
            if s.SANDBOX
            else "live"
        )
        self.stdout.write(f"Mode:        {mode}")
        self.stdout.write(f"Base URL:    {s.BASE_URL} (API {s.API_VERSION})")
        self.stdout.write(f"Customer id: {_hint(s.CUSTOMER_ID)}")
        self.stdout.write(f"Password:    {'set' if s.PASSWORD else 'not set'}")
        self.stdout.write(
            f"Codes:       {s.OTP_LENGTH} digits, {s.CODE_TTL} s, {s.MAX_ATTEMPTS} checks, "
            f"channel {s.FLOW_TYPE}"
        )
        countries = s.ALLOWED_COUNTRIES
        self.stdout.write(
            f"Countries:   {', '.join(sorted(countries)) if countries else 'all (see W004)'}"
        )
        messages = checks.run_checks(tags=["django_verifynow"])
        for message in messages:
            line = f"  {message.id}: {message.msg}"
            if message.is_serious():
                self.stderr.write(self.style.ERROR(line))
                problems += 1
            else:
                self.stdout.write(self.style.WARNING(line))
        if not problems:
            self.stdout.write(self.style.SUCCESS("Settings: OK"))
        return problems

    def _check_token(self) -> None:
        from django_verifynow.client import get_client

        try:
            client = get_client()
            client.forget_token()  # prove the credentials now, not a cached token
            token = client.get_token()
        except VerifyNowConfigurationError as exc:
            raise CommandError(str(exc)) from None
        except VerifyNowError as exc:
            code = getattr(exc, "response_code", None)
            detail = f" (VerifyNow response code {code})" if code is not None else ""
            raise CommandError(
                f"Token: FAILED: {exc.code}: {exc.message}{detail}"
            ) from None
        if not token:
            raise CommandError("Token: FAILED: VerifyNow answered without a token.")
        self.stdout.write(
            self.style.SUCCESS("Token: OK (fetched and cached; not shown)")
        )
