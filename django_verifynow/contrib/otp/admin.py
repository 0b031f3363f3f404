"""The devices in the admin: masked numbers, no way to type one in.

Registered on ``admin.site``; with django-otp's ``OTPAdminSite`` (``admin.site.__class__
= OTPAdminSite``, or ``otp_site.register(VerifyNowDevice, VerifyNowDeviceAdmin)``) it
works the same. A device is made only by
:meth:`~django_verifynow.contrib.otp.models.VerifyNowDevice.enrol` from a verified
attempt, so the admin cannot add one or change its number; staff may rename, disable
(untick *confirmed*) or delete a device, and reset its back-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.exceptions import AlreadyRegistered
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django_otp.admin import user_model_search_fields

from ...admin.permissions import can_view_full_numbers
from .models import VerifyNowDevice

__all__ = ["VerifyNowDeviceAdmin"]


class VerifyNowDeviceAdmin(admin.ModelAdmin):
    """Admin of :class:`VerifyNowDevice`; full numbers need
    ``django_verifynow.view_full_phone_number``, as everywhere in the app."""

    list_display = ["name", "user", "masked_number", "confirmed", "last_used_at"]
    list_filter = ["confirmed", "created_at", "last_used_at"]
    list_select_related = ["user"]
    search_fields, search_help_text = user_model_search_fields(["username", "email"])
    fields = [
        "user",
        "name",
        "confirmed",
        "masked_number",
        "number_verified_at",
        "created_at",
        "last_used_at",
        "throttling_failure_count",
    ]
    readonly_fields = [
        "user",
        "masked_number",
        "number_verified_at",
        "created_at",
        "last_used_at",
        "throttling_failure_count",
    ]
    actions = ["reset_throttling"]

    @admin.display(description=_("phone number"))
    def masked_number(self, obj: VerifyNowDevice) -> str:
        """The masked number (``+91********10``)."""
        return obj.masked_number

    @admin.display(description=_("phone number"))
    def full_number(self, obj: VerifyNowDevice) -> str:
        """The full number, for staff allowed to see it."""
        return obj.number

    def _with_number(self, request: HttpRequest, names: Sequence[Any]) -> list[Any]:
        """``names`` with the number column masked unless the viewer may see it."""
        number = "full_number" if can_view_full_numbers(request) else "masked_number"
        return [number if name == "masked_number" else name for name in names]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        """The list columns (the number masked unless the viewer may see it)."""
        return self._with_number(request, self.list_display)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """The form's fields (the number masked unless the viewer may see it)."""
        return self._with_number(request, self.fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """Everything but the name and *confirmed* is read-only."""
        return self._with_number(request, self.readonly_fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Devices come from verified attempts only (``VerifyNowDevice.enrol``)."""
        return False

    @admin.action(
        description=_("Reset the back-off of selected devices"),
        permissions=["change"],
    )
    def reset_throttling(
        self, request: HttpRequest, queryset: QuerySet[VerifyNowDevice]
    ) -> None:
        """Clear django-otp's wrong-code back-off (not the app's limits, which the
        support desk lifts)."""
        count = queryset.update(
            throttling_failure_count=0, throttling_failure_timestamp=None
        )
        self.message_user(
            request,
            ngettext(
                "The back-off of %(count)d device was reset.",
                "The back-off of %(count)d devices was reset.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )


# django-otp's plugins guard their registration the same way: an admin module can be
# imported twice (autodiscover and an explicit import).
try:
    admin.site.register(VerifyNowDevice, VerifyNowDeviceAdmin)
except AlreadyRegistered:  # pragma: no cover
    pass
