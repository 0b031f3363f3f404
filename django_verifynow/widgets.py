"""The phone verification widget: phone input, "Send code", code input, "Verify".

Rendered by ``django_verifynow/widgets/phone_verification.html`` (override it the Django
way) and driven by ``django_verifynow/verifynow.js``, a small vanilla script that talks
to the HTTP API (``include("django_verifynow.urls")``). The form only ever receives the
phone number, its country and the attempt id; the server re-checks the attempt on
every submit (:class:`~django_verifynow.forms.VerifiedPhoneNumberField`).
"""

from __future__ import annotations

import re
import uuid
import weakref
from collections.abc import Callable
from typing import Any

import phonenumbers
from django import forms
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import channels
from . import phone as phone_utils
from .conf import verifynow_settings
from .countries import active_language, country_label, country_names, sort_key
from .exceptions import InvalidPhoneNumber

__all__ = [
    "DEFAULT_MESSAGES",
    "DEFAULT_TIMEOUT",
    "PhoneVerificationValue",
    "PhoneVerificationWidget",
    "country_names",
    "request_region",
    "wait_units",
]

#: Stands for the attempt id in the URL templates handed to the script.
URL_PLACEHOLDER = uuid.UUID(int=0)

#: Seconds the script waits for an answer of the API before it gives up (the buttons
#: must not stay disabled for as long as the browser would wait).
DEFAULT_TIMEOUT = 20.0

#: Every text the script may show, translatable; ``{n}``, ``{phone}`` and ``{wait}``
#: (a phrase of :func:`wait_units`) are filled in.
DEFAULT_MESSAGES: dict[str, Any] = {
    "sending": _("Sending a code…"),
    # {channel}: "SMS" or "WhatsApp" (the channel the code went out on).
    "sent": _("We sent a code by {channel} to {phone}. Enter it below."),
    # VerifyNow refused {refused} (no WhatsApp for this number or account), and the
    # same send went out on the next channel of CHANNELS.
    "sent_fallback": _(
        "{refused} is not available for {phone}, so we sent a code by {channel} "
        "instead. Enter it below."
    ),
    # VerifyNow kept the code it had already sent (no new message went out).
    "still_valid": _(
        "The code already sent by {channel} to {phone} is still valid. Enter it below."
    ),
    # Offered once the resend cooldown is over, for each other channel allowed.
    "switch": _("Send by {channel} instead"),
    "verifying": _("Checking the code…"),
    "verified": _("Phone number {phone} verified."),
    "enter_phone": _("Enter your phone number first."),
    "enter_code": _("Enter the {n}-digit code."),
    # Fallback only: the script prefers the exact plural form from "wrong_code_counts".
    "wrong_code": _("Wrong code. Attempts left: {n}."),
    "no_attempts": _("Wrong code and no attempts left. Request a new code."),
    "expired": _("This code has expired. Request a new code."),
    "locked": _("Too many wrong codes. Request a new code."),
    # {wait} is a phrase of wait_units(): "in 30 seconds", "in 51 minutes".
    "rate_limited_wait": _("Too many requests. Try again {wait}."),
    "unavailable_wait": _(
        "The verification service is unavailable right now. Try again {wait}."
    ),
    "provider_error": _("The verification service could not process the request."),
    "not_found": _("This verification is no longer valid. Send a new code."),
    "network": _("Could not reach the server. Check your connection and try again."),
    "resend_wait": _("Resend code {wait}"),
    "resend": _("Resend code"),
    "send": _("Send code"),
    "send_wait": _("Send code {wait}"),
    # The send button once a code went out: a second send would only be refused.
    "code_sent": _("Code sent"),
    "on_its_way": _(
        "A code is on its way to {phone}. You can request a new one {wait}."
    ),
    "on_its_way_resend": _(
        "A code is on its way to {phone}. If it does not arrive, use “Resend code”."
    ),
    # After "Change number": the number just verified waits for its cooldown.
    "just_sent": _(
        "A code was just sent to {phone}. A new one can be requested {wait}."
    ),
    "can_send": _("You can request a code now."),
    "changed": _("The number changed: verify the new number."),
    # Older texts with a raw count of seconds ({n} s), superseded by the *_wait keys
    # above; kept so that existing overrides and translations stay valid.
    "rate_limited": _("Too many requests. Try again in {n} s."),
    "unavailable": _(
        "The verification service is unavailable right now. Try again in {n} s."
    ),
    "resend_in": _("Resend code in {n} s"),
}

#: How many counts each wait unit's plural table covers. The script says seconds
#: below a minute, minutes below two hours (up to 120) and hours beyond; for counts
#: past the table it uses 100 + n % 100, which takes the same plural form in every
#: gettext plural rule (they look at n % 10, n % 100 and small n only).
WAIT_UNIT_COUNTS = {"seconds": 60, "minutes": 121, "hours": 200}

_PLACEHOLDER = re.compile(r"%\(n\)[ds]")


def _plural_table(
    render: Callable[[int], str], size: int
) -> dict[str, tuple[Any, ...]]:
    """The distinct forms of a counted text and, for n = 0 … size - 1, the index of
    the form n takes, by the active language's plural rule (French says "0 seconde",
    Hindi "0 सेकंड" in its plural). ``%(n)d`` becomes ``{n}`` for the script."""
    forms_: list[str] = []
    index: list[int] = []
    for n in range(size):
        text = _PLACEHOLDER.sub("{n}", render(n))
        if text not in forms_:
            forms_.append(text)
        index.append(forms_.index(text))
    return {"forms": tuple(forms_), "index": tuple(index)}


def _compute_wait_units() -> dict[str, dict[str, tuple[Any, ...]]]:
    size = WAIT_UNIT_COUNTS
    return {
        "seconds": _plural_table(
            lambda n: ngettext("in %(n)d second", "in %(n)d seconds", n),
            size["seconds"],
        ),
        "minutes": _plural_table(
            lambda n: ngettext("in %(n)d minute", "in %(n)d minutes", n),
            size["minutes"],
        ),
        "hours": _plural_table(
            lambda n: ngettext("in %(n)d hour", "in %(n)d hours", n), size["hours"]
        ),
    }


#: wait_units() per translation catalog: its ~400 ngettext calls take tens of ms.
#: Keyed weakly by Django's catalog object, which Django replaces whenever it reloads
#: translations (LOCALE_PATHS changed in a test, a .mo file changed under runserver),
#: so a cached table never outlives its catalog.
_WAIT_UNITS_CACHE: weakref.WeakKeyDictionary[Any, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def _active_catalog() -> Any:
    """Django's catalog object for the active language, or ``None`` without i18n."""
    if not settings.USE_I18N:
        return None
    from django.utils.translation import trans_real

    return trans_real.translation(translation.get_language() or settings.LANGUAGE_CODE)


def wait_units() -> dict[str, dict[str, tuple[Any, ...]]]:
    """The phrases of a wait ("in 1 second", "in 51 minutes", "in 3 hours") with the
    exact plural form of every count, in the active language.

    Django's JavaScript catalog is not on the widget's page, so the plural rule is
    applied here, with ``ngettext``, and the script only looks the count up. The
    tables are immutable and cached per catalog.
    """
    catalog = _active_catalog()
    if catalog is None:
        return _compute_wait_units()
    cached = _WAIT_UNITS_CACHE.get(catalog)
    if cached is None:
        cached = _WAIT_UNITS_CACHE[catalog] = _compute_wait_units()
    return dict(cached)


def request_region(request: Any) -> str | None:
    """The region a site says ``request`` comes from: ``request.verifynow_region``
    (an ISO 3166 alpha-2 code a middleware sets, from a GeoIP lookup or a CDN header
    such as Cloudflare's ``CF-IPCountry``), upper case, or ``None``."""
    region = getattr(request, "verifynow_region", None)
    if not isinstance(region, str) or len(region.strip()) != 2:
        return None
    return region.strip().upper()


def _declared_allowed_countries() -> list[str]:
    """``ALLOWED_COUNTRIES`` in the order the site wrote it (upper case), or ``[]``
    when it is unset or has no order (a set)."""
    raw = (getattr(settings, "VERIFYNOW", None) or {}).get("ALLOWED_COUNTRIES")
    if not isinstance(raw, (list, tuple)):
        return []
    return [str(code).upper() for code in raw]


def typed_phone(raw: Any) -> str:
    """The phone of submitted data as text: a string stripped, a ``PhoneNumber``
    (data built in code) as :func:`_e164_or_text`."""
    if isinstance(raw, phonenumbers.PhoneNumber):
        return _e164_or_text(raw)
    if isinstance(raw, str):
        return raw.strip()
    return str(raw or "")


def _e164_or_text(number: phonenumbers.PhoneNumber) -> str:
    """A ``PhoneNumber`` as E.164 when valid, else as typed (its raw input)."""
    if phonenumbers.is_valid_number(number):
        return phone_utils.e164(number)
    return str(getattr(number, "raw_input", "") or "")


class PhoneVerificationValue(dict):
    """What the widget submits: ``phone`` (as typed), ``country`` and ``attempt``."""


class PhoneVerificationWidget(forms.Widget):
    """Phone input with SMS/WhatsApp code verification through the HTTP API.

    :param purpose: sent to the API with the phone number; must match the field's.
    :param countries: ISO codes offered in the country list (named in the active
        language and sorted by name); defaults to ``ALLOWED_COUNTRIES``, or no list
        when every country is allowed.
    :param default_country: pre-selected country (and region for national numbers);
        else the request's ``verifynow_region``, else ``PHONENUMBER_DEFAULT_REGION``,
        else the first country declared (see :meth:`initial_country`).
    :param api_namespace: URL namespace of ``django_verifynow.urls`` (``"verifynow"``).
    :param messages: overrides of :data:`DEFAULT_MESSAGES` (same keys).
    :param timeout: seconds the script waits for an API answer before it gives up
        (rendered as ``data-timeout`` on the widget's root).
    :param channel_choice: when the site allows several channels (``CHANNELS``), let
        the user pick the first one to try (a radio group, the site's first channel
        selected); False (the default) sends on the site's order automatically.
        Either way, once the resend cooldown is over, the user is offered the other
        channels ("Send by SMS instead").
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
        timeout: float = DEFAULT_TIMEOUT,
        channel_choice: bool = False,
    ) -> None:
        super().__init__(attrs)
        self.channel_choice = channel_choice
        self.purpose = purpose
        self.countries = countries
        self.default_country = default_country
        self.api_namespace = api_namespace
        self.messages = {**DEFAULT_MESSAGES, **(messages or {})}
        self.timeout = timeout
        #: The region the site says the request comes from (``verifynow_region``),
        #: handed over with the form's request (``forms.bind_request``).
        self.request_region: str | None = None
        #: Set by the field after the server re-checked the attempt (never from input).
        self.verified: dict[str, str] | None = None

    # -- data --------------------------------------------------------------------------
    def value_from_datadict(
        self, data: Any, files: Any, name: str
    ) -> PhoneVerificationValue:
        """Collect the phone, its country and the attempt id from the submitted form.

        A ``PhoneNumber`` in ``data`` (a form built in code) is taken as its E.164
        text, which needs no country to be read again.
        """
        return PhoneVerificationValue(
            phone=typed_phone(data.get(name)),
            country=(data.get(f"{name}_country") or "").strip().upper(),
            attempt=(data.get(f"{name}_attempt") or "").strip(),
            channel=(data.get(f"{name}_channel") or "").strip().upper(),
        )

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        """True when the form was posted without this field at all."""
        return name not in data

    # -- rendering ---------------------------------------------------------------------
    def country_codes(self) -> list[str]:
        """ISO codes of the country list (upper case), or ``[]`` for no list, in the
        order they were declared (``countries``, else ``ALLOWED_COUNTRIES`` as the
        site listed them)."""
        codes = self.countries
        if codes is None:
            allowed = verifynow_settings.ALLOWED_COUNTRIES
            if not allowed:
                return []
            # The validated setting is a frozenset; its declared order, when it has
            # one, says which country the site lists first.
            codes = [c for c in _declared_allowed_countries() if c in allowed]
            codes += sorted(allowed - set(codes))
        unique: list[str] = []
        for code in (c.upper() for c in codes):
            if code not in unique and phonenumbers.country_code_for_region(code):
                unique.append(code)
        return unique

    def country_choices(self) -> list[tuple[str, str]]:
        """``(ISO code, "India (+91)")`` pairs for the country list, named in the
        active language and sorted by name, or ``[]`` for no list."""
        language = active_language()
        choices = [
            (code, country_label(code, language)) for code in self.country_codes()
        ]
        return sorted(choices, key=lambda choice: (sort_key(choice[1]), choice[0]))

    def initial_country(self) -> str:
        """The pre-selected country, the first of these that is in the list:

        1. ``default_country`` (the field's explicit region);
        2. the request's region, ``request.verifynow_region`` (set by the site, e.g.
           a middleware reading a GeoIP or CDN country header; the form's request
           hands it over, see :attr:`request_region`);
        3. ``PHONENUMBER_DEFAULT_REGION``;
        4. the first country of the list as declared (``countries``, else
           ``ALLOWED_COUNTRIES`` as the site listed them; a set has no order: then
           the first by name in the site's ``LANGUAGE_CODE``).

        A visitor's language never changes it: a national number is read in the
        same country whatever the language of the page.
        """
        codes = self.country_codes()
        if not codes:
            return ""
        for candidate in (
            self.default_country,
            self.request_region,
            phone_utils.default_region(),
        ):
            if candidate and str(candidate).upper() in codes:
                return str(candidate).upper()
        if self.countries is None and not _declared_allowed_countries():
            names = country_names(settings.LANGUAGE_CODE)
            return min(
                codes, key=lambda code: (sort_key(names.get(code) or code), code)
            )
        return codes[0]

    def initial_phone(self, value: Any, codes: list[str]) -> tuple[str, str]:
        """How an initial value (a ``PhoneNumber`` or an E.164 string, say from the
        user's profile) is shown: ``(text, country)``. In its country's national
        format with that country selected when the list has it ("07400 123456",
        GB), else in international format with no country implied."""
        text = (
            _e164_or_text(value)
            if isinstance(value, phonenumbers.PhoneNumber)
            else str(value)
        )
        try:
            number = phone_utils.parse(value)
        except InvalidPhoneNumber:
            return text, ""
        region = phonenumbers.region_code_for_number(number) or ""
        if region in codes:
            return number.as_national, region
        return number.as_international, ""

    def channel_choices(self) -> list[tuple[str, str]]:
        """``(channel, "WhatsApp")`` pairs of the channels the site allows, in its
        order: the radio group when :attr:`channel_choice` is on and there are
        several, else ``[]`` (the site's order applies)."""
        allowed = channels.allowed()
        if not self.channel_choice or len(allowed) < 2:
            return []
        return [(channel, channels.label(channel)) for channel in allowed]

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
        phone, country, attempt, channel = "", "", "", ""
        choices = self.country_choices()
        if isinstance(value, dict):
            phone, country = value.get("phone", ""), value.get("country", "")
            channel = value.get("channel", "")
        elif value:
            phone, country = self.initial_phone(value, [code for code, _ in choices])
        if not country:
            country = self.initial_country()
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
        channel_choices = self.channel_choices()
        offered = [code for code, _ in channel_choices]
        widget.update(
            channel_choices=channel_choices,
            # A choice posted back (a form error) stays chosen; else the first.
            channel=channel if channel in offered else (offered[0] if offered else ""),
            # Every channel allowed, for "Send by SMS instead" after the cooldown.
            channels=" ".join(channels.allowed()),
            phone=phone,
            country=country,
            countries=choices,
            # Without a list, national numbers are read in the field's default
            # country, as clean() reads them: the script sends it as the region.
            region=(self.default_country or "").upper() if not choices else "",
            timeout=f"{self.timeout:g}",
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
                "wait_units": wait_units(),
                "channel_names": {
                    code: channels.label(code) for code in channels.allowed()
                },
            },
            messages_id=f"{base_id}_messages",
        )
        return context

    def id_for_label(self, id_: str) -> str:
        """The label points at the phone input."""
        return id_
