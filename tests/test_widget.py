"""PhoneVerificationWidget: the rendered HTML (the page side of a masked number with
its expiry, and of the server re-check at submit)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ImproperlyConfigured
from django.forms.renderers import TemplatesSetting
from django.test import RequestFactory, override_settings

from django_verifynow import services
from django_verifynow.forms import VerifiedPhoneFormMixin, VerifiedPhoneNumberField
from django_verifynow.testing import last_code
from django_verifynow.widgets import PhoneVerificationWidget

pytestmark = pytest.mark.urls("tests.browser_urls")

PHONE = "+919876543210"


class ProfileForm(VerifiedPhoneFormMixin, forms.Form):
    name = forms.CharField(min_length=3)
    phone = VerifiedPhoneNumberField(purpose="signup")


class TwoPhonesForm(VerifiedPhoneFormMixin, forms.Form):
    mobile = VerifiedPhoneNumberField(purpose="signup")
    backup = VerifiedPhoneNumberField(purpose="backup", default_country="GB")


def make_request() -> Any:
    request = RequestFactory().post("/")
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


def tag(html: str, marker: str) -> str:
    """The whole start tag carrying ``marker`` (an attribute)."""
    pattern = r"<[a-z]+[^>]*\s" + re.escape(marker.strip()) + r"(?=[\s>=])[^>]*>"
    match = re.search(pattern, html)
    assert match, f"no tag with {marker!r}"
    return match.group(0)


def render(form: forms.Form, name: str = "phone") -> str:
    return str(form[name])


def test_phone_input_attributes() -> None:
    html = render(ProfileForm())
    phone = tag(html, "data-verifynow-phone")
    assert 'type="tel"' in phone
    assert 'autocomplete="tel"' in phone
    assert 'name="phone"' in phone
    assert 'id="id_phone"' in phone
    assert "required" in phone


def test_code_input_attributes_follow_otp_length(settings: Any) -> None:
    settings.VERIFYNOW = {**settings.VERIFYNOW, "OTP_LENGTH": 8}
    html = render(ProfileForm())
    code = tag(html, "data-verifynow-code ")
    assert 'autocomplete="one-time-code"' in code
    assert 'inputmode="numeric"' in code
    assert 'maxlength="8"' in code and 'minlength="8"' in code
    assert 'pattern="[0-9]{8}"' in code
    assert "name=" not in code  # the code never travels with the form
    assert 'data-otp-length="8"' in html


def test_buttons_status_and_noscript() -> None:
    html = render(ProfileForm())
    for marker in (
        "data-verifynow-send",
        "data-verifynow-verify",
        "data-verifynow-resend",
    ):
        assert 'type="button"' in tag(html, marker)  # never submits the form
    status = tag(html, "data-verifynow-status")
    assert 'aria-live="polite"' in status and 'role="status"' in status
    assert "<noscript>" in html and "JavaScript" in html
    assert 'for="id_phone_code"' in html


def test_hidden_attempt_input_is_empty_when_unbound() -> None:
    html = render(ProfileForm())
    hidden = tag(html, "data-verifynow-attempt")
    assert 'type="hidden"' in hidden and 'name="phone_attempt"' in hidden
    assert 'value=""' in hidden
    assert "data-verified-phone" not in html


def test_country_list_comes_from_allowed_countries() -> None:
    html = render(ProfileForm())
    select = tag(html, "data-verifynow-country")
    assert 'name="phone_country"' in select
    options = re.findall(r'<option value="([A-Z]{2})"', html)
    assert options == ["DE", "GB", "IN", "US"]
    assert "IN +91" in html and "GB +44" in html


def test_no_country_list_when_every_country_is_allowed(settings: Any) -> None:
    settings.VERIFYNOW = {**settings.VERIFYNOW, "ALLOWED_COUNTRIES": None}
    assert "data-verifynow-country" not in render(ProfileForm())


def test_api_urls_and_purpose_are_in_data_attributes() -> None:
    html = render(ProfileForm())
    root = tag(html, "data-verifynow ")
    assert 'data-url-send="/api/verify/"' in root
    assert 'data-purpose="signup"' in root
    placeholder = re.search(r'data-url-placeholder="([^"]+)"', root).group(1)
    assert f'data-url-validate="/api/verify/{placeholder}/validate/"' in root
    assert f'data-url-resend="/api/verify/{placeholder}/resend/"' in root


def test_messages_are_passed_as_json_and_overridable() -> None:
    html = render(ProfileForm())
    blob = re.search(
        r'<script id="id_phone_messages" type="application/json">(.*?)</script>', html
    )
    assert blob
    messages = json.loads(blob.group(1))
    assert "{n}" in messages["wrong_code"] and "{phone}" in messages["sent"]
    widget = PhoneVerificationWidget(messages={"send": "Code senden"})
    assert "Code senden" in widget.render("phone", None, {"id": "id_phone"})


def test_media_ships_the_script_and_css() -> None:
    media = str(ProfileForm().media)
    assert "django_verifynow/verifynow.js" in media
    assert "django_verifynow/verifynow.css" in media


def test_two_fields_on_one_page_do_not_share_ids() -> None:
    form = TwoPhonesForm()
    mobile, backup = render(form, "mobile"), render(form, "backup")
    assert 'id="id_mobile_code"' in mobile and 'id="id_backup_code"' in backup
    assert 'id="id_mobile_messages"' in mobile and 'id="id_backup_messages"' in backup
    assert 'name="backup_attempt"' in backup
    assert 'data-purpose="backup"' in backup
    assert re.search(r'<option value="GB" selected>', backup)


@pytest.mark.django_db
def test_verified_state_survives_a_failed_submit() -> None:
    request = make_request()
    attempt = services.send_otp(PHONE, request=request, purpose="signup")
    services.validate_otp(attempt, last_code(PHONE), request=request)
    data = {
        "name": "x",
        "phone": PHONE,
        "phone_country": "IN",
        "phone_attempt": str(attempt.pk),
    }
    form = ProfileForm(data, request=request)
    assert not form.is_valid()
    assert "name" in form.errors and "phone" not in form.errors
    html = render(form)
    assert f'value="{attempt.pk}"' in tag(html, "data-verifynow-attempt")
    assert 'data-verified-phone="+91********10"' in html
    assert "verifynow--verified" in html
    assert PHONE in tag(html, "data-verifynow-phone")  # the value the user typed


@pytest.mark.django_db
def test_unverified_claim_is_not_rendered_back() -> None:
    request = make_request()
    attempt = services.send_otp(
        PHONE, request=request, purpose="signup"
    )  # pending only
    data = {
        "name": "x",
        "phone": PHONE,
        "phone_country": "IN",
        "phone_attempt": str(attempt.pk),
    }
    form = ProfileForm(data, request=request)
    assert not form.is_valid()
    html = render(form)
    assert 'value=""' in tag(html, "data-verifynow-attempt")
    assert "data-verified-phone" not in html
    assert "verifynow--verified" not in html


def test_template_is_overridable(tmp_path: Path) -> None:
    target = tmp_path / "django_verifynow" / "widgets"
    target.mkdir(parents=True)
    (target / "phone_verification.html").write_text(
        '<div class="site-widget">{{ widget.name }} {{ widget.otp_length }}</div>'
    )
    templates = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [str(tmp_path)],
            "APP_DIRS": True,
        }
    ]
    with override_settings(TEMPLATES=templates):
        html = PhoneVerificationWidget().render(
            "phone", None, renderer=TemplatesSetting()
        )
    assert html == '<div class="site-widget">phone 6</div>'


#: A URLconf without the verification API (this module is used as one below).
urlpatterns: list[Any] = []


@pytest.mark.urls("tests.test_widget")
def test_missing_api_urls_are_explained() -> None:
    with pytest.raises(ImproperlyConfigured, match="django_verifynow.urls"):
        render(ProfileForm())


def test_wrong_code_messages_carry_exact_plural_forms():
    import json
    import re

    from django_verifynow.widgets import PhoneVerificationWidget

    html = PhoneVerificationWidget().render("phone", None, attrs={"id": "id_phone"})
    payload = re.search(
        r'<script id="id_phone_messages" type="application/json">(.*?)</script>',
        html,
        re.S,
    )
    counts = json.loads(payload.group(1))["wrong_code_counts"]
    assert counts["1"] == "Wrong code. 1 attempt left."
    assert counts["4"] == "Wrong code. 4 attempts left."
    assert "5" in counts and "6" not in counts  # one per allowed attempt (MAX_ATTEMPTS)
