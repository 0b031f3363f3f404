"""Who may see full phone numbers in the admin and the CSV export."""

from __future__ import annotations

from django.http import HttpRequest

__all__ = ["FULL_NUMBER_PERMISSION", "can_view_full_numbers"]

#: Staff holding this permission see full numbers in the admin and the CSV export.
FULL_NUMBER_PERMISSION = "django_verifynow.view_full_phone_number"


def can_view_full_numbers(request: HttpRequest) -> bool:
    """Whether the requesting staff member may see unmasked phone numbers."""
    return request.user.has_perm(FULL_NUMBER_PERMISSION)
