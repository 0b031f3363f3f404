"""The demo profile: where the example site keeps each user's verified phone number."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Profile(models.Model):
    """One per user: the phone number verified at signup or at the last change."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    phone_number = models.CharField("verified phone number", max_length=20)  # E.164
    phone_verified_at = models.DateTimeField("verified at")

    def __str__(self) -> str:
        return f"Profile of {self.user}"
