"""The check history shown inside an attempt's page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import VerificationAttempt, VerificationCheck
from .display import response_label

__all__ = ["VerificationCheckInline"]


class VerificationCheckInline(admin.TabularInline):
    """The code checks of one attempt, oldest first, read-only."""

    model = VerificationCheck
    fields = ("created_at", "outcome", "vendor_answer", "ip_address")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    ordering = ("created_at",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whoever may view the attempt may view its checks."""
        opts = VerificationAttempt._meta
        return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or (
            request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Checks are recorded by the service layer only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The history is not editable."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Deleted with their attempt, or by the purge."""
        return False

    @admin.display(description=_("VerifyNow answer"))
    def vendor_answer(self, obj: VerificationCheck) -> str:
        """The response code and its name."""
        return response_label(obj.response_code)
