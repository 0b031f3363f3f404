"""Prefix blocks seen by operators, and the pumping watch of the send path: a block
is recorded, listed (masked) in the admin and lifted there; a country whose sends rise
while almost none are verified raises a warning event and a signal."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.sessions.backends.cache import SessionStore
from django.test import Client, RequestFactory, override_settings

from django_verifynow import services, signals
from django_verifynow.exceptions import PrefixBlocked
from django_verifynow.models import PrefixBlock
from django_verifynow.policy import caps
from django_verifynow.testing import last_code

pytestmark = pytest.mark.django_db

BASE = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN"], "RESEND_COOLDOWN": 0}


def make_request(ip: str) -> Any:
    request = RequestFactory().post("/", REMOTE_ADDR=ip)
    request.session = SessionStore()
    return request


@pytest.fixture
def suspected() -> Any:
    seen: list[dict] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    signals.pumping_suspected.connect(receiver, weak=False)
    yield seen
    signals.pumping_suspected.disconnect(receiver)


def block_a_prefix() -> None:
    limits = {"send": "100/h/ip,100/h/session,3/h/prefix"}
    with override_settings(VERIFYNOW={**BASE, "RATE_LIMITS": limits}):
        for i in range(1, 10):
            try:
                services.send_otp(
                    f"+91987654{i:04d}", request=make_request(f"198.51.100.{i}")
                )
            except PrefixBlocked:
                return
    raise AssertionError("the prefix was never blocked")


def test_a_new_block_is_recorded_once_and_signalled(suspected: Any) -> None:
    block_a_prefix()
    block = PrefixBlock.objects.get()
    assert block.prefix == "+91987654" and block.country == "IN" and block.active
    assert [s["scope"] for s in suspected] == ["prefix"]
    assert suspected[0]["prefix"] == "+91****54XXXX"
    # Further refusals by the same block record nothing new.
    with override_settings(VERIFYNOW=BASE), pytest.raises(PrefixBlocked):
        services.send_otp("+919876540099", request=make_request("203.0.113.9"))
    assert PrefixBlock.objects.count() == 1 and len(suspected) == 1


def staff(*perms: str) -> Any:
    user = get_user_model().objects.create_user("ops", password="x", is_staff=True)
    for codename in ("view_prefixblock", "change_prefixblock", *perms):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client, user


def test_the_admin_lists_blocks_masked_and_lifts_them() -> None:
    block_a_prefix()
    client, user = staff()
    page = client.get("/admin/django_verifynow/prefixblock/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "+91****54XXXX" in html and "+91987654" not in html
    block = PrefixBlock.objects.get()
    response = client.post(
        "/admin/django_verifynow/prefixblock/",
        {"action": "lift", "_selected_action": [block.pk]},
        follow=True,
    )
    assert response.status_code == 200
    block.refresh_from_db()
    assert block.lifted_at is not None and block.lifted_by == user
    assert not block.active
    assert caps.prefix_block_remaining("+91987654") == 0
    with override_settings(VERIFYNOW=BASE):
        services.send_otp("+919876540099", request=make_request("203.0.113.9"))


def test_staff_who_may_see_full_numbers_see_the_whole_prefix() -> None:
    block_a_prefix()
    client, _ = staff("view_full_phone_number")
    html = client.get("/admin/django_verifynow/prefixblock/").content.decode()
    assert "+91987654XXXX" in html


def test_a_pumped_country_raises_a_warning_event_and_a_signal(
    suspected: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """60 sends to one country with 5 verified: once, at the 50th send or after."""
    caplog.set_level(logging.WARNING, logger="django_verifynow.events")
    limits = {"send": "1000/h/ip,1000/h/session"}
    with override_settings(VERIFYNOW={**BASE, "RATE_LIMITS": limits}):
        for i in range(60):
            number = f"+9198{i:08d}"
            request = make_request(f"198.51.{i // 200}.{i % 200 + 1}")
            attempt = services.send_otp(number, request=request)
            if i < 5:
                services.validate_otp(attempt.pk, last_code(number), request=request)
    countries = [s for s in suspected if s["scope"] == "country"]
    assert len(countries) == 1
    assert countries[0]["country"] == "IN"
    assert countries[0]["sends"] >= 50 and countries[0]["verified"] == 5
    warnings = [r for r in caplog.records if "pumping_suspected" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_a_healthy_country_raises_nothing(suspected: Any) -> None:
    limits = {"send": "1000/h/ip,1000/h/session"}
    with override_settings(VERIFYNOW={**BASE, "RATE_LIMITS": limits}):
        for i in range(60):
            number = f"+9198{i:08d}"
            request = make_request(f"198.51.{i // 200}.{i % 200 + 1}")
            attempt = services.send_otp(number, request=request)
            services.validate_otp(attempt.pk, last_code(number), request=request)
    assert suspected == []
