"""``manage.py verifynow_check``: validate the VERIFYNOW settings, try the limits
cache, fetch a token and look for insufficient-balance refusals.

Prints what it checked and the outcome, never a secret: no password, key, token or full
customer id appears in the output. Exits non-zero when something is wrong (including an
account out of credit), so it fits a deployment pipeline and a monitoring job.
"""

from __future__ import annotations

import uuid
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from django_verifynow.checks import CACHE_INSTALLS
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
        "Validate the VERIFYNOW settings, try the limits cache (set, get, "
        "increment, delete), fetch a VerifyNow token, and "
        "report sends refused for insufficient balance (508) in the last 24 hours. "
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
                f"{problems} configuration problem(s): "
                "fix the VERIFYNOW settings above."
            )
        # Before the token, so their lines are printed even when the token check
        # fails; neither contacts VerifyNow (so they run with --no-token too).
        cache_ok = self._check_cache()
        out_of_credit = self._check_credit()
        if not options["no_token"]:
            self._check_token()
        if not cache_ok:
            raise CommandError(
                "The limits cache does not work: every send is refused until it does."
            )
        if out_of_credit:
            raise CommandError(
                "VerifyNow refuses sends for insufficient balance: top up the account."
            )

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
            f"Codes:       {s.OTP_LENGTH} digits, {s.CODE_TTL} s, "
            f"{s.MAX_ATTEMPTS} checks, channel {s.FLOW_TYPE}"
        )
        countries = s.ALLOWED_COUNTRIES
        listed = ", ".join(sorted(countries)) if countries else "all (see W004)"
        self.stdout.write(f"Countries:   {listed}")
        tests = s.TEST_NUMBERS
        if tests:
            from django_verifynow.phone import mask

            self.stdout.write(
                self.style.WARNING(
                    f"Test numbers: {len(tests)} ("
                    + ", ".join(mask(n) for n in tests)
                    + "), fixed codes answered without VerifyNow"
                )
            )
        else:
            self.stdout.write("Test numbers: none")
        messages = checks.run_checks(tags=["django_verifynow"])
        for message in messages:
            line = f"  {message.id}: {message.msg}"
            if message.is_serious():
                # The hint too: an error stops here, and the hint says how to fix it.
                if message.hint:
                    line += f"\n    HINT: {message.hint}"
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

    def _check_cache(self) -> bool:
        """Set, read, increment and delete a private key in the limits cache; print
        the outcome. The limits, cooldowns and daily cap need all four: when any
        fails, sends are refused (the cache is down, not VerifyNow)."""
        alias = verifynow_settings.CACHE
        backend = str(settings.CACHES[alias].get("BACKEND", "")).rsplit(".", 1)[-1]
        where = f'VERIFYNOW["CACHE"] = "{alias}" ({backend})'
        key = f"verifynow:check:{uuid.uuid4().hex}"
        step = "connect"
        try:
            cache = caches[alias]
            step = "set"
            cache.set(key, 1, timeout=60)
            step = "get"
            if cache.get(key) != 1:
                raise LookupError("a value just written could not be read back")
            step = "increment"
            if cache.incr(key) != 2:
                raise LookupError("the increment did not count")
            step = "delete"
            cache.delete(key)
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            detail = f"{type(exc).__name__}: {exc}"[:200]
            install = CACHE_INSTALLS.get(getattr(exc, "name", None) or "")
            hint = f"; install the client: {install}" if install else ""
            self.stderr.write(
                self.style.ERROR(
                    f"Cache: FAILED at {step}: {where}: {detail}{hint}. Sends are "
                    "refused until the limits cache works (VerifyNow is not at fault)."
                )
            )
            return False
        self.stdout.write(
            self.style.SUCCESS(f"Cache: OK ({where}: set, get, increment, delete)")
        )
        return True

    def _check_credit(self) -> bool:
        """Print the credit line; True when sends are being refused for lack of credit
        (the query is :func:`~django_verifynow.dashboard.out_of_credit_since`, the one
        behind the dashboard's banner)."""
        from django_verifynow.dashboard import CREDIT_WINDOW, out_of_credit_since

        hours = int(CREDIT_WINDOW.total_seconds() // 3600)
        try:
            outage = out_of_credit_since()
        except DatabaseError as exc:
            # Not a credit problem: a pipeline may run this before the migrations.
            self.stdout.write(
                self.style.WARNING(
                    f"Credit: not checked (the attempt history could not be read: "
                    f"{type(exc).__name__})"
                )
            )
            return False
        if outage is None:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Credit: no insufficient-balance refusals in the last {hours} h"
                )
            )
            return False
        since = outage.since.astimezone(dt_timezone.utc)
        latest = outage.latest.astimezone(dt_timezone.utc)
        refusals = f"{outage.refusals} refusal{'s' if outage.refusals != 1 else ''}"
        self.stderr.write(
            self.style.ERROR(
                f"Credit: sends refused for insufficient balance (508) since "
                f"{since:%Y-%m-%d %H:%M} UTC ({refusals}, the last at "
                f"{latest:%Y-%m-%d %H:%M} UTC) — top up the account"
            )
        )
        return True
