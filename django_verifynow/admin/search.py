"""What the changelist's search box matches: exact values on indexed columns only."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q

from .. import phone
from ..conf import verifynow_settings
from ..exceptions import InvalidPhoneNumber

__all__ = ["phone_search_candidates", "user_ids_matching"]


def phone_search_candidates(term: str) -> list[str]:
    """E.164 numbers a search term may mean, in any common format.

    ``"+91 98765-43210"``, ``"0091 9876543210"`` and ``"919876543210"`` all give
    ``+919876543210``; a national number (``"07700 900123"``) is tried in each of the
    ``ALLOWED_COUNTRIES``. Returns an empty list when the term is no phone number.
    """
    text = term.strip()
    digits = "".join(c for c in text if c.isdigit())
    if not 6 <= len(digits) <= 15 or any(c.isalpha() for c in text):
        return []
    candidates: list[str] = []
    attempts: list[tuple[str, str | None]] = [(text, None)]
    if not text.startswith(("+", "00")):
        attempts.append(("+" + digits, None))
        for country in sorted(verifynow_settings.ALLOWED_COUNTRIES or ())[:20]:
            attempts.append((text, country))
    for value, region in attempts:
        try:
            e164 = phone.normalize(value, region)
        except InvalidPhoneNumber:
            continue
        if e164 not in candidates:
            candidates.append(e164)
    return candidates


def user_ids_matching(term: str, *, limit: int = 50) -> list[Any]:
    """Primary keys of the users whose login name (the user model's
    ``USERNAME_FIELD``) is ``term``, or whose e-mail is, case-insensitively.

    Resolved first, in one small query, so the attempts query stays a bitmap OR of
    index lookups: a subquery inside the OR would make PostgreSQL scan the table.
    """
    user_model = get_user_model()
    lookup = Q(**{user_model.USERNAME_FIELD: term})
    if "@" in term and any(f.name == "email" for f in user_model._meta.get_fields()):
        lookup |= Q(email__iexact=term)
    return list(
        user_model._default_manager.filter(lookup).values_list("pk", flat=True)[:limit]
    )
