"""The phone verification widget: phone input, "Send code", code input, "Verify".

Rendered by ``django_verifynow/widgets/phone_verification.html`` (override it the Django
way) and driven by ``django_verifynow/verifynow.js``, a small vanilla script that talks
to the HTTP API (``include("django_verifynow.urls")``). The form only ever receives the
phone number, its country and the attempt id; the server re-checks the attempt on
every submit (:class:`~django_verifynow.forms.VerifiedPhoneNumberField`).
"""

from __future__ import annotations

import uuid
from typing import Any

import phonenumbers
from django import forms
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .conf import verifynow_settings

__all__ = ["PhoneVerificationWidget", "PhoneVerificationValue"]

#: Stands for the attempt id in the URL templates handed to the script.
URL_PLACEHOLDER = uuid.UUID(int=0)

#: Every text the script may show, translatable; ``{n}`` / ``{phone}`` are filled in.
DEFAULT_MESSAGES: dict[str, Any] = {
    "sending": _("Sending a code…"),
    "sent": _("We sent a code to {phone}. Enter it below."),
    # VerifyNow kept the code it had already sent (no new SMS went out).
    "still_valid": _(
        "The code already sent to {phone} is still valid. Enter it below."
    ),
    "verifying": _("Checking the code…"),
    "verified": _("Phone number {phone} verified."),
    "enter_phone": _("Enter your phone number first."),
    "enter_code": _("Enter the {n}-digit code."),
    # Fallback only: the script prefers the exact plural form from "wrong_code_counts".
    "wrong_code": _("Wrong code. Attempts left: {n}."),
    "no_attempts": _("Wrong code and no attempts left. Request a new code."),
    "expired": _("This code has expired. Request a new code."),
    "locked": _("Too many wrong codes. Request a new code."),
    "rate_limited": _("Too many requests. Try again in {n} s."),
    "unavailable": _(
        "The verification service is unavailable right now. Try again in {n} s."
    ),
    "provider_error": _("The verification service could not process the request."),
    "not_found": _("This verification is no longer valid. Send a new code."),
    "network": _("Could not reach the server. Check your connection and try again."),
    "resend_in": _("Resend code in {n} s"),
    "resend": _("Resend code"),
    "send": _("Send code"),
    "changed": _("The number changed: verify the new number."),
}


class PhoneVerificationValue(dict):
    """What the widget submits: ``phone`` (as typed), ``country`` and ``attempt``."""


class PhoneVerificationWidget(forms.Widget):
    """Phone input with SMS/WhatsApp code verification through the HTTP API.

    :param purpose: sent to the API with the phone number; must match the field's.
    :param countries: ISO codes offered in the country list; defaults to
        ``ALLOWED_COUNTRIES`` (sorted), or no list when every country is allowed.
    :param default_country: pre-selected country (and region for national numbers).
    :param api_namespace: URL namespace of ``django_verifynow.urls`` (``"verifynow"``).
    :param messages: overrides of :data:`DEFAULT_MESSAGES` (same keys).
    """

    template_name = "django_verifynow/widgets/phone_verification.html"

    class Media:
        css = {"all": ["django_verifynow/verifynow.css"]}
        js = ["django_verifynow/verifynow.js"]

    def __init__(
        self,
        attrs: dict[str, Any] | None = None,
        *,
        purpose: str = "verify",
        countries: list[str] | None = None,
        default_country: str | None = None,
        api_namespace: str = "verifynow",
        messages: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(attrs)
        self.purpose = purpose
        self.countries = countries
        self.default_country = default_country
        self.api_namespace = api_namespace
        self.messages = {**DEFAULT_MESSAGES, **(messages or {})}
        #: Set by the field after the server re-checked the attempt (never from input).
        self.verified: dict[str, str] | None = None

    # -- data --------------------------------------------------------------------------
    def value_from_datadict(
        self, data: Any, files: Any, name: str
    ) -> PhoneVerificationValue:
        """Collect the phone, its country and the attempt id from the submitted form."""
        return PhoneVerificationValue(
            phone=(data.get(name) or "").strip(),
            country=(data.get(f"{name}_country") or "").strip().upper(),
            attempt=(data.get(f"{name}_attempt") or "").strip(),
        )

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        """True when the form was posted without this field at all."""
        return name not in data

    # -- rendering ---------------------------------------------------------------------
    def country_choices(self) -> list[tuple[str, str]]:
        """``(ISO code, "GB +44")`` pairs for the country list, or ``[]`` for none."""
        codes = self.countries
        if codes is None:
            allowed = verifynow_settings.ALLOWED_COUNTRIES
            codes = sorted(allowed) if allowed else []
        choices = []
        for code in codes:
            calling = phonenumbers.country_code_for_region(code.upper())
            if calling:
                choices.append((code.upper(), f"{code.upper()} +{calling}"))
        return choices

    def api_urls(self) -> dict[str, str]:
        """URLs of the API endpoints; attempt URLs carry :data:`URL_PLACEHOLDER`."""
        ns = self.api_namespace
        try:
            return {
                "send": reverse(f"{ns}:send"),
                "attempt": reverse(f"{ns}:attempt", kwargs={"pk": URL_PLACEHOLDER}),
                "validate": reverse(f"{ns}:validate", kwargs={"pk": URL_PLACEHOLDER}),
                "resend": reverse(f"{ns}:resend", kwargs={"pk": URL_PLACEHOLDER}),
            }
        except NoReverseMatch as exc:
            raise ImproperlyConfigured(
                "PhoneVerificationWidget needs the verification API in your URLconf: "
                'add path("verify/", include("django_verifynow.urls")) to urlpatterns.'
            ) from exc

    def get_context(
        self, name: str, value: Any, attrs: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Add the phone, country, verified state, API URLs and messages to the
        context."""
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        phone, country, attempt = "", "", ""
        if isinstance(value, dict):
            phone, country = value.get("phone", ""), value.get("country", "")
        elif value:
            phone = str(value)
        choices = self.country_choices()
        if not country:
            country = (
                self.default_country or (choices[0][0] if choices else "")
            ).upper()
        verified = self.verified
        if (
            verified
            and isinstance(value, dict)
            and value.get("attempt") == verified["attempt"]
        ):
            # Only an attempt the server just re-checked is rendered back as verified.
            attempt = verified["attempt"]
        else:
            verified = None
        base_id = widget["attrs"].get("id") or f"id_{name}"
        length = verifynow_settings.OTP_LENGTH
        widget.update(
            phone=phone,
            country=country,
            countries=choices,
            attempt=attempt,
            verified=verified,
            purpose=self.purpose,
            base_id=base_id,
            otp_length=length,
            code_pattern=f"[0-9]{{{length}}}",
            urls=self.api_urls(),
            placeholder=str(URL_PLACEHOLDER),
            messages={
                **{key: str(text) for key, text in self.messages.items()},
                # Plural forms differ per language, so each count is rendered here.
                "wrong_code_counts": {
                    n: ngettext(
                        "Wrong code. %(n)d attempt left.",
                        "Wrong code. %(n)d attempts left.",
                        n,
                    )
                    % {"n": n}
                    for n in range(1, verifynow_settings.MAX_ATTEMPTS + 1)
                },
            },
            messages_id=f"{base_id}_messages",
        )
        return context

    def id_for_label(self, id_: str) -> str:
        """The label points at the phone input."""
        return id_
