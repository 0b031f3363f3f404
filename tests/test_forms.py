"""VerifiedPhoneNumberField, the form mixin and the atomic consumption: unverified
submissions are refused, and one proof makes one account."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test import RequestFactory
from django.utils import timezone

from django_verifynow import services
from django_verifynow.exceptions import AttemptNotFound
from django_verifynow.forms import (
    VerifiedPhoneFormMixin,
    VerifiedPhoneNumberField,
    bind_request,
    consume_verified_phone,
)
from django_verifynow.models import VerificationAttempt
from django_verifynow.testing import last_code

pytestmark = pytest.mark.urls("tests.browser_urls")

PHONE = "+919876543210"
OTHER_PHONE = "+919812345678"
User = get_user_model()


class SignupForm(VerifiedPhoneFormMixin, UserCreationForm):
    phone = VerifiedPhoneNumberField(purpose="signup")


class PlainForm(forms.Form):
    phone = VerifiedPhoneNumberField(purpose="signup", required=False)


def make_request(session: SessionStore | None = None, user: Any = None) -> Any:
    request = RequestFactory().post("/signup/")
    request.session = session if session is not None else SessionStore()
    request.user = user or AnonymousUser()
    return request


def verify(
    request: Any, number: str = PHONE, purpose: str = "signup"
) -> VerificationAttempt:
    attempt = services.send_otp(number, request=request, purpose=purpose)
    attempt = services.validate_otp(attempt, last_code(number), request=request)
    assert attempt.status == "verified"
    return attempt


def signup_data(
    attempt: Any, *, phone: str = PHONE, username: str = "alice", **extra: str
) -> dict:
    data = {
        "username": username,
        "password1": "a-Long-enough-pass-7",
        "password2": "a-Long-enough-pass-7",
        "phone": phone,
        "phone_country": "IN",
        "phone_attempt": str(getattr(attempt, "pk", attempt) or ""),
    }
    data.update(extra)
    return data


@pytest.fixture
def request_() -> Any:
    return make_request()


# -- clean() ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_verified_attempt_gives_the_e164_number(request_: Any) -> None:
    attempt = verify(request_)
    form = SignupForm(signup_data(attempt), request=request_)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone"] == PHONE
    assert form.fields["phone"].attempt.pk == attempt.pk


@pytest.mark.django_db
def test_national_number_with_country_is_normalised(request_: Any) -> None:
    attempt = verify(request_)
    form = SignupForm(signup_data(attempt, phone="098765 43210"), request=request_)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone"] == PHONE


@pytest.mark.django_db
def test_the_widgets_national_number_and_country_verify_as_the_form_reads_them(
    request_: Any,
) -> None:
    """The widget sends the number as typed with the selected country; the service
    parses them as clean() parses the submitted phone and phone_country."""
    typed = "07400 123456"
    attempt = services.send_otp(typed, request=request_, purpose="signup", region="GB")
    attempt = services.validate_otp(
        attempt, last_code("+447400123456"), request=request_
    )
    data = signup_data(attempt, phone=typed, phone_country="GB")
    form = SignupForm(data, request=request_)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone"] == "+447400123456"


@pytest.mark.django_db
def test_a_national_number_without_a_country_is_read_in_the_default_region(
    request_: Any, settings: Any
) -> None:
    """No country posted (a form without the list, or built in code): clean() reads
    the number in PHONENUMBER_DEFAULT_REGION, as the service did for the code."""
    settings.PHONENUMBER_DEFAULT_REGION = "GB"
    attempt = services.send_otp("07400 123456", request=request_, purpose="signup")
    services.validate_otp(attempt, last_code("+447400123456"), request=request_)
    form = PlainForm({"phone": "07400 123456", "phone_attempt": str(attempt.pk)})
    bind_request(form, request_)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone"] == "+447400123456"


@pytest.mark.django_db
def test_a_phone_number_object_is_accepted_as_input(request_: Any) -> None:
    from phonenumber_field.phonenumber import PhoneNumber

    attempt = verify(request_)
    number = PhoneNumber.from_string(PHONE)
    form = PlainForm({"phone": number, "phone_attempt": str(attempt.pk)})
    bind_request(form, request_)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone"] == PHONE
    assert isinstance(form.cleaned_data["phone"], str)  # the contract: E.164 text
    # A bare PhoneNumber (no widget dict) parses too: what is missing is the proof.
    field = VerifiedPhoneNumberField(purpose="signup")
    field.request = request_
    with pytest.raises(forms.ValidationError) as info:
        field.clean(number)
    assert info.value.code == "unverified"


@pytest.mark.django_db
def test_as_phone_number_cleans_to_a_phone_number(request_: Any) -> None:
    from phonenumber_field.phonenumber import PhoneNumber

    class PhoneNumberForm(VerifiedPhoneFormMixin, forms.Form):
        phone = VerifiedPhoneNumberField(purpose="signup", as_phone_number=True)

    attempt = verify(request_)
    data = {"phone": "098765 43210", "phone_country": "IN"}
    form = PhoneNumberForm({**data, "phone_attempt": str(attempt.pk)}, request=request_)
    assert form.is_valid(), form.errors
    number = form.cleaned_data["phone"]
    assert isinstance(number, PhoneNumber) and number.as_e164 == PHONE
    with transaction.atomic():
        (consumed,) = form.consume_verified_phones()
    assert consumed.pk == attempt.pk and consumed.consumed_at is not None


@pytest.mark.django_db
def test_clean_parses_the_typed_number_once(
    request_: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parsed number goes down to the proof check: the typed number is parsed
    once per clean()."""
    import phonenumbers

    attempt = verify(request_)
    form = SignupForm(signup_data(attempt, phone="098765 43210"), request=request_)
    calls: list[Any] = []
    real = phonenumbers.parse
    monkeypatch.setattr(
        phonenumbers,
        "parse",
        lambda *a, **k: (
            calls.append(k.get("number", a[0] if a else None)) or real(*a, **k)
        ),
    )
    assert form.is_valid(), form.errors
    # The typed text once. The proof check got the parsed number and did not parse
    # it again, and the stored E.164 (for the masked number the widget shows) was
    # parsed already, when the code was sent.
    assert calls == ["098765 43210"]


@pytest.mark.django_db
def test_an_invalid_national_number_names_the_country(request_: Any) -> None:
    form = SignupForm(
        signup_data(uuid.uuid4(), phone="0740 9123", phone_country="GB"),
        request=request_,
    )
    assert not form.is_valid()
    (error,) = form.errors.as_data()["phone"]
    assert error.code == "invalid_phone"
    assert str(error.message).startswith("Enter a valid phone number for United King")
    assert "9123" not in str(error.message)

    class OwnTextForm(VerifiedPhoneFormMixin, forms.Form):
        phone = VerifiedPhoneNumberField(
            purpose="signup", error_messages={"invalid_phone": "Not a number."}
        )

    form = OwnTextForm({"phone": "12", "phone_country": "GB"}, request=request_)
    assert form.errors["phone"] == ["Not a number."]


@pytest.mark.parametrize(
    ("initial", "data", "changed"),
    [
        ("+447400123456", {"phone": "07400 123456", "country": "GB"}, False),
        ("+447400123456", {"phone": "+44 7400 123456", "country": "IN"}, False),
        ("+447400123456", {"phone": "07400 123457", "country": "GB"}, True),
        (None, {"phone": "", "country": "GB"}, False),
        (None, {"phone": "07400 123456", "country": "GB"}, True),
        ("+447400123456", {"phone": "not a number", "country": "GB"}, True),
    ],
)
def test_has_changed_compares_numbers(initial: Any, data: dict, changed: bool) -> None:
    from phonenumber_field.phonenumber import PhoneNumber

    field = VerifiedPhoneNumberField(purpose="signup")
    assert field.has_changed(initial, data) is changed
    if initial:
        assert field.has_changed(PhoneNumber.from_string(initial), data) is changed


@pytest.mark.django_db
def test_clean_does_not_consume(request_: Any) -> None:
    attempt = verify(request_)
    assert SignupForm(signup_data(attempt), request=request_).is_valid()
    attempt.refresh_from_db()
    assert attempt.consumed_at is None


@pytest.mark.django_db
def test_missing_attempt_is_refused(request_: Any) -> None:
    verify(request_)  # verified, but the form does not name the attempt
    form = SignupForm(signup_data(""), request=request_)
    assert not form.is_valid()
    assert form.errors.as_data()["phone"][0].code == "unverified"


@pytest.mark.django_db
def test_empty_phone_is_required(request_: Any) -> None:
    form = SignupForm(signup_data("", phone=""), request=request_)
    assert not form.is_valid()
    assert form.errors.as_data()["phone"][0].code == "required"


@pytest.mark.django_db
def test_invalid_phone_is_refused(request_: Any) -> None:
    form = SignupForm(signup_data(uuid.uuid4(), phone="12"), request=request_)
    assert not form.is_valid()
    assert form.errors.as_data()["phone"][0].code == "invalid_phone"


@pytest.mark.django_db
def test_pending_attempt_is_refused(request_: Any) -> None:
    attempt = services.send_otp(PHONE, request=request_, purpose="signup")
    form = SignupForm(signup_data(attempt), request=request_)
    assert not form.is_valid()
    assert "phone" in form.errors


@pytest.mark.django_db
@pytest.mark.parametrize("claim", [str(uuid.uuid4()), "verified", "1", "' OR 1=1 --"])
def test_forged_hidden_value_is_refused(request_: Any, claim: str) -> None:
    form = SignupForm(signup_data(claim), request=request_)
    assert not form.is_valid()
    assert "phone" in form.errors


@pytest.mark.django_db
def test_attempt_of_another_session_is_refused(request_: Any) -> None:
    attempt = verify(request_)
    stranger = make_request()
    form = SignupForm(signup_data(attempt), request=stranger)
    assert not form.is_valid()
    assert "phone" in form.errors


@pytest.mark.django_db
def test_attempt_for_another_number_is_refused(request_: Any) -> None:
    attempt = verify(request_, OTHER_PHONE)
    form = SignupForm(signup_data(attempt, phone=PHONE), request=request_)
    assert not form.is_valid()
    assert "phone" in form.errors


@pytest.mark.django_db
def test_attempt_for_another_purpose_is_refused(request_: Any) -> None:
    attempt = verify(request_, purpose="phone_change")
    form = SignupForm(signup_data(attempt), request=request_)
    assert not form.is_valid()
    assert "phone" in form.errors


@pytest.mark.django_db
def test_proof_older_than_proof_ttl_is_refused(request_: Any, settings: Any) -> None:
    settings.VERIFYNOW = {**settings.VERIFYNOW, "PROOF_TTL": 60}
    attempt = verify(request_)
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        form = SignupForm(signup_data(attempt), request=request_)
        assert not form.is_valid()
    form = SignupForm(signup_data(attempt), request=request_)
    assert form.is_valid(), form.errors


@pytest.mark.django_db
def test_field_without_request_refuses_to_guess(request_: Any) -> None:
    attempt = verify(request_)
    form = PlainForm({"phone": PHONE, "phone_attempt": str(attempt.pk)})
    with pytest.raises(ImproperlyConfigured, match="request"):
        form.is_valid()


@pytest.mark.django_db
def test_bind_request_for_plain_forms(request_: Any) -> None:
    attempt = verify(request_)
    form = PlainForm({"phone": PHONE, "phone_attempt": str(attempt.pk)})
    bind_request(form, request_)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone"] == PHONE


@pytest.mark.django_db
def test_optional_field_left_empty_is_none(request_: Any) -> None:
    form = PlainForm({"phone": "", "phone_attempt": ""})
    bind_request(form, request_)
    assert form.is_valid()
    assert form.cleaned_data["phone"] is None
    with transaction.atomic():
        assert consume_verified_phone(form) == []


@pytest.mark.django_db
def test_logged_in_user_attempt_is_accepted() -> None:
    user = User.objects.create_user("bob", password="x")
    request = make_request(user=user)
    attempt = verify(request, purpose="phone_change")

    class ChangeForm(VerifiedPhoneFormMixin, forms.Form):
        phone = VerifiedPhoneNumberField(purpose="phone_change")

    other_session = make_request(user=user)  # same user, new session (after a login)
    form = ChangeForm(
        {"phone": PHONE, "phone_attempt": str(attempt.pk)}, request=other_session
    )
    assert form.is_valid(), form.errors


# -- consumption -----------------------------------------------------------------------


@pytest.mark.django_db
def test_save_consumes_with_the_user(request_: Any) -> None:
    attempt = verify(request_)
    form = SignupForm(signup_data(attempt), request=request_)
    assert form.is_valid()
    user = form.save()
    attempt.refresh_from_db()
    assert attempt.consumed_at is not None
    assert User.objects.filter(pk=user.pk).exists()


@pytest.mark.django_db
def test_one_verification_makes_one_account(request_: Any) -> None:
    """The second signup with the same proof fails, in clean()."""
    attempt = verify(request_)
    first = SignupForm(signup_data(attempt), request=request_)
    assert first.is_valid()
    first.save()
    second = SignupForm(signup_data(attempt, username="mallory"), request=request_)
    assert not second.is_valid()
    assert "phone" in second.errors
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]


@pytest.mark.django_db
def test_second_of_two_validated_forms_saves_nothing(request_: Any) -> None:
    """Both forms pass clean() before either saves (interleaved submits)."""
    attempt = verify(request_)
    first = SignupForm(signup_data(attempt), request=request_)
    second = SignupForm(signup_data(attempt, username="mallory"), request=request_)
    assert first.is_valid() and second.is_valid()
    first.save()
    with pytest.raises(AttemptNotFound):
        second.save()
    assert "phone" in second.errors
    assert not User.objects.filter(username="mallory").exists()
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_failed_save_gives_the_proof_back(
    request_: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempt = verify(request_)
    form = SignupForm(signup_data(attempt), request=request_)
    assert form.is_valid()

    def boom(self: Any, commit: bool = True) -> Any:
        raise RuntimeError("database went away")

    monkeypatch.setattr(UserCreationForm, "save", boom)
    with pytest.raises(RuntimeError):
        form.save()
    attempt.refresh_from_db()
    assert attempt.consumed_at is None
    monkeypatch.undo()
    again = SignupForm(signup_data(attempt), request=request_)
    assert again.is_valid(), again.errors


@pytest.mark.django_db
def test_commit_false_does_not_consume_and_atomic_consume_does(request_: Any) -> None:
    attempt = verify(request_)
    form = SignupForm(signup_data(attempt), request=request_)
    assert form.is_valid()
    user = form.save(commit=False)
    attempt.refresh_from_db()
    assert attempt.consumed_at is None
    with form.atomic_consume():
        user.save()
    attempt.refresh_from_db()
    assert attempt.consumed_at is not None


@pytest.mark.django_db
def test_consume_before_is_valid_is_an_error(request_: Any) -> None:
    form = SignupForm(signup_data(""), request=request_)
    with transaction.atomic(), pytest.raises(RuntimeError, match="is_valid"):
        consume_verified_phone(form)


@pytest.mark.django_db(transaction=True)
def test_consume_outside_a_transaction_is_an_error(request_: Any) -> None:
    attempt = verify(request_)
    form = SignupForm(signup_data(attempt), request=request_)
    assert form.is_valid()
    with pytest.raises(RuntimeError, match="atomic"):
        consume_verified_phone(form)
    attempt.refresh_from_db()
    assert attempt.consumed_at is None


@pytest.mark.django_db
def test_unknown_field_name_is_an_error(request_: Any) -> None:
    attempt = verify(request_)
    form = SignupForm(signup_data(attempt), request=request_)
    assert form.is_valid()
    with transaction.atomic(), pytest.raises(ValueError, match="username"):
        consume_verified_phone(form, "username")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_make_at_most_one_account() -> None:
    """One proof, two signups under real concurrency: row locks on PostgreSQL
    serialise the two UPDATEs."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    request = make_request()
    request.session.save()
    attempt = verify(request)
    barrier = threading.Barrier(2)
    results: list[str] = []

    def submit(username: str) -> None:
        from django.db import connections

        try:
            form = SignupForm(signup_data(attempt, username=username), request=request)
            assert form.is_valid(), form.errors
            barrier.wait(timeout=10)
            with transaction.atomic():
                form.save()
            results.append("saved")
        except AttemptNotFound:
            results.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(n,)) for n in ("u1", "u2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == ["refused", "saved"]
    assert User.objects.count() == 1


# -- through a view ------------------------------------------------------------------


@pytest.mark.django_db
def test_view_post_without_verification_creates_no_user(client: Any) -> None:
    response = client.post("/signup/", signup_data(""))
    assert response.status_code == 200
    assert b"Verify this phone number" in response.content
    assert User.objects.count() == 0


@pytest.mark.django_db
def test_view_post_with_forged_claim_creates_no_user(client: Any) -> None:
    other = make_request()
    attempt = verify(other)  # a real proof, but of another browser's session
    response = client.post("/signup/", signup_data(attempt))
    assert response.status_code == 200
    assert User.objects.count() == 0
    attempt.refresh_from_db()
    assert attempt.consumed_at is None


@pytest.mark.django_db
def test_view_signup_with_the_session_proof(client: Any) -> None:
    session = client.session
    request = make_request(session=session)
    attempt = verify(request)
    session.save()
    response = client.post("/signup/", signup_data(attempt))
    assert response.status_code == 200
    assert b'id="done"' in response.content
    assert User.objects.filter(username="alice").exists()
    # Replaying the same POST makes no second account.
    response = client.post("/signup/", signup_data(attempt, username="alice2"))
    assert not User.objects.filter(username="alice2").exists()
