"""``manage.py verifynow_send <phone>``: an end-to-end smoke test of the account.

Sends a real code through :func:`django_verifynow.services.send_otp` (the same policy
and records as the site), prompts for the code received, and checks it with
:func:`~django_verifynow.services.validate_otp`. With ``VERIFYNOW["SANDBOX"]`` on,
nothing leaves the machine and the code is in the sandbox log.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_verifynow import services
from django_verifynow.conf import verifynow_settings
from django_verifynow.exceptions import (
    InvalidInput,
    VerifyNowConfigurationError,
    VerifyNowError,
)
from django_verifynow.models import AttemptStatus


class Command(BaseCommand):
    """Send a code to a phone and check the code typed back."""

    help = (
        "Send a verification code to PHONE (E.164, e.g. +919876543210) through the "
        "configured VerifyNow account, prompt for the code, and check it."
    )
    #: call_command("verifynow_send", phone, stdin=io.StringIO("123456\n")) in tests.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("phone", help="the number to verify, with its country code")
        parser.add_argument(
            "--channel",
            choices=["SMS", "WHATSAPP"],
            default=None,
            help="delivery channel (default: VERIFYNOW['FLOW_TYPE'])",
        )
        parser.add_argument(
            "--purpose",
            default="smoke_test",
            help="purpose recorded on the attempt (default: smoke_test)",
        )

    def _read_code(self, stdin: TextIO, attempts_left: int) -> str | None:
        self.stdout.write(
            f"Code ({attempts_left} tries left, empty to stop): ", ending=""
        )
        self.stdout.flush()
        line = stdin.readline()
        if not line:  # end of input
            self.stdout.write("")
            return None
        return line.strip() or None

    def handle(self, *args: Any, **options: Any) -> None:
        stdin: TextIO = options.get("stdin") or sys.stdin
        mode = (
            "sandbox"
            if verifynow_settings.SANDBOX
            else "LIVE: a real message will be sent"
        )
        self.stdout.write(f"Mode: {mode}")
        try:
            attempt = services.send_otp(
                options["phone"],
                purpose=options["purpose"],
                flow_type=options["channel"],
            )
        except VerifyNowConfigurationError as exc:
            raise CommandError(str(exc)) from None
        except VerifyNowError as exc:
            raise CommandError(f"Send refused: {exc.code}: {exc.message}") from None
        self.stdout.write(
            f"Sent to {attempt.masked_phone_number} by {attempt.flow_type}: attempt "
            f"{attempt.pk}, {attempt.otp_length} digits, "
            f"expires {attempt.expires_at:%H:%M:%S} UTC."
        )
        while attempt.status == AttemptStatus.PENDING:
            code = self._read_code(stdin, attempt.attempts_left)
            if code is None:
                raise CommandError(f"Stopped; the attempt is {attempt.status}.")
            try:
                attempt = services.validate_otp(attempt, code)
            except InvalidInput as exc:
                self.stderr.write(str(exc.message))
                continue
            except VerifyNowError as exc:
                raise CommandError(f"Check failed: {exc.code}: {exc.message}") from None
            if attempt.status == AttemptStatus.PENDING:
                self.stderr.write(f"Wrong code; {attempt.attempts_left} tries left.")
        if attempt.status != AttemptStatus.VERIFIED:
            raise CommandError(f"Not verified: the attempt is {attempt.status}.")
        self.stdout.write(
            self.style.SUCCESS(f"Verified {attempt.masked_phone_number}.")
        )
