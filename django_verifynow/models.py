"""The attempt history: one :class:`VerificationAttempt` per code sent, one
:class:`VerificationCheck` per code checked. No column ever holds a code: VerifyNow
generates and checks it, so there is nothing to store.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .statements import Update

__all__ = ["TEST_VERIFICATION_PREFIX", "VerificationAttempt", "VerificationCheck"]

#: How a verification answered locally for a ``TEST_NUMBERS`` entry is marked in
#: ``provider_verification_id``: VerifyNow's ids are digit strings, so an id with
#: this prefix never came from the vendor. The mark is on the row, so changing the
#: setting later never rewrites what an attempt was.
TEST_VERIFICATION_PREFIX = "TEST"


class AttemptStatus(models.TextChoices):
    """Where an attempt stands; ``docs/api.md`` gives the exact meaning of each."""

    PENDING = "pending", _("Pending")
    VERIFIED = "verified", _("Verified")
    EXPIRED = "expired", _("Expired")
    LOCKED = "locked", _("Locked")
    FAILED = "failed", _("Failed")
    UNKNOWN = "unknown", _("Unknown")


class FlowType(models.TextChoices):
    """Delivery channel asked of VerifyNow."""

    SMS = "SMS", _("SMS")
    WHATSAPP = "WHATSAPP", _("WhatsApp")


def _lapsed(now: object = None) -> Q:
    """A ``pending`` row whose code life is over: it is expired, whatever is stored."""
    return Q(status=AttemptStatus.PENDING, expires_at__lte=now or timezone.now())


class VerificationAttemptQuerySet(models.QuerySet["VerificationAttempt"]):
    """Lookups used by the services, the admin, the dashboard and the purge command.

    **One truth for expiry.** A row stays ``pending`` in the database when its code life
    ends (no cron job rewrites it); every reader asks for the *effective* state instead:
    :meth:`in_state` / :meth:`with_state` here, :attr:`VerificationAttempt.state` on an
    instance. A ``pending`` row past ``expires_at`` is ``expired`` in all of them.
    """

    def pending(self) -> VerificationAttemptQuerySet:
        """Attempts whose code can still be checked (pending and not past expiry)."""
        return self.in_state(AttemptStatus.PENDING)

    def in_state(self, state: str) -> VerificationAttemptQuerySet:
        """Attempts whose effective state is ``state`` (see the class docstring)."""
        lapsed = _lapsed()
        if state == AttemptStatus.PENDING:
            return self.filter(status=AttemptStatus.PENDING).exclude(lapsed)
        if state == AttemptStatus.EXPIRED:
            return self.filter(Q(status=AttemptStatus.EXPIRED) | lapsed)
        return self.filter(status=state)

    def with_state(self) -> VerificationAttemptQuerySet:
        """Annotate ``state``: the effective status, for grouping and ordering in
        SQL."""
        return self.annotate(
            state=Case(
                When(_lapsed(), then=Value(AttemptStatus.EXPIRED.value)),
                default=F("status"),
                output_field=models.CharField(max_length=16),
            )
        )

    def transition(
        self, to: str, *, from_: tuple[str, ...] = ("pending",), **values: Any
    ) -> int:
        """Move the attempts of this QuerySet that are in one of ``from_`` to ``to``.

        The only way the services change a status: one conditional ``UPDATE`` whose
        ``WHERE`` repeats the expected state, so concurrent transitions are safe without
        a row lock (the loser updates nothing). ``values`` are written in the same
        statement. Returns the number of attempts moved. The hot path runs the same
        statement compiled once (:meth:`transition_statement`).
        """
        return self.filter(status__in=from_).update(status=to, **values)

    def transition_statement(
        self, to: str, *, from_: tuple[str, ...] = ("pending",), **values: Any
    ) -> Update:
        """:meth:`transition` as a statement compiled once, for the hot path.

        ``Param`` in this QuerySet's filter or in ``values`` marks what each
        ``run(...)`` supplies (:class:`~django_verifynow.statements.Update`)::

            VERIFY = VerificationAttempt.objects.filter(
                pk=Param("pk")
            ).transition_statement("verified", verified_at=Param("verified_at"))
            moved = VERIFY.run(pk=attempt.pk, verified_at=timezone.now())
        """
        return Update(self.filter(status__in=from_), status=to, **values)

    def test_numbers(self, test: bool = True) -> VerificationAttemptQuerySet:
        """Attempts answered locally for a ``TEST_NUMBERS`` entry (no SMS, no vendor
        call); ``test=False``: every other attempt."""
        marked = Q(provider_verification_id__startswith=TEST_VERIFICATION_PREFIX)
        return self.filter(marked) if test else self.exclude(marked)

    def for_phone(self, e164: str) -> VerificationAttemptQuerySet:
        """Attempts for one E.164 number."""
        return self.filter(phone_number=e164)

    def older_than(self, days: int) -> VerificationAttemptQuerySet:
        """Attempts created more than ``days`` days ago (retention)."""
        return self.filter(created_at__lt=timezone.now() - timedelta(days=days))


class VerificationAttempt(models.Model):
    """One code sent to one phone: one VerifyNow ``verificationId``.

    The UUID :attr:`id` is the only identifier clients ever see; the vendor's numeric,
    enumerable ``verificationId`` stays server-side.
    """

    Status = AttemptStatus
    FlowType = FlowType

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    phone_number = models.CharField(_("phone number"), max_length=20)  # E.164
    country = models.CharField(_("country"), max_length=2, blank=True)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=AttemptStatus.choices,
        default=AttemptStatus.UNKNOWN,
    )
    purpose = models.CharField(_("purpose"), max_length=64, default="verify")
    flow_type = models.CharField(
        _("channel"), max_length=16, choices=FlowType.choices, default=FlowType.SMS
    )
    #: The channel VerifyNow refused as not deliverable before :attr:`flow_type`
    #: delivered (a fallback, see ``CHANNELS``), or ``""`` when the first channel
    #: tried was the one used. On a failed attempt, the channel refused first.
    # No db_default: Django then reads the column back on every INSERT (RETURNING),
    # and on SQLite a concurrent writer meets "database table is locked". Bulk loads
    # in SQL name the column.
    refused_flow_type = models.CharField(
        _("refused channel"),
        max_length=16,
        choices=FlowType.choices,
        blank=True,
        default="",
    )
    otp_length = models.PositiveSmallIntegerField(_("code length"), default=6)
    provider_verification_id = models.CharField(
        _("VerifyNow verification id"), max_length=64, blank=True
    )
    provider_transaction_id = models.CharField(
        _("VerifyNow transaction id"), max_length=64, blank=True
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    #: SHA-256 of a random token kept in the browser's session: binds the attempt to
    #: the session that started it and survives the key rotation of a login.
    session_binding = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    verified_at = models.DateTimeField(_("verified"), null=True, blank=True)
    consumed_at = models.DateTimeField(_("consumed"), null=True, blank=True)
    check_count = models.PositiveSmallIntegerField(_("checks used"), default=0)
    max_attempts = models.PositiveSmallIntegerField(_("checks allowed"), default=5)
    last_response_code = models.IntegerField(
        _("last VerifyNow response code"), null=True, blank=True
    )
    #: False when VerifyNow kept the code it had already sent to this number (506): the
    #: attempt reuses that verification and no new SMS went out. Only attempts with
    #: ``code_sent`` count as sends on the dashboard.
    code_sent = models.BooleanField(_("code sent"), default=True)

    objects = VerificationAttemptQuerySet.as_manager()

    #: Not a field: set by ``services.validate_otp`` on the instance it returns to say
    #: what that call found (a :class:`~django_verifynow.services.CheckResult`). Never
    #: saved.
    check_result: Any = None
    #: Not a field: the :class:`CheckOutcome` of the vendor check this call made, or
    #: ``None`` when none was made. Prefer :attr:`check_result`.
    check_outcome: str | None = None
    #: Not a field: seconds until a new code may go to the phone, set by the send
    #: that just settled this attempt (its admission knows), so the API's
    #: ``resend_available_at`` needs no second read of the cooldown. Never saved.
    resend_wait: int | None = None

    class Meta:
        verbose_name = _("verification attempt")
        verbose_name_plural = _("verification attempts")
        ordering = ["-created_at"]
        permissions = [
            ("view_full_phone_number", _("Can view full phone numbers")),
            # The support desk's lift of a number's cooldown, limits and prefix block.
            ("unblock_phone_number", _("Can lift phone blocks and cooldowns")),
        ]
        indexes = [
            # The admin's default ordering and date hierarchy, and the purge horizon.
            models.Index(fields=["-created_at"], name="verifynow_att_created"),
            # Per-phone history: admin search, 506 reuse, expiring the previous attempt.
            models.Index(
                fields=["phone_number", "-created_at"], name="verifynow_att_phone"
            ),
            # Admin filters combined with the default ordering.
            models.Index(fields=["status", "-created_at"], name="verifynow_att_status"),
            models.Index(
                fields=["country", "-created_at"], name="verifynow_att_country"
            ),
            models.Index(fields=["provider_verification_id"], name="verifynow_att_vid"),
        ]
        constraints = [
            # One live attempt per phone and requester: concurrent sends from one
            # session (two tabs, a retrying client) can never leave two codes to try.
            models.UniqueConstraint(
                fields=["phone_number", "session_binding"],
                condition=Q(status="pending") & ~Q(session_binding=""),
                name="verifynow_att_one_live_per_session",
            ),
            models.UniqueConstraint(
                fields=["phone_number", "user"],
                condition=Q(status="pending", user__isnull=False),
                name="verifynow_att_one_live_per_user",
            ),
        ]

    def __str__(self) -> str:
        from .phone import mask

        # The effective state: a lapsed pending attempt reads "Expired" here too.
        return f"{mask(self.phone_number)} ({AttemptStatus(self.state).label})"

    @property
    def state(self) -> str:
        """The effective status: ``expired`` for a ``pending`` row past its expiry.

        Use this (not :attr:`status`) wherever the answer is shown or decided on; the
        QuerySet's :meth:`~VerificationAttemptQuerySet.with_state` is its SQL twin.
        """
        if self.status == AttemptStatus.PENDING and self.is_expired:
            return AttemptStatus.EXPIRED
        return self.status

    @state.setter
    def state(self, value: str) -> None:
        # QuerySet.with_state() annotates "state" and Django sets annotations on the
        # instance: the value is the same rule evaluated in SQL, so nothing is kept.
        pass

    @property
    def attempts_left(self) -> int:
        """Code checks still allowed on this attempt (0 once it is not pending)."""
        if self.state != AttemptStatus.PENDING:
            return 0
        return max(self.max_attempts - self.check_count, 0)

    @property
    def is_expired(self) -> bool:
        """True once the local expiry has passed (whatever the stored status)."""
        return self.expires_at is not None and timezone.now() >= self.expires_at

    @property
    def is_test_number(self) -> bool:
        """True when the code was a ``TEST_NUMBERS`` fixed code, answered locally:
        no SMS went out and VerifyNow never heard of this attempt."""
        return self.provider_verification_id.startswith(TEST_VERIFICATION_PREFIX)

    @property
    def masked_phone_number(self) -> str:
        """The number with all but the calling code and last digits hidden."""
        from .phone import mask

        return mask(self.phone_number)


class CheckOutcome(models.TextChoices):
    """The result of one code check at VerifyNow."""

    VERIFIED = "verified", _("Verified")
    WRONG_CODE = "wrong_code", _("Wrong code")
    EXPIRED = "expired", _("Expired")
    LOCKED = "locked", _("Locked by VerifyNow")
    ERROR = "error", _("VerifyNow error")
    UNAVAILABLE = "unavailable", _("VerifyNow unreachable")
    UNKNOWN = "unknown", _("No answer (timed out)")


class VerificationCheck(models.Model):
    """One code check sent to VerifyNow. Never the code itself."""

    Outcome = CheckOutcome

    attempt = models.ForeignKey(
        VerificationAttempt,
        verbose_name=_("attempt"),
        on_delete=models.CASCADE,
        related_name="checks",
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=CheckOutcome.choices
    )
    response_code = models.IntegerField(
        _("VerifyNow response code"), null=True, blank=True
    )
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)

    class Meta:
        verbose_name = _("verification check")
        verbose_name_plural = _("verification checks")
        ordering = ["created_at"]
        indexes = [models.Index(fields=["created_at"], name="verifynow_chk_created")]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} ({self.created_at:%Y-%m-%d %H:%M:%S})"


class DailyAttemptStat(models.Model):
    """Per-day counters that outlive the purge of attempts: no phone data at all.

    ``verifynow_purge`` adds each batch of attempts to these rows before deleting them,
    so conversion by day, country and channel stays known after retention.
    """

    day = models.DateField(_("day"))
    country = models.CharField(_("country"), max_length=2, blank=True)
    flow_type = models.CharField(_("channel"), max_length=16, choices=FlowType.choices)
    status = models.CharField(_("status"), max_length=16, choices=AttemptStatus.choices)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    checks = models.PositiveIntegerField(_("checks"), default=0)

    class Meta:
        verbose_name = _("daily attempt statistic")
        verbose_name_plural = _("daily attempt statistics")
        ordering = ["-day", "country"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "country", "flow_type", "status"],
                name="verifynow_stat_unique",
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.day} {self.country or '--'} {self.flow_type} {self.status}: "
            f"{self.attempts}"
        )


class PrefixBlock(models.Model):
    """A number prefix blocked after a burst of sends to it (SMS pumping).

    The block itself lives in the limits cache, where the policy reads it; this row
    records it for operators, who see it in the admin and may lift it there (which
    also clears the prefix's counters). The prefix is a number without its last four
    digits; the admin masks it unless the viewer may see full numbers.
    """

    prefix = models.CharField(_("prefix"), max_length=16)
    country = models.CharField(_("country"), max_length=2, blank=True)
    blocked_at = models.DateTimeField(_("blocked"), default=timezone.now)
    until = models.DateTimeField(_("blocked until"))
    lifted_at = models.DateTimeField(_("lifted"), null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("lifted by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        verbose_name = _("blocked prefix")
        verbose_name_plural = _("blocked prefixes")
        ordering = ["-blocked_at"]
        indexes = [models.Index(fields=["-blocked_at"], name="verifynow_block_at")]

    def __str__(self) -> str:
        from .phone import mask

        return f"{mask(self.prefix)}XXXX"

    @property
    def active(self) -> bool:
        """Still in force: not lifted and not past its end."""
        return self.lifted_at is None and timezone.now() < self.until
