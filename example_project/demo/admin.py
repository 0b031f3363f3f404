"""Admin of the demo app."""

from __future__ import annotations

from django.contrib import admin

from .models import Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    """Profiles with their verified numbers."""

    list_display = ["user", "phone_number", "phone_verified_at"]
    search_fields = ["user__username", "phone_number"]
