"""The ModelAdmin of :class:`~django_verifynow.models.PrefixBlock`: the prefixes the
policy blocked after a burst of sends (SMS pumping), and the action that lifts them.

A block lives in the limits cache, where the policy reads it; each row here records one.
Lifting deletes the cache entry and the prefix's counters, and stamps the row. The
prefix is masked unless the staff member may see full numbers.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import phone
from ..models import PrefixBlock
from ..policy import caps
from ..ratelimit import StoreUnavailable
from .permissions import can_view_full_numbers

__all__ = ["PrefixBlockAdmin"]


class PrefixBlockAdmin(admin.ModelAdmin):
    """Blocked prefixes: read-only rows and a "lift" action."""

    list_display = ("shown_prefix", "country", "blocked_at", "until", "in_force")
    list_filter = ("country",)
    date_hierarchy = "blocked_at"
    actions = ["lift"]
    readonly_fields = ("blocked_at", "until", "lifted_at", "lifted_by")
    fields = ("shown_prefix", "country", *readonly_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """Every field is read-only: rows are written by the policy."""
        return (self._prefix_column(request), "country", *self.readonly_fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Blocks are made by the policy, not by hand."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Viewing and lifting only (lifting needs the change permission)."""
        return super().has_change_permission(request, obj) and obj is None

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Rows are the audit trail of blocks; lift a block instead."""
        return False

    @admin.display(description=_("prefix"))
    def shown_prefix(self, obj: PrefixBlock) -> str:
        """The prefix, masked: calling code and two digits."""
        return f"{phone.mask(obj.prefix)}XXXX"

    @admin.display(description=_("prefix"))
    def full_prefix(self, obj: PrefixBlock) -> str:
        """The whole prefix, for staff who may see full numbers."""
        return f"{obj.prefix}XXXX"

    def _prefix_column(self, request: HttpRequest) -> str:
        # Chosen per request: the ModelAdmin instance is shared by every thread.
        return "full_prefix" if can_view_full_numbers(request) else "shown_prefix"

    def get_list_display(self, request: HttpRequest) -> Any:
        """The prefix column the viewer may see, then the rest."""
        return (self._prefix_column(request), *self.list_display[1:])

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """As :meth:`get_list_display`, for the detail page."""
        return (self._prefix_column(request), *self.fields[1:])

    @admin.display(description=_("in force"), boolean=True)
    def in_force(self, obj: PrefixBlock) -> bool:
        """Not lifted and not past its end."""
        return obj.active

    @admin.action(description=_("Lift the selected blocks"), permissions=["change"])
    def lift(self, request: HttpRequest, queryset: QuerySet[PrefixBlock]) -> None:
        """Lift each block in force: its cache entry and counters go, the row is
        stamped with who lifted it and when."""
        lifted = 0
        now = timezone.now()
        for block in queryset.filter(lifted_at__isnull=True, until__gt=now):
            try:
                caps.lift_prefix_block(block.prefix)
            except StoreUnavailable:
                self.message_user(
                    request,
                    _("The limits cache is unavailable: no block was lifted."),
                    messages.ERROR,
                )
                return
            block.lifted_at = now
            block.lifted_by = request.user if request.user.is_authenticated else None
            block.save(update_fields=["lifted_at", "lifted_by"])
            lifted += 1
        self.message_user(
            request,
            ngettext("%(n)d block lifted.", "%(n)d blocks lifted.", lifted)
            % {"n": lifted},
            messages.SUCCESS,
        )
