"""``manage.py ensure_demo_admin``: create or reset the demo superuser admin/admin."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    """Create the superuser ``admin`` with password ``admin``, or reset it
    (idempotent)."""

    help = "Create or reset the demo superuser admin/admin (example site only)."

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username="admin")
        user.is_staff = True
        user.is_superuser = True
        user.is_active = True
        user.set_password("admin")
        user.save()
        verb = "Created" if created else "Reset"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} the demo admin (user: admin, password: admin).")
        )
