"""Channels: ``CHANNELS``, the fallback from a refused channel, the channel a resend
uses, and the one decision of which vendor answers mean "not deliverable there".

The services run sync and async (the ``svc`` fixture) against the sandbox, which
refuses WhatsApp for the numbers in ``no_whatsapp`` and for an account whose
``flow_types`` lack it, as the client's fallback assumes the vendor does.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

import pytest
import time_machine
from django.core import checks
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_verifynow import channels, signals
from django_verifynow import client as client_module
from django_verifynow.checks import Codes, check_channels_api_version
from django_verifynow.client.results import refuses_channel
from django_verifynow.conf import verifynow_settings
from django_verifynow.exceptions import (
    ChannelRefused,
    InvalidInput,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    VerifyNowConfigurationError,
)
from django_verifynow.models import AttemptStatus, VerificationAttempt
from django_verifynow.reasons import FAILED_REASONS, Reason
from django_verifynow.testing import last_code, sandbox_engine

pytestmark = pytest.mark.django_db

PHONE = "+919876543210"
BASE = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN"]}


def vn(**overrides):
    return override_settings(VERIFYNOW={**BASE, **overrides})


def whatsapp_first(**overrides):
    return vn(CHANNELS=["WHATSAPP", "SMS"], **overrides)


def sends():
    """The flowType of every send request the sandbox received, in order."""
    return [
        r.params.get("flowType")
        for r in sandbox_engine().requests
        if r.endpoint == "send"
    ]


@contextlib.contextmanager
def clock():
    with time_machine.travel(timezone.now(), tick=False) as traveller:

        def skip(seconds: int = 61) -> None:
            traveller.shift(timedelta(seconds=seconds))

        yield skip


@pytest.fixture
def sent():
    """The keyword arguments of every ``verification_sent`` signal."""
    seen: list[dict] = []

    def handler(sender, **kwargs):
        seen.append(kwargs)

    signals.verification_sent.connect(handler, weak=False)
    yield seen
    signals.verification_sent.disconnect(handler)


@pytest.fixture
def failed():
    seen: list[dict] = []

    def handler(sender, **kwargs):
        seen.append(kwargs)

    signals.verification_failed.connect(handler, weak=False)
    yield seen
    signals.verification_failed.disconnect(handler)


# -- the setting ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_", "expected"),
    [
        ({}, ("SMS",)),
        ({"FLOW_TYPE": "WHATSAPP"}, ("WHATSAPP",)),
        ({"CHANNELS": ["WHATSAPP", "SMS"]}, ("WHATSAPP", "SMS")),
        # Set, CHANNELS wins over FLOW_TYPE.
        ({"CHANNELS": ("SMS",), "FLOW_TYPE": "WHATSAPP"}, ("SMS",)),
    ],
)
def test_channels_default_to_flow_type(settings_, expected):
    with vn(**settings_):
        assert verifynow_settings.CHANNELS == expected
        assert channels.order() == expected


@pytest.mark.parametrize(
    "value", [[], "SMS", ["SMS", "SMS"], ["EMAIL"], [None], {"SMS": 1}, 3]
)
def test_bad_channels_are_a_clear_configuration_error(value):
    with vn(CHANNELS=value), pytest.raises(VerifyNowConfigurationError) as info:
        _ = verifynow_settings.CHANNELS
    assert 'VERIFYNOW["CHANNELS"] must be a non-empty list' in str(info.value)


def test_a_requested_channel_starts_the_order_and_never_goes_back_up():
    with whatsapp_first():
        assert channels.order("WHATSAPP") == ("WHATSAPP", "SMS")
        assert channels.order("SMS") == ("SMS",)  # who picks SMS never gets WhatsApp
    with vn(CHANNELS=["SMS", "WHATSAPP"]):
        assert channels.order("WHATSAPP") == ("WHATSAPP",)
    with vn(CHANNELS=["SMS"]), pytest.raises(InvalidInput):
        channels.order("WHATSAPP")
    with vn(), pytest.raises(InvalidInput):
        channels.order("RCS")
    # A FLOW_TYPE site (CHANNELS unset) still sends on any channel asked by name.
    with vn():
        assert channels.order("WHATSAPP") == ("WHATSAPP",)


def test_v2_with_whatsapp_is_a_system_check_error():
    with vn(API_VERSION="v2", CHANNELS=["WHATSAPP", "SMS"]):
        errors = check_channels_api_version()
    assert [e.id for e in errors] == [Codes.CHANNELS_NEED_V3]
    assert errors[0].level == checks.ERROR and "v2" in errors[0].msg
    with vn(API_VERSION="v2", FLOW_TYPE="WHATSAPP"):
        assert [e.id for e in check_channels_api_version()] == [Codes.CHANNELS_NEED_V3]
    with vn(API_VERSION="v2"):
        assert check_channels_api_version() == []
    with vn(API_VERSION="v3", CHANNELS=["WHATSAPP", "SMS"]):
        assert check_channels_api_version() == []


# -- the decision ---------------------------------------------------------------------


def test_only_a_400_on_whatsapp_means_not_deliverable():
    assert refuses_channel(400, "WHATSAPP")
    assert not refuses_channel(400, "SMS")  # SMS refusals are about the number
    # Never where a code may be live, the account or country is wrong, or a limit hit.
    for code in (200, 409, 500, 501, 505, 506, 508, 511, 700, 800, 999, None):
        assert not refuses_channel(code, "WHATSAPP"), code
    assert Reason.CHANNEL_REFUSED in FAILED_REASONS


# -- the fallback ---------------------------------------------------------------------


def test_a_number_without_whatsapp_gets_its_code_by_sms(svc, sent, caplog):
    sandbox_engine().configure(no_whatsapp=[PHONE])
    caplog.set_level(logging.INFO, logger="django_verifynow.events")
    with whatsapp_first():
        attempt = svc.send_otp(PHONE)
    assert sends() == ["WHATSAPP", "SMS"]
    assert [m.flow_type for m in sandbox_engine().outbox] == ["SMS"]
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.PENDING
    assert (attempt.flow_type, attempt.refused_flow_type) == ("SMS", "WHATSAPP")
    assert VerificationAttempt.objects.count() == 1  # the same row, not two
    assert [s["fallback_from"] for s in sent] == ["WHATSAPP"]
    assert sent[0]["attempt"].pk == attempt.pk
    events = [
        r.verifynow
        for r in caplog.records
        if getattr(r, "verifynow", {}).get("event") == "sent"
    ]
    assert events[0]["channel"] == "SMS" and events[0]["fallback_from"] == "WHATSAPP"
    assert last_code(PHONE)


def test_an_account_without_whatsapp_falls_back_too(svc, sent):
    sandbox_engine().configure(flow_types=["SMS"])
    with whatsapp_first():
        attempt = svc.send_otp(PHONE)
    assert sends() == ["WHATSAPP", "SMS"]
    assert (attempt.flow_type, attempt.refused_flow_type) == ("SMS", "WHATSAPP")


def test_whatsapp_delivered_is_no_fallback(svc, sent):
    with whatsapp_first():
        attempt = svc.send_otp(PHONE)
    assert sends() == ["WHATSAPP"]
    assert (attempt.flow_type, attempt.refused_flow_type) == ("WHATSAPP", "")
    assert sent[0]["fallback_from"] is None


def test_a_fallback_counts_one_send(svc):
    sandbox_engine().configure(no_whatsapp=[PHONE], sends_per_window=100)
    limits = {"send": "2/h/phone", "resend": ""}
    with whatsapp_first(RATE_LIMITS=limits, RESEND_COOLDOWN=0), clock() as skip:
        svc.send_otp(PHONE)
        skip()
        # Two sends of the two allowed: each fallback counted once, not twice.
        svc.send_otp(PHONE)
        skip()
        with pytest.raises(RateLimited) as info:
            svc.send_otp(PHONE)
    assert info.value.reason is Reason.PHONE_LIMIT
    assert sends() == ["WHATSAPP", "SMS"] * 2


def test_a_user_who_picks_sms_never_gets_whatsapp(svc):
    with whatsapp_first():
        attempt = svc.send_otp(PHONE, flow_type="SMS")
    assert sends() == ["SMS"] and attempt.flow_type == "SMS"


def test_a_channel_the_site_does_not_allow_is_refused_before_anything(svc):
    with vn(CHANNELS=["SMS"]), pytest.raises(InvalidInput):
        svc.send_otp(PHONE, flow_type="WHATSAPP")
    assert sends() == [] and not VerificationAttempt.objects.exists()


def test_the_last_channel_refused_is_a_clear_failure_that_costs_nothing(svc, failed):
    sandbox_engine().configure(no_whatsapp=[PHONE])
    # WhatsApp asked for on an SMS-first site: nothing after it to fall back to.
    with vn(CHANNELS=["SMS", "WHATSAPP"]):
        with pytest.raises(ChannelRefused) as info:
            svc.send_otp(PHONE, flow_type="WHATSAPP")
        assert str(info.value.message) == (
            "A code cannot be sent by WhatsApp to this number."
        )
        assert info.value.code == "provider_error" and info.value.channel == "WHATSAPP"
        attempt = VerificationAttempt.objects.get()
        assert attempt.status == AttemptStatus.FAILED
        assert (attempt.flow_type, attempt.refused_flow_type) == (
            "WHATSAPP",
            "WHATSAPP",
        )
        assert attempt.last_response_code == 400
        assert [f["reason"] for f in failed] == [Reason.CHANNEL_REFUSED]
        # No budget spent: the user may ask for SMS at once (no cooldown).
        assert svc.send_otp(PHONE).flow_type == "SMS"
    assert sends() == ["WHATSAPP", "SMS"]


def test_every_channel_refused_records_both_and_costs_nothing(svc, failed):
    # An account with neither channel: WhatsApp refused, then SMS refused.
    sandbox_engine().configure(flow_types=["RCS"])
    with whatsapp_first(), pytest.raises(ProviderError) as info:
        svc.send_otp(PHONE)
    assert info.value.code == "provider_error"
    attempt = VerificationAttempt.objects.get()
    assert attempt.status == AttemptStatus.FAILED
    assert (attempt.flow_type, attempt.refused_flow_type) == ("SMS", "WHATSAPP")
    assert sends() == ["WHATSAPP", "SMS"]
    assert [f["reason"] for f in failed] == [Reason.VENDOR_REFUSED]
    sandbox_engine().configure(flow_types=["SMS", "WHATSAPP"])
    with whatsapp_first():
        assert svc.send_otp(PHONE).status == AttemptStatus.PENDING  # no cooldown


def test_a_timeout_on_the_first_channel_never_falls_back(svc):
    sandbox_engine().inject_fault("timeout", endpoint="send")
    with whatsapp_first(), pytest.raises(ProviderTimeout):
        svc.send_otp(PHONE)
    attempt = VerificationAttempt.objects.get()
    assert attempt.status == AttemptStatus.UNKNOWN
    assert (attempt.flow_type, attempt.refused_flow_type) == ("WHATSAPP", "")
    assert sends() == ["WHATSAPP"]  # a code may have gone out: nothing else is tried
    with whatsapp_first(), pytest.raises(RateLimited):
        svc.send_otp(PHONE)  # and it counts


def test_a_timeout_on_the_fallback_is_recorded_unknown_with_both(svc):
    engine = sandbox_engine()
    engine.inject_fault("response_code", endpoint="send", code=400)
    engine.inject_fault("timeout", endpoint="send")
    with whatsapp_first(), pytest.raises(ProviderTimeout):
        svc.send_otp(PHONE)
    attempt = VerificationAttempt.objects.get()
    assert attempt.status == AttemptStatus.UNKNOWN
    assert (attempt.flow_type, attempt.refused_flow_type) == ("SMS", "WHATSAPP")
    assert sends() == ["WHATSAPP", "SMS"]


def test_the_fallback_stays_within_the_first_calls_deadline(svc, monkeypatch):
    # A fake clock the sandbox moves: the refused WhatsApp send takes 14.8 s of the
    # 15 s deadline, so the SMS send cannot start (nothing sent, nothing counted).
    now = [1000.0]
    monkeypatch.setattr(client_module, "_monotonic", lambda: now[0])
    engine = sandbox_engine()
    engine.configure(no_whatsapp=[PHONE])
    handle = engine.handle

    def slow_send(method, path, *args, **kwargs):
        response = handle(method, path, *args, **kwargs)
        if "send" in path:
            now[0] += 14.8
        return response

    monkeypatch.setattr(engine, "handle", slow_send)
    with whatsapp_first(DEADLINE=15), pytest.raises(ProviderUnavailable) as info:
        svc.send_otp(PHONE)
    assert not isinstance(info.value, ProviderTimeout)
    assert sends() == ["WHATSAPP"]
    attempt = VerificationAttempt.objects.get()
    assert attempt.status == AttemptStatus.FAILED
    assert attempt.refused_flow_type == "WHATSAPP"


# -- resend ---------------------------------------------------------------------------


def test_a_resend_uses_the_channel_that_delivered(svc):
    sandbox_engine().configure(no_whatsapp=[PHONE])
    with whatsapp_first(RESEND_COOLDOWN=0), clock() as skip:
        first = svc.send_otp(PHONE)
        skip()
        second = svc.resend_otp(first.pk)
    # WhatsApp was refused once: the resend does not try it again.
    assert sends() == ["WHATSAPP", "SMS", "SMS"]
    assert (second.flow_type, second.refused_flow_type) == ("SMS", "")


def test_send_by_sms_instead_is_a_resend_on_sms_with_the_same_cooldown(svc):
    with whatsapp_first(), clock() as skip:
        first = svc.send_otp(PHONE)
        assert first.flow_type == "WHATSAPP"
        # The cooldown holds for a switch of channel too.
        with pytest.raises(RateLimited) as info:
            svc.resend_otp(first.pk, flow_type="SMS")
        assert info.value.reason is Reason.COOLDOWN
        skip()
        second = svc.resend_otp(first.pk, flow_type="SMS")
        first.refresh_from_db()
    assert second.flow_type == "SMS" and first.status == AttemptStatus.EXPIRED
    assert sends() == ["WHATSAPP", "SMS"]


def test_a_resend_on_a_channel_the_site_does_not_allow_is_refused(svc):
    with vn(CHANNELS=["SMS"]):
        first = svc.send_otp(PHONE)
        with pytest.raises(InvalidInput):
            svc.resend_otp(first.pk, flow_type="WHATSAPP")
    assert sends() == ["SMS"]


# -- the HTTP API ---------------------------------------------------------------------

API = "/api/verify/"


@pytest.fixture
def api(server):
    """The API through the WSGI views and through the ASGI ones (``server``)."""
    return APIClient()


def test_the_api_sends_on_the_channel_asked_and_says_when_it_fell_back(api):
    sandbox_engine().configure(no_whatsapp=[PHONE])
    with whatsapp_first():
        response = api.post(
            API, {"phone_number": PHONE, "channel": "WHATSAPP"}, format="json"
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["channel"], body["flow_type"], body["fallback_from"]) == (
        "SMS",
        "SMS",
        "WHATSAPP",
    )
    assert sends() == ["WHATSAPP", "SMS"]
    # Polling the attempt says the same.
    polled = api.get(f"{API}{body['id']}/").json()
    assert polled["fallback_from"] == "WHATSAPP" and polled["channel"] == "SMS"


def test_the_api_keeps_flow_type_and_refuses_two_different_channels(api):
    with whatsapp_first():
        legacy = api.post(
            API, {"phone_number": PHONE, "flow_type": "SMS"}, format="json"
        )
        assert legacy.status_code == 201
        assert legacy.json()["fallback_from"] is None
        both = api.post(
            API,
            {"phone_number": PHONE, "channel": "SMS", "flow_type": "WHATSAPP"},
            format="json",
        )
    assert both.status_code == 400 and both.json()["code"] == "invalid_input"
    assert "channel" in both.json()["fields"]
    assert sends() == ["SMS"]


def test_the_api_refuses_a_channel_the_site_does_not_allow(api):
    with vn(CHANNELS=["SMS"]):
        response = api.post(
            API, {"phone_number": PHONE, "channel": "WHATSAPP"}, format="json"
        )
    assert response.status_code == 400 and response.json()["code"] == "invalid_input"
    assert sends() == []


def test_the_api_answers_502_when_the_last_channel_is_refused(api):
    sandbox_engine().configure(no_whatsapp=[PHONE])
    with vn(CHANNELS=["WHATSAPP"]):
        response = api.post(API, {"phone_number": PHONE}, format="json")
    assert response.status_code == 502
    assert response.json() == {
        "code": "provider_error",
        "detail": "A code cannot be sent by WhatsApp to this number.",
    }


def test_the_api_resends_on_another_channel(api):
    with whatsapp_first(), clock() as skip:
        first = api.post(API, {"phone_number": PHONE}, format="json").json()
        assert first["channel"] == "WHATSAPP"
        skip()
        response = api.post(
            f"{API}{first['id']}/resend/", {"channel": "SMS"}, format="json"
        )
        assert response.status_code == 201, response.content
        assert response.json()["channel"] == "SMS"
        skip(300)  # the cooldown doubles with each send
        # Without a body: the channel of the previous code.
        again = api.post(f"{API}{response.json()['id']}/resend/")
        assert again.status_code == 201 and again.json()["channel"] == "SMS"
        bad = api.post(
            f"{API}{first['id']}/resend/", {"channel": "EMAIL"}, format="json"
        )
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_input"
    assert sends() == ["WHATSAPP", "SMS", "SMS"]
