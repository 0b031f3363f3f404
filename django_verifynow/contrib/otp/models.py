""":class:`VerifyNowDevice`: a django-otp device whose codes VerifyNow sends and checks.

The device holds a phone number that was proven by a verified attempt (it is never set
from a raw number) and the id of its live challenge: the attempt its last
:meth:`~VerifyNowDevice.generate_challenge` started. Every send and check goes through
:mod:`django_verifynow.services`, so the app's cooldowns, limits, attempt cap, signals
and attempt history apply to second-factor codes as to any other.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Any

from django.db import models, transaction
from django.db.models import F, Value
from django.db.models.functions import Least
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_otp.models import (
    Device,
    GenerateNotAllowed,
    ThrottlingMixin,
    TimestampMixin,
)

from ... import services
from ...conf import verifynow_settings
from ...exceptions import AttemptNotFound, InvalidInput, VerifyNowError
from ...models import AttemptStatus, VerificationAttempt
from ...phone import mask
from ...services import CheckResult
from .conf import settings
from .middleware import current_request

__all__ = ["VerifyNowDevice"]

logger = logging.getLogger("django_verifynow.otp")

_NOT_PROVEN = _(
    "Verify this phone number for your account first: the verification is missing, "
    "used, too old or not yours."
)


class VerifyNowDevice(TimestampMixin, ThrottlingMixin, Device):
    """A phone that receives one-time codes by VerifyNow, as a django-otp device.

    Create or update one with :meth:`enrol` from a verified attempt; then django-otp's
    forms, ``OTPAdminSite`` and ``otp_required`` use it like any device:
    :meth:`generate_challenge` sends a code (``services.send_otp``, purpose
    :attr:`CHALLENGE_PURPOSE`) and :meth:`verify_token` checks it
    (``services.validate_otp``), once.

    Two counters guard the codes, and they count the same thing: a code VerifyNow
    judged wrong. The attempt cap (``VERIFYNOW["MAX_ATTEMPTS"]`` per code, then the
    code is locked) and django-otp's back-off (:class:`~django_otp.models.
    ThrottlingMixin`, ``OTP_VERIFYNOW_THROTTLE_FACTOR``) both step once per wrong code;
    a code refused before the vendor saw it (malformed, rate limited, vendor down)
    moves neither. The back-off stops growing after ``MAX_ATTEMPTS`` steps, so a
    stranger with the password cannot lock the owner out for days.

    .. attribute:: number

        The phone number in E.164, copied from the attempt that proved it.

    .. attribute:: challenge_id

        The id of the :class:`~django_verifynow.models.VerificationAttempt` of the live
        challenge, or ``None``.
    """

    #: Purpose of the attempts :meth:`generate_challenge` starts.
    CHALLENGE_PURPOSE = "otp_login"
    #: Purpose :meth:`enrol` expects of the proving attempt, unless told otherwise.
    ENROL_PURPOSE = "otp_enrol"

    number = models.CharField(_("phone number"), max_length=20, editable=False)
    # The attempt's id, not a foreign key: the purge deletes attempts in bulk, and a
    # foreign key would make every delete collect and update devices. A stale id is
    # harmless: each use reloads the attempt and checks its user, number, purpose and
    # state, and a deleted attempt reads as no challenge at all.
    challenge_id = models.UUIDField(
        _("live challenge"), null=True, blank=True, editable=False
    )
    number_verified_at = models.DateTimeField(
        _("number verified"), null=True, blank=True, editable=False
    )

    class Meta:
        verbose_name = _("VerifyNow device")
        verbose_name_plural = _("VerifyNow devices")
        constraints = [
            # Enrolling a number the user already has updates that device: two
            # concurrent enrolments of one number cannot leave two devices.
            models.UniqueConstraint(
                fields=["user", "number"], name="verifynow_otp_one_device_per_number"
            )
        ]

    @property
    def masked_number(self) -> str:
        """The number with all but the calling code and last digits hidden."""
        return mask(self.number)

    # -- enrolment -----------------------------------------------------------------
    @classmethod
    def enrol(
        cls,
        attempt: VerificationAttempt | uuid.UUID | str,
        *,
        user: Any,
        request: HttpRequest | None = None,
        name: str | None = None,
        purpose: str = ENROL_PURPOSE,
    ) -> VerifyNowDevice:
        """Create (or refresh) ``user``'s device for the number ``attempt`` proved.

        The attempt must be verified and unconsumed, for ``purpose``, of this user:
        started by them (``attempt.user``) or, with ``request``, in this browser
        session. It is consumed (``services.consume_verification(user=user)``) in the
        same transaction that saves the device, so a proof makes at most one
        enrolment, and a failed save gives it back. Enrolling a number the user
        already has refreshes that device: confirmed again, no live challenge, its
        back-off reset.

        :param request: the request of the user enrolling; required to accept an
            attempt started before login (bound to the session, not yet to the user).
            A request of another logged-in user is refused.
        :param name: the device's name; by default its masked number.
        :raises AttemptNotFound: the proof is missing, used, too old, for another
            purpose, another user or another session (one error for all).
        :raises InvalidInput: ``purpose`` is the login challenge's.
        """
        if purpose == cls.CHALLENGE_PURPOSE:
            # A login code proves the number of a device that already exists.
            raise InvalidInput(_("Unknown verification purpose."))
        user_id = getattr(user, "pk", None)
        who = getattr(request, "user", None) if request is not None else None
        if user_id is None or (
            who is not None and who.is_authenticated and who.pk != user_id
        ):
            raise AttemptNotFound(_NOT_PROVEN)
        pk = attempt.pk if isinstance(attempt, VerificationAttempt) else attempt
        # Reloaded whatever was passed: the number comes from the stored row only.
        found = services.get_attempt(pk, request=request)
        if found.user_id not in (None, user_id) or (
            request is None and found.user_id != user_id
        ):
            # Server-side, the session cannot be checked: the attempt must name the
            # user. With a request, the services check the session binding.
            raise AttemptNotFound(_NOT_PROVEN)
        with transaction.atomic():
            proof = services.consume_verification(
                found,
                phone_number=found.phone_number,
                purpose=purpose,
                request=request,
                user=user,
            )
            values: dict[str, Any] = {
                "confirmed": True,
                "challenge_id": None,
                "number_verified_at": proof.verified_at,
                "throttling_failure_count": 0,
                "throttling_failure_timestamp": None,
            }
            if name:
                values["name"] = name
            # update_or_create locks an existing row and survives a concurrent create
            # (it retries the read after the unique constraint fires).
            device, _created = cls.objects.update_or_create(
                user=user, number=proof.phone_number, defaults=values
            )
            if not device.name:
                device.name = device.masked_number
                device.save(update_fields=["name"])
        return device

    # -- django-otp's interface ----------------------------------------------------
    def get_throttle_factor(self) -> float:
        """``OTP_VERIFYNOW_THROTTLE_FACTOR``: django-otp's back-off factor."""
        factor: float = settings.OTP_VERIFYNOW_THROTTLE_FACTOR
        return factor

    def generate_is_allowed(self) -> tuple[bool, dict[str, Any] | None]:
        """``(False, {"reason": COOLDOWN_DURATION_PENDING, "next_generation_at": …})``
        while the number's resend cooldown runs, else ``(True, None)``.

        Advisory, as in django-otp: :meth:`generate_challenge` asks the policy itself.
        """
        probe = VerificationAttempt(phone_number=self.number)
        at = services.resend_available_at(probe)
        if at > timezone.now():
            return False, {
                "reason": GenerateNotAllowed.COOLDOWN_DURATION_PENDING,
                "next_generation_at": at,
            }
        allowed: tuple[bool, dict[str, Any] | None] = super().generate_is_allowed()
        return allowed

    def generate_challenge(self, request: HttpRequest | None = None) -> str:
        """Send a code to the device's number; return a message for the user.

        The message names the masked number only. The new attempt becomes the live
        challenge; a refused or failed send raises and keeps the previous challenge
        (whose code the user may still have).

        :param request: the request asking; by default the one
            :class:`~django_verifynow.contrib.otp.middleware.OTPRequestMiddleware`
            keeps. With one, the code can be entered only in that browser session,
            and the per-IP and per-session limits apply.
        :raises InvalidInput: the device is disabled (not confirmed) or has no number.
        :raises RateLimited: the cooldown or a send limit (``retry_after``).
        :raises PhoneNumberNotAllowed: the number's country is no longer allowed.
        :raises ProviderUnavailable, ProviderError: VerifyNow did not send it.
        """
        if not self.confirmed or not self.number:
            # django-otp's forms accept any device id of the user, listed or not: a
            # device disabled in the admin must refuse by itself.
            raise InvalidInput(_("This device is disabled."))
        attempt = services.send_otp(
            self.number,
            request=request if request is not None else current_request(),
            user=self.user,
            purpose=self.CHALLENGE_PURPOSE,
        )
        type(self).objects.filter(pk=self.pk).update(challenge_id=attempt.pk)
        self.challenge_id = attempt.pk
        number = attempt.masked_phone_number
        if attempt.code_sent:
            return gettext("A code was sent to %(number)s.") % {"number": number}
        return gettext(
            "The code sent to %(number)s a moment ago is still valid: enter it."
        ) % {"number": number}

    def verify_is_allowed(self) -> tuple[bool, dict[str, Any] | None]:
        """Refuse, with a message django-otp's forms show, when the live challenge can
        no longer be entered (locked, expired, used); then django-otp's back-off."""
        message = self._refusal(self._challenge())
        if message is not None:
            return False, {"error_message": message}
        allowed: tuple[bool, dict[str, Any] | None] = super().verify_is_allowed()
        return allowed

    def verify_token(self, token: Any, request: HttpRequest | None = None) -> bool:
        """Check ``token`` against the live challenge; True once, for the right code.

        False without a vendor call when there is no usable challenge, the device is
        disabled or backing off, or the challenge was sent to another browser
        session. A right code verifies and consumes the challenge's attempt, so a
        replay, or a concurrent second submission, is False. Refusals and vendor
        failures are False too (django-otp expects a bool); they are recorded in the
        attempt history and logged without the number.

        :param request: as for :meth:`generate_challenge`.
        """
        attempt = self._challenge()
        if (
            attempt is None
            or not self.confirmed
            or self._refusal(attempt) is not None
            or not ThrottlingMixin.verify_is_allowed(self)[0]
        ):
            return False
        request = request if request is not None else current_request()
        if not _same_session(attempt, request):
            return False
        try:
            checked = services.validate_otp(attempt, token, request=request)
        except VerifyNowError as exc:
            logger.info(
                "code for device %s not checked: %s", self.pk, exc.reason or exc.code
            )
            return False
        if checked.check_result == CheckResult.VERIFIED:
            return self._accept(checked, request)
        if checked.check_result in (CheckResult.WRONG_CODE, CheckResult.LOCKED):
            self._count_failure()
        return False

    # -- internals -----------------------------------------------------------------
    def _challenge(self) -> VerificationAttempt | None:
        """The live challenge's attempt, if it still is this device's.

        Read like the admin reads attempts: only the services write them.
        """
        if self.challenge_id is None:
            return None
        return VerificationAttempt.objects.filter(
            pk=self.challenge_id,
            user_id=self.user_id,
            phone_number=self.number,
            purpose=self.CHALLENGE_PURPOSE,
        ).first()

    @staticmethod
    def _refusal(attempt: VerificationAttempt | None) -> str | None:
        """Why the challenge's code can no longer be entered, or ``None``."""
        if attempt is None:
            return None
        state = attempt.state
        if state == AttemptStatus.PENDING and attempt.consumed_at is None:
            return None
        if state == AttemptStatus.LOCKED:
            return gettext("Too many wrong codes: ask for a new code.")
        if state == AttemptStatus.EXPIRED:
            return gettext("This code has expired: ask for a new code.")
        return gettext("This code can no longer be used: ask for a new code.")

    def _accept(
        self, checked: VerificationAttempt, request: HttpRequest | None
    ) -> bool:
        # The check made the attempt verified for exactly one caller; consuming it is a
        # second conditional write, so the code counts once even if two checks of a
        # verified attempt ever both reported success.
        try:
            services.consume_verification(
                checked,
                phone_number=checked.phone_number,
                purpose=self.CHALLENGE_PURPOSE,
                request=request,
                user=self.user,
            )
        except AttemptNotFound:
            return False
        now = timezone.now()
        type(self).objects.filter(pk=self.pk).update(
            throttling_failure_count=0,
            throttling_failure_timestamp=None,
            last_used_at=now,
        )
        # Clear the challenge only if it is still this one: a newer code the user
        # asked for meanwhile stays live.
        type(self).objects.filter(pk=self.pk, challenge_id=checked.pk).update(
            challenge_id=None
        )
        self.throttling_failure_count = 0
        self.throttling_failure_timestamp = None
        self.last_used_at = now
        if self.challenge_id == checked.pk:
            self.challenge_id = None
        return True

    def _count_failure(self) -> None:
        """One step of django-otp's back-off, counted in the database (concurrent
        wrong codes each count), up to ``MAX_ATTEMPTS`` steps.

        The back-off is per device, not per session: left unbounded, someone who has
        the password could ask for codes and type wrong ones until the owner waits
        days (2**19 s after the 20 wrong codes a day the failure cap allows). Guessing
        is already bounded by the attempt cap, the failure cap and the send limits, so
        the back-off only slows bursts: it grows as far as one code's tries, then
        stays (16 s with the defaults).
        """
        now = timezone.now()
        type(self).objects.filter(pk=self.pk).update(
            throttling_failure_count=Least(
                F("throttling_failure_count") + 1,
                Value(max(verifynow_settings.MAX_ATTEMPTS, 1)),
            ),
            throttling_failure_timestamp=now,
        )
        self.refresh_from_db(
            fields=["throttling_failure_count", "throttling_failure_timestamp"]
        )


def _same_session(attempt: VerificationAttempt, request: HttpRequest | None) -> bool:
    """Whether ``request`` may enter the code of ``attempt``.

    The services let any session of the attempt's user check it; a second factor is
    stricter: a code sent to one browser session is entered in that session, so
    someone who has the password and a session of their own cannot use it.
    Server-side callers (no request) are trusted, as everywhere in the app.
    """
    if request is None or not attempt.session_binding:
        return True
    binding = services.requester_for(request, bind=False).binding
    return bool(binding) and secrets.compare_digest(attempt.session_binding, binding)
