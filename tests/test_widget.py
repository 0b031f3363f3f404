"""PhoneVerificationWidget: the rendered HTML (the page side of a masked number with
its expiry, and of the server re-check at submit)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django import forms
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ImproperlyConfigured
from django.forms.renderers import TemplatesSetting
from django.test import RequestFactory, override_settings
from django.utils import translation

from django_verifynow import services
from django_verifynow.forms import VerifiedPhoneFormMixin, VerifiedPhoneNumberField
from django_verifynow.testing import last_code
from django_verifynow.widgets import PhoneVerificationWidget

pytestmark = pytest.mark.urls("tests.browser_urls")

PHONE = "+919876543210"

# The French name of the United States: CLDR's (with its accent) when babel is
# installed, as django-phonenumber-field then uses it, else the name phonenumbers ships.
US_IN_FRENCH = (
    "États-Unis (+1)" if importlib.util.find_spec("babel") else "Etats-Unis (+1)"
)


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


def options(html: str) -> list[tuple[str, str]]:
    """``(value, text)`` of every option of the country list."""
    return re.findall(r'<option value="([A-Z]{2})"[^>]*>([^<]*)</option>', html)


def selected(html: str) -> str:
    match = re.search(r'<option value="([A-Z]{2})" selected>', html)
    assert match, "no country selected"
    return match.group(1)


def test_country_list_comes_from_allowed_countries() -> None:
    html = render(ProfileForm())
    select = tag(html, "data-verifynow-country")
    assert 'name="phone_country"' in select
    # Named, sorted by name, restricted to ALLOWED_COUNTRIES (["IN", "GB", "US", "DE"]).
    assert options(html) == [
        ("DE", "Germany (+49)"),
        ("IN", "India (+91)"),
        ("GB", "United Kingdom (+44)"),
        ("US", "United States (+1)"),
    ]
    # Without a region anywhere, the first country the site listed.
    assert selected(html) == "IN"


def test_country_names_follow_the_active_language() -> None:
    with translation.override("fr"):
        html = render(ProfileForm())
    assert options(html) == [
        ("DE", "Allemagne (+49)"),
        ("US", US_IN_FRENCH),
        ("IN", "Inde (+91)"),
        ("GB", "Royaume-Uni (+44)"),
    ]
    assert selected(html) == "IN"
    with translation.override("hi"):
        assert ("IN", "भारत (+91)") in options(render(ProfileForm()))


def test_names_sort_as_people_read_them() -> None:
    """French names with accents sort by their letters ("Îles Cook" before
    "Inde"), not after "Z" as code points would put them."""
    widget = PhoneVerificationWidget(countries=["IE", "CK", "IN", "HU"])
    with translation.override("fr"):
        names = [text for _, text in options(widget.render("p", None))]
    assert names == [
        "Hongrie (+36)",
        "Îles Cook (+682)",
        "Inde (+91)",
        "Irlande (+353)",
    ]


def test_the_visitors_language_does_not_change_the_default(settings: Any) -> None:
    """The default is the first country the site listed: a national number is read
    in the same country whatever the visitor's language."""
    settings.VERIFYNOW = {**settings.VERIFYNOW, "ALLOWED_COUNTRIES": ["GB", "IN", "US"]}
    assert selected(render(ProfileForm())) == "GB"
    with translation.override("fr"):
        html = render(ProfileForm())
    assert options(html)[0] == ("US", US_IN_FRENCH)  # first by the French name
    assert selected(html) == "GB"


def test_a_set_of_countries_defaults_to_the_first_by_name(settings: Any) -> None:
    """A set has no order: the first by name in the site's LANGUAGE_CODE, never the
    first ISO code ("AE") nor an order that changes between processes."""
    settings.VERIFYNOW = {**settings.VERIFYNOW, "ALLOWED_COUNTRIES": {"AE", "IN", "GB"}}
    assert selected(render(ProfileForm())) == "IN"  # India < United Arab Emirates
    with translation.override("fr"):
        assert selected(render(ProfileForm())) == "IN"


def test_phonenumber_default_region_is_preselected(settings: Any) -> None:
    settings.PHONENUMBER_DEFAULT_REGION = "GB"
    assert selected(render(ProfileForm())) == "GB"
    with translation.override("fr"):
        assert selected(render(ProfileForm())) == "GB"
    # Any case, as phonenumber_field's users may write it.
    settings.PHONENUMBER_DEFAULT_REGION = "us"
    assert selected(render(ProfileForm())) == "US"
    # A field's own default_country comes first.
    assert re.search(
        r'<option value="IN" selected>',
        str(PhoneVerificationWidget(default_country="in").render("p", None)),
    )
    # A region outside the list cannot be selected: the first listed is.
    settings.PHONENUMBER_DEFAULT_REGION = "FR"
    assert selected(render(ProfileForm())) == "IN"


def test_the_requests_region_comes_before_the_site_default(settings: Any) -> None:
    """request.verifynow_region (a site's middleware sets it) is pre-selected through
    the form's request; the field's default_country still comes first."""
    settings.PHONENUMBER_DEFAULT_REGION = "GB"
    request = make_request()
    request.verifynow_region = "us"
    assert selected(render(ProfileForm(request=request))) == "US"
    form = TwoPhonesForm(request=request)
    assert selected(render(form, "mobile")) == "US"
    assert selected(render(form, "backup")) == "GB"  # default_country="GB"
    # Outside the list, or no code: the site default.
    request.verifynow_region = "FR"
    assert selected(render(ProfileForm(request=request))) == "GB"
    request.verifynow_region = "India"
    assert selected(render(ProfileForm(request=request))) == "GB"
    # One form's request never leaks into another form.
    assert selected(render(ProfileForm())) == "GB"


def test_an_initial_phone_number_is_shown_in_its_country() -> None:
    """A PhoneNumber (or E.164 text) as initial value, from a profile say: national
    format with its country selected when the list has it, else international."""
    from phonenumber_field.phonenumber import PhoneNumber

    form = ProfileForm(initial={"phone": PhoneNumber.from_string("+447400123456")})
    html = render(form)
    assert 'value="07400 123456"' in tag(html, "data-verifynow-phone")
    assert selected(html) == "GB"
    html = render(ProfileForm(initial={"phone": "+919876543210"}))
    assert 'value="098765 43210"' in tag(html, "data-verifynow-phone")
    assert selected(html) == "IN"
    html = render(ProfileForm(initial={"phone": "+33612345678"}))  # FR: not listed
    assert 'value="+33 6 12 34 56 78"' in tag(html, "data-verifynow-phone")
    assert selected(html) == "IN"


def test_country_names_come_from_babel_when_it_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With babel, django-phonenumber-field's localized_choices names the countries
    (a stand-in for babel here: the suite does not install it)."""
    import phonenumber_field.formfields as pnf_forms

    from django_verifynow import widgets

    class Locale:
        def __init__(self, name: str) -> None:
            self.territories = {"DE": f"Deutschland ({name})", "IN": "Indien"}

    monkeypatch.setattr(pnf_forms, "babel", type("babel", (), {"Locale": Locale}))
    widgets.country_names.cache_clear()
    try:
        html = render(ProfileForm())
    finally:
        monkeypatch.undo()
        widgets.country_names.cache_clear()
    assert ("DE", "Deutschland (en_US) (+49)") in options(html)
    assert ("IN", "Indien (+91)") in options(html)
    assert ("GB", "GB (+44)") in options(html)  # no name: the code


def test_without_a_list_the_default_country_is_the_region(settings: Any) -> None:
    settings.VERIFYNOW = {**settings.VERIFYNOW, "ALLOWED_COUNTRIES": None}
    widget = PhoneVerificationWidget(default_country="gb")
    html = widget.render("phone", None, {"id": "id_phone"})
    assert 'data-region="GB"' in tag(html, "data-verifynow ")
    assert "data-region" not in render(ProfileForm())


def test_the_request_timeout_is_on_the_root() -> None:
    assert 'data-timeout="20"' in tag(render(ProfileForm()), "data-verifynow ")
    widget = PhoneVerificationWidget(timeout=7.5)
    assert 'data-timeout="7.5"' in widget.render("phone", None, {"id": "id_phone"})


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


def messages_of(html: str) -> dict[str, Any]:
    payload = re.search(
        r'<script id="id_phone_messages" type="application/json">(.*?)</script>',
        html,
        re.S,
    )
    assert payload
    return dict(json.loads(payload.group(1)))


def test_waits_are_phrased_with_plural_forms() -> None:
    html = PhoneVerificationWidget().render("phone", None, attrs={"id": "id_phone"})
    messages = messages_of(html)
    units = messages["wait_units"]
    seconds = units["seconds"]
    assert seconds["forms"] == ["in {n} seconds", "in {n} second"]
    assert [seconds["forms"][seconds["index"][n]] for n in (0, 1, 2, 59)] == [
        "in {n} seconds",
        "in {n} second",
        "in {n} seconds",
        "in {n} seconds",
    ]
    assert len(seconds["index"]) == 60
    assert len(units["minutes"]["index"]) == 121  # minutes up to two hours
    assert len(units["hours"]["index"]) == 200
    assert units["hours"]["forms"][units["hours"]["index"][1]] == "in {n} hour"
    assert messages["rate_limited_wait"] == "Too many requests. Try again {wait}."
    assert messages["send_wait"] == "Send code {wait}"
    assert messages["resend_wait"] == "Resend code {wait}"


def test_plural_table_follows_the_languages_rule() -> None:
    from django_verifynow.widgets import _plural_table

    def french(n: int) -> str:  # plural=(n > 1)
        return "dans %(n)d seconde" if n <= 1 else "dans %(n)d secondes"

    table = _plural_table(french, 5)
    assert table == {
        "forms": ("dans {n} seconde", "dans {n} secondes"),
        "index": (0, 0, 1, 1, 1),
    }


PO_HEADER = """msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"
"Plural-Forms: {plural}\\n"
"""


@pytest.mark.skipif(
    shutil.which("msgfmt") is None, reason="needs gettext's msgfmt to compile a .po"
)
@pytest.mark.parametrize(
    ("lang", "plural", "zero", "one", "two"),
    [
        # French: 0 and 1 are singular.
        ("fr", "nplurals=2; plural=(n > 1);", "one", "one", "other"),
        # Hindi: 0 takes the plural.
        ("hi", "nplurals=2; plural=(n != 1);", "other", "one", "other"),
    ],
)
def test_wait_plurals_are_exact_in_french_and_hindi(
    settings: Any,
    tmp_path: Path,
    lang: str,
    plural: str,
    zero: str,
    one: str,
    two: str,
) -> None:
    """With a catalog of the language (here a test one, marking each form), the
    widget's tables pick the form gettext's own plural rule picks."""
    entries = "".join(
        f'\nmsgid "in %(n)d {unit}"\nmsgid_plural "in %(n)d {unit}s"\n'
        f'msgstr[0] "[one] %(n)d {unit}"\nmsgstr[1] "[other] %(n)d {unit}"\n'
        for unit in ("second", "minute", "hour")
    )
    messages = tmp_path / lang / "LC_MESSAGES"
    messages.mkdir(parents=True)
    (messages / "django.po").write_text(
        PO_HEADER.format(plural=plural) + entries, encoding="utf-8"
    )
    subprocess.run(
        ["msgfmt", "-o", str(messages / "django.mo"), str(messages / "django.po")],
        check=True,
    )
    settings.LOCALE_PATHS = [str(tmp_path)]
    with translation.override(lang):
        html = PhoneVerificationWidget().render("phone", None, attrs={"id": "id_phone"})
    units = messages_of(html)["wait_units"]
    for unit in ("seconds", "minutes", "hours"):
        table = units[unit]
        picked = [table["forms"][table["index"][n]] for n in (0, 1, 2)]
        assert picked == [
            f"[{zero}] {{n}} {unit[:-1]}",
            f"[{one}] {{n}} {unit[:-1]}",
            f"[{two}] {{n}} {unit[:-1]}",
        ]


def test_country_names_do_not_load_the_geocoding_tables() -> None:
    """libphonenumber's country names are read without phonenumbers.geodata, whose
    import loads every prefix table (about 100 MB per process)."""
    script = (
        "import sys, django; django.setup()\n"
        "from django_verifynow.widgets import country_names\n"
        "assert country_names('fr')['IN'] == 'Inde'\n"
        "assert 'phonenumbers.geodata' not in sys.modules, 'geodata imported'\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(root),
    }
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=root)
