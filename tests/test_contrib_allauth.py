"""allauth's phone flows through allauth's real views (signup, the phone verification
stage, phone change, login by code), with VerifyNow's in-process sandbox sending and
checking the codes.
"""

from __future__ import annotations

import gettext as gettext_module
from pathlib import Path
from typing import Any

import pytest
from allauth.account.adapter import get_adapter
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from django.utils import translation

from django_verifynow import signals
from django_verifynow.contrib.allauth import checks as allauth_checks
from django_verifynow.contrib.allauth.adapter import (
    PURPOSE_LOGIN,
    PURPOSE_PHONE,
    SESSION_KEY,
)
from django_verifynow.contrib.allauth.conf import ACCOUNT_FORMS
from django_verifynow.contrib.allauth.models import AccountPhone
from django_verifynow.models import AttemptStatus, VerificationAttempt

from .test_locale import msgstrs, parse_po, placeholders, source_messages

PHONE = "+919876543210"
TYPED_PHONE = "+91 98765 43210"
NEW_PHONE = "+447400123456"
PASSWORD = "correct horse battery staple"
User = get_user_model()

ADAPTER = "django_verifynow.contrib.allauth.adapter.VerifyNowAccountAdapter"
ALLAUTH_SETTINGS: dict[str, Any] = {
    "ROOT_URLCONF": "tests.allauth_urls",
    "ACCOUNT_ADAPTER": ADAPTER,
    "ACCOUNT_FORMS": ACCOUNT_FORMS,
    "ACCOUNT_LOGIN_METHODS": {"phone", "username"},
    "ACCOUNT_SIGNUP_FIELDS": ["phone*", "username*", "password1*", "password2*"],
    "ACCOUNT_EMAIL_VERIFICATION": "none",
    "ACCOUNT_PHONE_VERIFICATION_ENABLED": True,
    "ACCOUNT_PHONE_VERIFICATION_SUPPORTS_RESEND": True,
    "ACCOUNT_PHONE_VERIFICATION_SUPPORTS_CHANGE": True,
    "ACCOUNT_LOGIN_BY_CODE_ENABLED": True,
    # allauth's own limits (one phone code per 30 s...) would refuse before this
    # app's are reached; the tests are about this app's.
    "ACCOUNT_RATE_LIMITS": False,
    "LOGIN_REDIRECT_URL": "/accounts/profile/",
}


@pytest.fixture(autouse=True)
def allauth_site(db: None, verifynow_sandbox: Any) -> Any:
    with override_settings(**ALLAUTH_SETTINGS):
        yield verifynow_sandbox


@pytest.fixture
def sandbox(allauth_site: Any) -> Any:
    return allauth_site


@pytest.fixture
def fired() -> Any:
    """The signals of this app sent during the test, by name."""
    seen: dict[str, list[dict[str, Any]]] = {}
    receivers = []
    for name in ("verification_sent", "verification_verified", "verification_consumed"):
        signal = getattr(signals, name)

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            seen.setdefault(_name, []).append(kwargs)

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    yield seen
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def _signup(client: Client, phone: str = TYPED_PHONE, username: str = "asha") -> Any:
    return client.post(
        reverse("account_signup"),
        {
            "username": username,
            "phone": phone,
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )


def _verify(client: Client, code: str | None) -> Any:
    return client.post(reverse("account_verify_phone"), {"code": code or ""})


def _errors(response: Any) -> str:
    form = response.context["form"]
    return " ".join(str(e) for errors in form.errors.values() for e in errors)


def _stored(username: str = "asha") -> tuple[str, bool] | None:
    row = AccountPhone.objects.filter(user__username=username).first()
    return (row.phone, row.verified) if row else None


def _verified_user(username: str = "ravi", phone: str = PHONE) -> Any:
    user = User.objects.create_user(username, password=PASSWORD)
    AccountPhone.objects.create(user=user, phone=phone, verified=True)
    return user


# -- signup and the phone verification stage ------------------------------------------


def test_signup_sends_one_code_through_verifynow(client: Client, sandbox: Any) -> None:
    response = _signup(client)

    assert response.status_code == 302
    assert response.url == reverse("account_verify_phone")
    assert sandbox.count("send") == 1
    attempt = VerificationAttempt.objects.get()
    assert (attempt.phone_number, attempt.purpose) == (PHONE, PURPOSE_PHONE)
    assert attempt.user == User.objects.get(username="asha")
    # Stored in E.164 as this app normalises it, not verified yet.
    assert _stored() == (PHONE, False)
    assert client.session[SESSION_KEY][PURPOSE_PHONE] == {
        "phone": PHONE,
        "attempt": str(attempt.pk),
    }


def test_the_right_code_verifies_the_phone_and_uses_the_proof(
    client: Client, sandbox: Any, fired: Any
) -> None:
    _signup(client)

    response = _verify(client, sandbox.last_code(PHONE))

    assert response.status_code == 302
    assert _stored() == (PHONE, True)
    attempt = VerificationAttempt.objects.get()
    assert attempt.status == AttemptStatus.VERIFIED
    assert attempt.consumed_at is not None
    assert attempt.user == User.objects.get(username="asha")
    assert sandbox.count("validate") == 1
    assert [len(fired.get(n, [])) for n in fired] == [1, 1, 1]
    assert fired["verification_consumed"][0]["user"].username == "asha"
    # The stage is over: the user is logged in.
    assert client.get("/accounts/profile/").content == b"user=asha"


def test_a_wrong_code_is_a_form_error_and_counts(client: Client, sandbox: Any) -> None:
    _signup(client)
    right = sandbox.last_code(PHONE)
    wrong = "000000" if right != "000000" else "111111"

    response = _verify(client, wrong)

    assert response.status_code == 200
    assert "This code is not right. Tries left: 4." in _errors(response)
    attempt = VerificationAttempt.objects.get()
    assert attempt.checks.count() == 1
    assert attempt.status == AttemptStatus.PENDING
    assert _stored() == (PHONE, False)


def test_allauths_local_code_is_never_accepted(client: Client, sandbox: Any) -> None:
    _signup(client)
    # allauth keeps its own "code" in the session's login state: ours is a token
    # nobody can type, and the form never compares it anyway.
    local = _find_local_code(dict(client.session))
    assert local.startswith("verifynow-not-a-code-")

    response = _verify(client, local)

    assert response.status_code == 200
    assert "digits only" in _errors(response)
    assert _stored() == (PHONE, False)
    assert sandbox.count("validate") == 0


def _find_local_code(value: Any) -> str:
    if isinstance(value, str) and value.startswith("verifynow-not-a-code-"):
        return value
    children = value.values() if isinstance(value, dict) else value
    if isinstance(value, (dict, list, tuple)):
        for child in children:
            found = _find_local_code(child)
            if found:
                return found
    return ""


def test_allauths_stock_form_refuses_even_the_right_code(
    client: Client, sandbox: Any
) -> None:
    # With the adapter but allauth's own verify form (what the system check E002
    # refuses), the right VerifyNow code fails: it fails closed, never open.
    with override_settings(ACCOUNT_FORMS={}):
        _signup(client)
        response = _verify(client, sandbox.last_code(PHONE))

    assert response.status_code == 200
    assert _stored() == (PHONE, False)


def test_a_code_for_another_session_is_refused(client: Client, sandbox: Any) -> None:
    _signup(client)
    code = sandbox.last_code(PHONE)
    other = Client()
    _signup(other, phone="+44 7400 123456", username="mallory")
    # Mallory's session holds no attempt for Asha's number: the code is useless there.
    session = other.session
    state = session[SESSION_KEY]
    state[PURPOSE_PHONE] = client.session[SESSION_KEY][PURPOSE_PHONE]
    session[SESSION_KEY] = state
    session.save()

    response = _verify(other, code)

    assert response.status_code == 200
    assert "Ask for a new code" in _errors(response)
    assert _stored() == (PHONE, False)
    assert _stored("mallory") == (NEW_PHONE, False)


def test_a_second_signup_with_the_same_number_waits_for_the_cooldown(
    client: Client, sandbox: Any
) -> None:
    _signup(client)
    late = Client()

    response = _signup(late, username="bhavna")

    # The number's cooldown holds across sessions: no second SMS, a message instead,
    # and the second claim stays unverified whatever is typed.
    assert response.status_code == 302
    assert sandbox.count("send") == 1
    page = late.get(response.url)
    assert any("Try again in" in str(m) for m in page.context["messages"])
    response = _verify(late, sandbox.last_code(PHONE))
    assert response.status_code == 200
    assert _errors(response).startswith("No code was sent: ")
    assert "Try again in" in _errors(response)
    assert _stored("bhavna") == (PHONE, False)
    # The first signup's code still verifies its own claim.
    assert _verify(client, sandbox.last_code(PHONE)).status_code == 302
    assert _stored() == (PHONE, True)


def test_resend_within_the_cooldown_sends_nothing(client: Client, sandbox: Any) -> None:
    _signup(client)

    response = client.post(
        reverse("account_verify_phone"), {"action": "resend"}, follow=True
    )

    assert response.status_code == 200
    assert sandbox.count("send") == 1
    shown = [str(m) for m in response.context["messages"]]
    assert any("Try again in" in m for m in shown), shown
    # The code already sent still works.
    assert _verify(client, sandbox.last_code(PHONE)).status_code == 302
    assert _stored() == (PHONE, True)


def test_vendor_down_at_signup_is_a_message_and_a_recorded_attempt(
    client: Client, sandbox: Any
) -> None:
    sandbox.inject_fault("http_500", endpoint="send", times=None)

    response = _signup(client)

    assert response.status_code == 302
    page = client.get(response.url)
    assert page.status_code == 200
    shown = [str(m) for m in page.context["messages"]]
    assert any("could not process" in m or "unavailable" in m for m in shown), shown
    assert sandbox.outbox == []
    attempt = VerificationAttempt.objects.get()
    assert attempt.status in (AttemptStatus.FAILED, AttemptStatus.UNKNOWN)
    # Typing anything says no code went out; nothing becomes verified.
    response = _verify(client, "123456")
    assert response.status_code == 200
    assert _errors(response) == (
        "No code was sent: The verification service could not process the request. "
        "Ask for a new code."
    )
    assert _stored() == (PHONE, False)
    assert sandbox.count("validate") == 0


def test_a_number_outside_the_allowed_countries_is_refused_at_signup(
    client: Client, sandbox: Any
) -> None:
    response = _signup(client, phone="+33612345678")

    assert response.status_code == 200
    assert "cannot be sent" in _errors(response)
    assert not User.objects.exists()
    assert sandbox.count("send") == 0


def test_marking_verified_without_a_verified_attempt_is_refused(
    client: Client, sandbox: Any
) -> None:
    _signup(client)
    user = User.objects.get(username="asha")
    # The pending (unverified) attempt of the signup proves nothing yet.
    assert VerificationAttempt.objects.get().status == AttemptStatus.PENDING
    request = RequestFactory().get("/")
    request.session = client.session
    with pytest.raises(PermissionDenied):
        get_adapter(request).set_phone_verified(user, PHONE)
    assert _stored() == (PHONE, False)


def test_a_social_claim_of_a_verified_phone_is_stored_unverified(
    client: Client,
) -> None:
    user = User.objects.create_user("asha", password=PASSWORD)
    request = RequestFactory().get("/")
    request.session = client.session

    get_adapter(request).set_phone(user, TYPED_PHONE, True)

    assert _stored() == (PHONE, False)


# -- phone change ----------------------------------------------------------------------


def test_phone_change_is_verified_by_verifynow(client: Client, sandbox: Any) -> None:
    user = _verified_user()
    client.force_login(user)

    response = client.post(reverse("account_change_phone"), {"phone": "07400 123456"})
    assert response.status_code == 200  # a national number needs the country code
    assert sandbox.count("send") == 0

    response = client.post(
        reverse("account_change_phone"), {"phone": "+44 7400 123456"}
    )
    assert response.status_code == 302
    assert sandbox.count("send") == 1
    attempt = VerificationAttempt.objects.get()
    assert (attempt.phone_number, attempt.purpose) == (NEW_PHONE, PURPOSE_PHONE)

    wrong = "000000" if sandbox.last_code(NEW_PHONE) != "000000" else "111111"
    assert _verify(client, wrong).status_code == 200
    assert _stored("ravi") == (PHONE, True)

    response = _verify(client, sandbox.last_code(NEW_PHONE))
    assert response.status_code == 302
    assert _stored("ravi") == (NEW_PHONE, True)
    attempt.refresh_from_db()
    assert attempt.consumed_at is not None and attempt.user == user


# -- login by code ---------------------------------------------------------------------


def test_login_by_code_to_a_phone(client: Client, sandbox: Any) -> None:
    _verified_user()

    response = client.post(reverse("account_request_login_code"), {"phone": PHONE})
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_confirm_login_code"))
    attempt = VerificationAttempt.objects.get()
    assert attempt.purpose == PURPOSE_LOGIN

    wrong = "000000" if sandbox.last_code(PHONE) != "000000" else "111111"
    response = client.post(reverse("account_confirm_login_code"), {"code": wrong})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session

    response = client.post(
        reverse("account_confirm_login_code"), {"code": sandbox.last_code(PHONE)}
    )
    assert response.status_code == 302
    assert client.get("/accounts/profile/").content == b"user=ravi"
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.VERIFIED
    assert attempt.consumed_at is not None


@pytest.mark.parametrize("claimed", [False, True])
def test_login_by_code_to_an_unknown_phone_sends_nothing(
    client: Client, sandbox: Any, claimed: bool
) -> None:
    if claimed:
        # An unverified claim is no account of the number: whoever holds it must not
        # be logged in to the claimant's account by a code sent to it.
        user = User.objects.create_user("mallory", password=PASSWORD)
        AccountPhone.objects.create(user=user, phone=PHONE, verified=False)

    response = client.post(reverse("account_request_login_code"), {"phone": PHONE})

    # allauth's enumeration prevention shows the same page; VerifyNow sends nothing.
    assert response.status_code in (200, 302)
    assert sandbox.count("send") == 0
    assert not VerificationAttempt.objects.exists()


# -- system checks ---------------------------------------------------------------------


def test_checks_pass_with_the_settings_to_copy() -> None:
    errors = checks.run_checks(tags=["django_verifynow"])
    assert [e.id for e in errors if e.id.startswith("django_verifynow.allauth")] == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"ACCOUNT_FORMS": {}},
        {"ACCOUNT_ADAPTER": "allauth.account.adapter.DefaultAccountAdapter"},
    ],
)
def test_e002_adapter_and_forms_must_agree(overrides: dict[str, Any]) -> None:
    with override_settings(**overrides):
        errors = allauth_checks.check_adapter_and_forms()
    assert [e.id for e in errors] == ["django_verifynow.allauth.E002"]


def test_e001_names_a_missing_app() -> None:
    with override_settings(
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"]
    ):
        errors = allauth_checks.check_installed_apps()
    assert {e.id for e in errors} == {"django_verifynow.allauth.E001"}
    assert len(errors) == 3


# -- translations ----------------------------------------------------------------------

CONTRIB = Path(__file__).resolve().parents[1] / "django_verifynow/contrib/allauth"


@pytest.mark.parametrize("lang", ["fr", "hi"])
def test_every_contrib_message_is_in_the_catalogs_and_compiled(lang: str) -> None:
    po = CONTRIB / "locale" / lang / "LC_MESSAGES" / "django.po"
    entries = [e for e in parse_po(po) if e["msgid"]]
    sources = source_messages(CONTRIB)
    assert len(sources) > 10
    assert sources <= {e["msgid"] for e in entries}
    with po.with_suffix(".mo").open("rb") as fp:
        mo = gettext_module.GNUTranslations(fp)
    for entry in entries:
        assert "fuzzy" not in entry["flags"], entry["msgid"]
        for translated in msgstrs(entry):
            # French is complete; Hindi may leave a text to its English original.
            assert translated.strip() or lang == "hi", entry["msgid"]
            if translated:
                assert placeholders(translated, entry["flags"]) == placeholders(
                    entry["msgid"], entry["flags"]
                )
                assert mo.gettext(entry["msgid"]) == translated


def test_a_form_error_is_translated(client: Client, sandbox: Any) -> None:
    _signup(client)
    wrong = "000000" if sandbox.last_code(PHONE) != "000000" else "111111"

    response = _verify(client, wrong)

    # The errors are lazy texts: shown in the language of the page that shows them.
    with translation.override("fr"):
        assert "Ce code n'est pas le bon. Essais restants : 4." in _errors(response)
