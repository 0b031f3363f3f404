"""The support desk: one number found in any format, its attempts and checks (masked
unless permitted), every wait the policy holds against it with its end, and the audited
lifts that really let the next send through (except what VerifyNow itself still holds).

Time is moved with ``time_machine`` (the limits' clock, the sandbox's and Django's all
follow it), from the start of an hour so sliding-window waits are exact. Runs on SQLite
+ local memory, and on PostgreSQL + Redis with the test URLs set.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.contrib.sessions.backends.cache import SessionStore
from django.test import Client, RequestFactory, override_settings
from django.urls import reverse
from django.utils import timezone

from django_verifynow import policy, ratelimit, services
from django_verifynow.admin import UNBLOCK_PERMISSION, find_number
from django_verifynow.exceptions import PrefixBlocked, RateLimited
from django_verifynow.models import (
    AttemptStatus,
    CheckOutcome,
    PrefixBlock,
    VerificationAttempt,
    VerificationCheck,
)
from django_verifynow.policy import caps, inspect_phone, lift_phone
from django_verifynow.reasons import Reason
from django_verifynow.testing import reset_sandbox, sandbox_engine

pytestmark = pytest.mark.django_db

PHONE = "+919876543210"
MASKED = "+91********10"
OTHER = "+447911123456"
SECOND = "+919812345678"  # other numbers to send to (India is allowed; +447911 is GG)
THIRD = "+919898989898"
PREFIX = "+91987654"
MASKED_PREFIX = "+91****54XXXX"
CODE = "417293"  # the sandbox's fixed code: it must never reach a page
BASE = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN", "GB", "US", "DE"]}
DESK = "admin:django_verifynow_verificationattempt_support"
CHANGELIST = "admin:django_verifynow_verificationattempt_changelist"


def vn(**overrides: Any) -> Any:
    return override_settings(VERIFYNOW={**BASE, **overrides})


def make_request(ip: str = "203.0.113.7") -> Any:
    request = RequestFactory().post("/", REMOTE_ADDR=ip)
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


def perm(codename: str) -> Permission:
    return Permission.objects.get(
        codename=codename, content_type__app_label="django_verifynow"
    )


def staff(username: str = "operator", *codenames: str) -> Any:
    user = get_user_model().objects.create_user(username, is_staff=True)
    for codename in ("view_verificationattempt", *codenames):
        user.user_permissions.add(perm(codename))
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def logged_in(user: Any, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def desk(client: Client, term: str, **params: str) -> Any:
    response = client.get(reverse(DESK), {"q": term, **params})
    assert response.status_code == 200
    return response


def lift(client: Client, term: str, scope: str = "phone", **extra: str) -> Any:
    return client.post(
        reverse(DESK), {"q": term, "action": scope, "confirm": "yes", **extra}
    )


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def iso(moment: datetime) -> str:
    return f'datetime="{moment.isoformat()}"'


@pytest.fixture
def t0() -> Iterator[tuple[datetime, Any]]:
    """Frozen time at the start of the next hour (windows start there)."""
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    start += timedelta(hours=1)
    with time_machine.travel(start, tick=False) as traveller:
        reset_sandbox(fixed_code=CODE)
        yield start, traveller


def attempt(phone: str = PHONE, **fields: Any) -> VerificationAttempt:
    defaults = {
        "country": "IN" if phone.startswith("+91") else "GB",
        "status": AttemptStatus.PENDING,
        "purpose": "signup",
        "ip_address": "203.0.113.7",
        "provider_verification_id": str(uuid.uuid4().int)[:8],
        "expires_at": timezone.now() + timedelta(minutes=10),
    }
    return VerificationAttempt.objects.create(
        phone_number=phone, **{**defaults, **fields}
    )


# -- finding the number ----------------------------------------------------------------


@pytest.mark.parametrize(
    "term",
    [
        "+919876543210",
        "+91 98765-43210",
        "0091 9876543210",
        "919876543210",
        "(+91) 98765 43210",
        # National: valid in DE and IN; only IN has attempts, so IN is meant.
        "09876543210",
    ],
)
def test_search_in_any_format_finds_the_number(term: str) -> None:
    mine = attempt()
    attempt(OTHER)
    attempt("+919812345678")
    response = desk(logged_in(staff()), term)
    assert response.context["phone"] == PHONE
    assert [row.attempt for row in response.context["attempts"]] == [mine]


def test_an_attempt_id_finds_its_number_and_an_ambiguous_number_offers_choices() -> (
    None
):
    a = attempt(OTHER)
    client = logged_in(staff())
    assert desk(client, str(a.pk)).context["phone"] == OTHER
    # Valid in DE, IN and US, with no history anywhere: the desk asks which.
    html = desk(client, "2025550123").content.decode()
    assert "+1********23" in html and "country=US" in html and "2025550123" in html
    assert "12025550123" not in html  # the candidates are masked too
    chosen = desk(client, "2025550123", country="US")
    assert chosen.context["phone"] == "+12025550123"
    assert find_number("not a number").phone is None
    assert 'id="vn-no-match"' in desk(client, "nobody").content.decode()


# -- attempts, checks and masking ------------------------------------------------------


def _history() -> tuple[VerificationAttempt, VerificationAttempt, Any]:
    alice = get_user_model().objects.create_user("alice")
    now = timezone.now()
    consumed = attempt(
        status=AttemptStatus.VERIFIED,
        flow_type="WHATSAPP",
        code_sent=False,
        check_count=2,
        last_response_code=200,
        created_at=now - timedelta(minutes=5),
        verified_at=now - timedelta(minutes=4),
        consumed_at=now - timedelta(minutes=3),
        user=alice,
    )
    VerificationCheck.objects.create(
        attempt=consumed,
        outcome=CheckOutcome.WRONG_CODE,
        response_code=702,
        created_at=now - timedelta(minutes=4, seconds=30),
    )
    VerificationCheck.objects.create(
        attempt=consumed,
        outcome=CheckOutcome.VERIFIED,
        response_code=200,
        created_at=now - timedelta(minutes=4),
    )
    live = attempt(created_at=now - timedelta(minutes=1))
    return consumed, live, alice


def test_the_page_lists_attempts_and_checks_masked() -> None:
    consumed, live, alice = _history()
    elsewhere = attempt(OTHER)
    # Searched by attempt id, so the page cannot echo the number from the search box.
    response = desk(logged_in(staff()), str(live.pk))
    html = response.content.decode()
    rows = response.context["attempts"]
    assert [row.attempt for row in rows] == [live, consumed]  # newest first
    assert MASKED in html and "9876543210" not in html
    assert str(elsewhere.pk) not in html
    consumed_row = html.split(f'id="vn-attempt-{consumed.pk}"')[1]
    consumed_row = consumed_row.split('class="vn-attempt"')[0]
    assert "WhatsApp" in consumed_row and "no (reused the live code)" in consumed_row
    assert "verifynow-status-verified" in consumed_row
    assert f"{reverse('admin:auth_user_change', args=[alice.pk])}" in consumed_row
    assert "Wrong code" in consumed_row and "702 WRONG_OTP_PROVIDED" in consumed_row
    assert "200 SUCCESS" in consumed_row and "2/5" in consumed_row
    live_row = html.split(f'id="vn-attempt-{live.pk}"')[1].split("</tr>")[0]
    assert "verifynow-status-pending" in live_row and ">yes<" in live_row
    assert 'class="vn-consumed">no<' in live_row
    # Viewers without the permission to lift get no lift form.
    assert 'id="vn-lift-phone"' not in html


def test_full_numbers_and_the_lift_form_need_their_permissions() -> None:
    _, live, _ = _history()
    trusted = staff("trusted", "view_full_phone_number", "unblock_phone_number")
    html = desk(logged_in(trusted), str(live.pk)).content.decode()
    assert f"{PHONE} " in html and f"{PREFIX}XXXX" in html
    assert 'id="vn-lift-phone"' in html
    # The form posts the term as typed (here the attempt id), not the number.
    assert f'name="q" value="{live.pk}"' in html


def test_the_desk_needs_staff_with_the_view_permission() -> None:
    url = reverse(DESK)
    assert Client().get(url).status_code == 302  # to the admin login
    clerk = get_user_model().objects.create_user("clerk", is_staff=True)
    assert logged_in(clerk).get(url).status_code == 403
    assert logged_in(staff()).get(url).status_code == 200


def test_the_changelist_links_to_the_desk() -> None:
    html = logged_in(staff()).get(reverse(CHANGELIST)).content.decode()
    assert f'href="{reverse(DESK)}"' in html


# -- limits in force, and their ends ---------------------------------------------------


def test_a_cooldown_and_a_per_phone_limit_show_with_their_ends(t0: Any) -> None:
    start, traveller = t0
    with vn(RATE_LIMITS={"send": "1/h/phone"}, RESEND_COOLDOWN=120):
        services.send_otp(PHONE, request=make_request())
        traveller.shift(timedelta(seconds=10))
        response = desk(logged_in(staff()), PHONE)
    state = response.context["state"]
    html = response.content.decode()
    cooling = state.cooldown
    # The first growing wait is exact (120 s); VerifyNow's window is its 60 s.
    assert cooling.active and not cooling.code_valid
    assert cooling.growing_until == start + timedelta(seconds=120)
    assert cooling.vendor_window_until == start + timedelta(seconds=60)
    assert cooling.available_at == start + timedelta(seconds=120)
    # 1/h with one hit at the start of the hour: the sliding window frees it only
    # once that hour has slid out entirely, at the end of the next one.
    (send_rule,) = [r for r in state.rules if r.action == "send"]
    assert send_rule.over and send_rule.current == 1
    assert send_rule.free_at == start + timedelta(hours=2)
    (resend_rule,) = [r for r in state.rules if r.action == "resend"]
    assert not resend_rule.over and resend_rule.current == 0  # a send is no resend
    assert state.send_free_at() == start + timedelta(hours=2)
    assert state.vendor_code_until == start + timedelta(seconds=60)
    cooldown_row = html.split('id="vn-cooldown"')[1].split("</tr>")[0]
    assert iso(start + timedelta(seconds=120)) in cooldown_row
    assert iso(start + timedelta(seconds=60)) in cooldown_row
    rule_row = html.split('data-action="send" data-key="phone"')[1].split("</tr>")[0]
    assert "at its limit" in rule_row and iso(start + timedelta(hours=2)) in rule_row
    assert "1 of 1" in rule_row
    assert iso(start + timedelta(seconds=60)) in html.split('id="vn-vendor-code"')[1]
    assert CODE not in html


def test_the_failure_cap_shows_and_lifts() -> None:
    limits = {"validate_failure": "2/d/phone"}
    operator = staff("lifter", "unblock_phone_number")
    with vn(RATE_LIMITS=limits):
        policy.record_failure(PHONE, "requester-a")
        policy.record_failure(PHONE, "requester-a")
        with pytest.raises(RateLimited) as refused:
            policy.admit_check(PHONE, "requester-a")
        assert refused.value.reason == Reason.FAILURE_CAP
        client = logged_in(operator)
        response = desk(client, PHONE)
        (cap,) = response.context["state"].failure_cap
        assert cap.over and cap.free_at is not None
        row = response.content.decode().split('class="vn-failure-cap"')[1]
        assert "code checks refused" in row.split("</tr>")[0]
        lifted = lift(client, PHONE)
        assert lifted.status_code == 302
        policy.admit_check(PHONE, "requester-a")  # no longer refused
    assert any("wrong codes: 2 per day" in m for m in messages_of(lifted))


def test_the_daily_cap_use_today_is_site_wide() -> None:
    with vn(DAILY_SEND_CAP=5, RESEND_COOLDOWN=0):
        services.send_otp(SECOND, request=make_request("198.51.100.1"))
        services.send_otp(THIRD, request=make_request("198.51.100.2"))
        response = desk(logged_in(staff()), PHONE)
    daily = response.context["state"].daily_cap
    assert (daily.cap, daily.used, daily.reached) == (5, 2, False)
    assert "2 of 5 today" in response.content.decode()


# -- lifting ---------------------------------------------------------------------------


def test_the_lift_needs_the_permission_and_lets_the_next_send_through(t0: Any) -> None:
    start, traveller = t0
    request = make_request()
    with vn(RATE_LIMITS={"send": "1/h/phone"}, RESEND_COOLDOWN=120):
        first = services.send_otp(PHONE, request=request)
        traveller.shift(timedelta(seconds=61))  # VerifyNow's code has expired
        with pytest.raises(RateLimited) as refused:
            services.send_otp(PHONE, request=request)
        assert refused.value.reason == Reason.COOLDOWN

        viewer = logged_in(staff())
        assert lift(viewer, PHONE).status_code == 403
        assert not LogEntry.objects.exists()

        operator = staff("lifter", "unblock_phone_number")
        client = logged_in(operator)
        # Without confirm=yes: the confirmation page, and nothing lifted yet.
        confirm = client.post(reverse(DESK), {"q": PHONE, "action": "phone"})
        assert confirm.status_code == 200
        page = confirm.content.decode()
        assert "the resend cooldown" in page and "sends: 1 per hour" in page
        assert 'name="confirm" value="yes"' in page and "csrfmiddlewaretoken" in page
        assert inspect_phone(PHONE).cooldown.active
        assert not LogEntry.objects.exists()

        response = lift(client, PHONE)
        assert response.status_code == 302
        assert response.url == f"{reverse(DESK)}?q=%2B919876543210"
        fresh = services.send_otp(PHONE, request=request)
    assert fresh.code_sent and fresh.status == AttemptStatus.PENDING
    assert len(sandbox_engine().outbox) == 2
    (said,) = messages_of(response)
    assert said.startswith(f"Lifted for {MASKED}: the resend cooldown (until ")
    assert "sends: 1 per hour per phone number (until " in said
    entry = LogEntry.objects.get()
    assert entry.user == operator and entry.action_flag == CHANGE
    assert entry.content_type == ContentType.objects.get_for_model(VerificationAttempt)
    assert entry.object_id == str(first.pk)
    assert MASKED in entry.change_message and "9876543210" not in entry.change_message
    assert "resend cooldown" in entry.change_message


def test_lifting_cannot_beat_the_code_verifynow_still_holds(t0: Any) -> None:
    start, traveller = t0
    live_until = start + timedelta(seconds=60)
    request = make_request()
    with vn(RATE_LIMITS={"send": "1/h/phone"}):
        services.send_otp(PHONE, request=request)
        traveller.shift(timedelta(seconds=10))
        client = logged_in(staff("lifter", "unblock_phone_number"))
        before = desk(client, PHONE).content.decode()
        assert iso(live_until) in before.split('id="vn-vendor-code"')[1]
        response = lift(client, PHONE)
        warned = messages_of(response)
        assert any(m.startswith("VerifyNow still holds a live code") for m in warned)
        # The lift cleared our record of VerifyNow's window; the attempt's expiry
        # still tells the desk.
        lifted = desk(client, PHONE)
        assert lifted.context["state"].cooldown.vendor_window_until is None
        shown = lifted.content.decode().split('id="vn-vendor-code"')[1]
        assert iso(live_until) in shown
        # Our limits are lifted, but VerifyNow answers 506 and sends nothing: the
        # requester keeps the code it has, and the 506 re-arms our cooldown until
        # VerifyNow's window ends, so the next send waits for it again.
        reused = services.send_otp(PHONE, request=request)
        assert reused.code_sent is False and len(sandbox_engine().outbox) == 1
        with pytest.raises(RateLimited) as other:
            services.send_otp(PHONE, request=make_request("198.51.100.9"))
        assert other.value.reason == Reason.COOLDOWN
        assert 49 <= other.value.retry_after <= 50
        assert inspect_phone(PHONE).cooldown.code_valid
        after = desk(client, PHONE).content.decode()
        assert iso(live_until) in after.split('id="vn-vendor-code"')[1]
        traveller.shift(timedelta(seconds=51))  # past VerifyNow's window
        fresh = services.send_otp(PHONE, request=request)
        gone = desk(client, PHONE).content.decode()
    assert fresh.code_sent is True and len(sandbox_engine().outbox) == 2
    assert 'id="vn-vendor-code"' in gone  # the new code is live in turn
    assert iso(fresh.expires_at) in gone.split('id="vn-vendor-code"')[1]


def test_the_prefix_block_shows_and_lifts() -> None:
    rule = ratelimit.Rule(limit=10, period=3600, key="prefix")
    caps.block_prefix(PREFIX, rule, "send")
    block = PrefixBlock.objects.create(
        prefix=PREFIX, country="IN", until=timezone.now() + timedelta(hours=12)
    )
    with vn(), pytest.raises(PrefixBlocked):
        services.send_otp(PHONE, request=make_request())
    earlier = attempt(status=AttemptStatus.EXPIRED)
    operator = staff("lifter", "unblock_phone_number")
    client = logged_in(operator)
    # By attempt id: the search box does not echo the number, so nothing on the page
    # may show the prefix unmasked.
    response = desk(client, str(earlier.pk))
    state = response.context["state"]
    assert state.prefix.blocked and state.prefix.rows == (block,)
    assert 11 * 3600 < state.prefix.cache_seconds <= 12 * 3600
    html = response.content.decode()
    assert MASKED_PREFIX in html and 'id="vn-lift-prefix"' in html
    assert PREFIX not in html
    lifted = lift(client, str(earlier.pk), scope="prefix")
    assert lifted.status_code == 302
    block.refresh_from_db()
    assert block.lifted_at is not None and block.lifted_by == operator
    assert caps.prefix_block_remaining(PREFIX) == 0
    entry = LogEntry.objects.get()
    assert entry.user == operator
    assert entry.content_type == ContentType.objects.get_for_model(PrefixBlock)
    assert entry.object_id == str(block.pk)
    assert MASKED_PREFIX in entry.change_message and PREFIX not in entry.change_message
    assert any(m.startswith(f"Lifted for {MASKED_PREFIX}") for m in messages_of(lifted))
    with vn():
        assert services.send_otp(PHONE, request=make_request()).code_sent


def test_a_phone_lift_leaves_the_site_wide_counters_alone(t0: Any) -> None:
    _, traveller = t0
    with vn(RATE_LIMITS={"send": "1/h/phone,3/h/global"}, RESEND_COOLDOWN=0):
        services.send_otp(PHONE, request=make_request("198.51.100.1"))
        services.send_otp(SECOND, request=make_request("198.51.100.2"))
        lifted = lift_phone(PHONE)
        assert [item.what for item in lifted.lifted][-1].startswith("sends: 1 per hour")
        traveller.shift(timedelta(seconds=61))
        services.send_otp(PHONE, request=make_request("198.51.100.1"))  # global: 3
        with pytest.raises(RateLimited) as refused:
            services.send_otp(THIRD, request=make_request("198.51.100.3"))
    assert refused.value.reason == Reason.GLOBAL_LIMIT


def test_the_lift_is_post_only_and_csrf_protected(t0: Any) -> None:
    with vn(RESEND_COOLDOWN=120):
        services.send_otp(PHONE, request=make_request())
        operator = staff("lifter", "unblock_phone_number")
        client = logged_in(operator)
        got = client.get(
            reverse(DESK), {"q": PHONE, "action": "phone", "confirm": "yes"}
        )
        assert got.status_code == 200
        strict = logged_in(operator, enforce_csrf_checks=True)
        assert lift(strict, PHONE).status_code == 403
        assert inspect_phone(PHONE).cooldown.active
    assert not LogEntry.objects.exists()


def test_a_broken_cache_shows_limits_unavailable() -> None:
    live = attempt()
    client = logged_in(staff("lifter", "unblock_phone_number"))
    broken = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
    with override_settings(CACHES=broken):
        response = desk(client, PHONE)
        html = response.content.decode()
        lifted = lift(client, PHONE)
    state = response.context["state"]
    assert not state.limits_available and state.cooldown is None
    assert 'id="vn-limits-unavailable"' in html and "ConnectionError" in html
    assert f'id="vn-attempt-{live.pk}"' in html  # the database part still shows
    assert lifted.status_code == 302
    assert messages_of(lifted) == [
        "The limits cache is unavailable: nothing was lifted."
    ]
    assert not LogEntry.objects.exists()


def test_the_permission_exists_with_its_name() -> None:
    assert UNBLOCK_PERMISSION == "django_verifynow.unblock_phone_number"
    assert perm("unblock_phone_number").name == "Can lift phone blocks and cooldowns"
