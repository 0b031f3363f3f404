"""Where :class:`~.adapter.VerifyNowAccountAdapter` keeps each user's phone number.

allauth stores no phone numbers itself: its adapter's ``get_phone``, ``set_phone``,
``set_phone_verified`` and ``get_user_by_phone`` are the site's to write. This model is
the ready-made storage; a site that keeps the number on its user model instead writes
those four methods and uses only the mixin.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ... import phone as phone_utils


class AccountPhone(models.Model):
    """A user's phone number (E.164) and whether it was verified.

    One number per user; a verified number belongs to one user only (a partial unique
    constraint), while unverified claims may overlap until one is verified.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="verifynow_phone",
        verbose_name=_("user"),
    )
    phone = models.CharField(_("phone number"), max_length=16, db_index=True)
    verified = models.BooleanField(_("verified"), default=False)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("account phone number")
        verbose_name_plural = _("account phone numbers")
        constraints = [
            models.UniqueConstraint(
                fields=["phone"],
                condition=Q(verified=True),
                name="verifynow_allauth_one_verified_owner",
            )
        ]

    def __str__(self) -> str:
        # Masked: the string of a row shows up in the admin and in logs.
        return phone_utils.mask(self.phone)
