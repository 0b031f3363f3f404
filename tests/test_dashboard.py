"""Dashboard figures computed from known fixtures: per day, totals, countries, vendor
errors, blocked sends, the SMS-pumping signature and the chart geometry."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import formats, timezone

from django_verifynow import dashboard, signals
from django_verifynow.dashboard import CreditOutage
from django_verifynow.models import (
    AttemptStatus,
    CheckOutcome,
    VerificationAttempt,
    VerificationCheck,
)

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=dt_timezone.utc)
S = AttemptStatus


def add(n, *, at, status=S.VERIFIED, country="IN", phone=None, code=None, **fields):
    VerificationAttempt.objects.bulk_create(
        VerificationAttempt(
            phone_number=phone or f"+91987654{i:04d}",
            country=country,
            status=status,
            created_at=at,
            last_response_code=code,
            **fields,
        )
        for i in range(n)
    )


def test_daily_stats_per_day_with_empty_days():
    add(3, at=NOW - timedelta(hours=1))
    add(1, at=NOW - timedelta(hours=2), status=S.EXPIRED)
    add(2, at=NOW - timedelta(hours=3), status=S.FAILED, code=511)
    add(4, at=NOW - timedelta(days=2), status=S.LOCKED)
    add(5, at=NOW - timedelta(days=45))  # outside the window
    days = dashboard.daily_stats(now=NOW)
    assert len(days) == 30
    assert days[-1].day == NOW.date() and days[0].day == NOW.date() - timedelta(days=29)
    today = days[-1]
    assert (today.sends, today.verified, today.failed) == (4, 3, 2)
    assert today.conversion == 0.75
    two_ago = days[-3]
    assert (two_ago.sends, two_ago.verified, two_ago.conversion) == (4, 0, 0.0)
    assert days[-2].sends == 0 and days[-2].conversion is None
    assert sum(d.sends for d in days) == 8


def test_summary_totals():
    add(6, at=NOW - timedelta(days=1))
    add(2, at=NOW - timedelta(days=1), status=S.LOCKED)
    add(1, at=NOW - timedelta(days=1), status=S.UNKNOWN)
    add(3, at=NOW - timedelta(days=1), status=S.FAILED)
    VerificationAttempt.objects.filter(status=S.VERIFIED).filter(
        pk__in=VerificationAttempt.objects.filter(status=S.VERIFIED).values("pk")[:2]
    ).update(consumed_at=NOW)
    total = dashboard.summary(now=NOW)
    assert (total.sends, total.verified, total.locked, total.unknown, total.failed) == (
        9,
        6,
        2,
        1,
        3,
    )
    assert total.consumed == 2
    assert total.conversion == pytest.approx(6 / 9)


def test_top_countries_sorted_with_conversion():
    at = NOW - timedelta(days=3)
    add(8, at=at, country="IN")
    add(2, at=at, country="IN", status=S.EXPIRED)
    add(1, at=at, country="GB", phone="+447911123456")
    add(4, at=at, country="GB", phone="+447911123456", status=S.LOCKED)
    add(20, at=at, country="US", status=S.FAILED)  # never sent: not a send
    rows = dashboard.top_countries(now=NOW)
    assert [(c.country, c.sends, c.verified, c.locked) for c in rows] == [
        ("IN", 10, 8, 0),
        ("GB", 5, 1, 4),
    ]
    assert rows[0].conversion == 0.8 and rows[1].conversion == 0.2
    assert [c.country for c in dashboard.top_countries(now=NOW, limit=1)] == ["IN"]


def test_vendor_errors_by_response_code():
    at = NOW - timedelta(days=1)
    add(3, at=at, status=S.FAILED, code=511)
    add(1, at=at, status=S.FAILED, code=508)
    add(2, at=at, status=S.UNKNOWN)
    a = VerificationAttempt.objects.filter(status=S.FAILED).first()
    VerificationCheck.objects.create(
        attempt=a, created_at=at, outcome=CheckOutcome.ERROR, response_code=505
    )
    VerificationCheck.objects.create(
        attempt=a, created_at=at, outcome=CheckOutcome.WRONG_CODE, response_code=702
    )
    errors = dashboard.vendor_errors(now=NOW)
    assert [(e.call, e.response_code, e.count, e.name) for e in errors] == [
        ("send", 511, 3, "INVALID_COUNTRY_CODE"),
        ("send", None, 2, "no answer"),
        ("send", 508, 1, "INSUFFICIENT_BALANCE"),
        ("validate", 505, 1, "INVALID_VERIFICATION_ID"),
    ]


def test_blocked_sends_counted_from_the_signal():
    for reason in ["cooldown", "cooldown", "country", "rate_limited:prefix"]:
        signals.verification_blocked.send(
            sender=VerificationAttempt,
            attempt=None,
            request=None,
            phone_number="+91***10",
            reason=reason,
        )
    assert [(b.reason, b.count) for b in dashboard.blocked_sends()] == [
        ("cooldown", 2),
        ("country", 1),
        ("rate_limited:prefix", 1),
    ]


def test_blocked_sends_through_the_service():
    from django.test import override_settings

    from django_verifynow import services
    from django_verifynow.exceptions import PhoneNumberNotAllowed

    with override_settings(VERIFYNOW={"SANDBOX": True, "ALLOWED_COUNTRIES": ["GB"]}):
        with pytest.raises(PhoneNumberNotAllowed):
            services.send_otp("+919876543210")
    assert [(b.reason, b.count) for b in dashboard.blocked_sends()] == [("country", 1)]


# -- pumping ---------------------------------------------------------------------------


def test_pumping_signature_flags_country_and_prefix():
    # Usual traffic to IN over the past week: 10 sends a day, 80 % verified.
    for day in range(1, 8):
        add(8, at=NOW - timedelta(days=day), country="IN")
        add(2, at=NOW - timedelta(days=day), country="IN", status=S.EXPIRED)
    # The last hour: 60 sends to one IN prefix, 5 verified: a conversion collapse.
    VerificationAttempt.objects.bulk_create(
        VerificationAttempt(
            phone_number=f"+91987650{i:04d}",
            country="IN",
            status=S.VERIFIED if i < 5 else S.EXPIRED,
            created_at=NOW - timedelta(minutes=30),
        )
        for i in range(60)
    )
    # GB: as many sends but healthy conversion; DE: poor but steady (not rising).
    add(60, at=NOW - timedelta(minutes=20), country="GB", phone="+447911123456")
    for day in range(0, 8):
        add(
            30,
            at=NOW - timedelta(days=day, minutes=5),
            country="DE",
            phone="+4915112345678",
            status=S.EXPIRED,
        )
        add(
            5,
            at=NOW - timedelta(days=day, minutes=5),
            country="DE",
            phone="+4915112345678",
        )
    found = dashboard.pumping_signals(now=NOW)
    hour = [s for s in found if s.window == timedelta(hours=1)]
    assert {(s.scope, s.key) for s in hour} == {
        ("country", "IN"),
        ("prefix", "+91987650"),
    }
    country = next(s for s in hour if s.scope == "country")
    assert (country.sends, country.verified) == (60, 5)
    assert country.baseline_conversion == pytest.approx(0.8)
    assert country.baseline_sends == pytest.approx(70 / (7 * 24))
    assert country.conversion < 0.4 and country.rise > 2
    prefix = next(s for s in hour if s.scope == "prefix")
    assert prefix.label == "+91987650xxxx"
    assert "GB" not in {s.key for s in found} and "DE" not in {s.key for s in found}


def test_pumping_needs_enough_sends():
    add(49, at=NOW - timedelta(minutes=10), status=S.EXPIRED)
    assert dashboard.pumping_signals(now=NOW) == []
    add(1, at=NOW - timedelta(minutes=10), status=S.EXPIRED)
    assert {s.key for s in dashboard.pumping_signals(now=NOW)} == {"IN", "+91987654"}


def test_dashboard_page_shows_the_pumping_warning(admin_client):
    add(60, at=timezone.now() - timedelta(minutes=5), status=S.EXPIRED)
    html = admin_client.get(
        "/admin/django_verifynow/verificationattempt/dashboard/"
    ).content.decode()
    assert 'role="alert"' in html and "Possible SMS pumping" in html
    assert "+91987654xxxx" in html and html.count('class="vn-pumping-row"') == 4


# -- chart -----------------------------------------------------------------------------


def test_chart_geometry():
    add(10, at=NOW - timedelta(hours=1))
    add(10, at=NOW - timedelta(hours=1), status=S.EXPIRED)
    add(5, at=NOW - timedelta(days=1))
    days = dashboard.daily_stats(now=NOW)
    c = dashboard.chart(days)
    plot_height = c.plot_bottom - c.plot_top
    assert len(c.sends) == len(c.verified) == 30
    assert c.sends[-1].height == plot_height  # 20 sends: the nice maximum is 20
    assert c.verified[-1].height == plot_height / 2
    assert c.sends[0].height == 0
    assert len(c.conversion_points.split()) == 2  # only days with sends
    assert c.y_ticks[-1][1] == 20
    assert "2026-03-15: 20 sent, 10 verified, 50%" == c.sends[-1].title


# -- effective expiry ------------------------------------------------------------------

DASHBOARD_URL = "/admin/django_verifynow/verificationattempt/dashboard/"


def test_lapsed_pending_attempt_counts_as_expired(admin_client):
    now = timezone.now()
    # Stored pending, code life over ten minutes ago: expired, though no job rewrote it.
    add(
        1,
        at=now - timedelta(minutes=20),
        status=S.PENDING,
        expires_at=now - timedelta(minutes=10),
    )
    add(
        1,
        at=now - timedelta(minutes=1),
        status=S.PENDING,
        expires_at=now + timedelta(minutes=9),
        phone="+447911123456",
    )
    total = dashboard.summary(now=now)
    assert total.expired == 1
    assert total.sends == 2  # both sent a code
    assert VerificationAttempt.objects.filter(status=S.PENDING).count() == 2
    html = admin_client.get(DASHBOARD_URL).content.decode()
    assert '<b id="vn-total-expired">1</b>' in html


# -- sends are real SMS ----------------------------------------------------------------


def test_a_reused_code_is_no_send_but_its_verification_counts(admin_client):
    # The SMS went out with the first attempt; VerifyNow kept that code (506) for the
    # second one, which sent nothing and got verified.
    add(1, at=NOW - timedelta(minutes=10), status=S.EXPIRED)
    add(1, at=NOW - timedelta(minutes=5), status=S.VERIFIED, code_sent=False)
    total = dashboard.summary(now=NOW)
    assert (total.sends, total.verified, total.conversion) == (1, 1, 1.0)
    today = dashboard.daily_stats(now=NOW)[-1]
    assert (today.sends, today.verified, today.conversion) == (1, 1, 1.0)
    countries = dashboard.top_countries(now=NOW)
    assert [(c.country, c.sends, c.verified) for c in countries] == [("IN", 1, 1)]
    # The page, as of the real clock.
    VerificationAttempt.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    html = admin_client.get(DASHBOARD_URL).content.decode()
    assert '<b id="vn-total-sends">1</b>' in html
    assert '<b id="vn-total-verified">1</b>' in html
    assert '<b id="vn-total-conversion">100 %</b>' in html


def test_pumping_ignores_reused_codes():
    # 60 attempts in the last hour that reused a code already sent: no SMS went out.
    add(60, at=NOW - timedelta(minutes=10), status=S.EXPIRED, code_sent=False)
    assert dashboard.pumping_signals(now=NOW) == []
    add(50, at=NOW - timedelta(minutes=10), status=S.EXPIRED)
    found = dashboard.pumping_signals(now=NOW)
    assert {s.key for s in found} == {"IN", "+91987654"}
    assert {s.sends for s in found} == {50}


# -- out of credit (508) ---------------------------------------------------------------


def attempt_at(at, *, status, code=None, vid="", code_sent=True):
    return VerificationAttempt.objects.create(
        phone_number="+919876543210",
        country="IN",
        status=status,
        created_at=at,
        last_response_code=code,
        provider_verification_id=vid,
        code_sent=code_sent,
    )


def refusal(at):
    """A send VerifyNow refused for insufficient balance, as the services record it."""
    return attempt_at(at, status=S.FAILED, code=508)


def test_out_of_credit_since_the_first_refusal_after_the_last_real_send():
    refusal(NOW - timedelta(hours=5))  # before a send that went through: topped up
    attempt_at(NOW - timedelta(hours=4), status=S.VERIFIED, vid="1001")
    for hours in (3, 2, 1):
        refusal(NOW - timedelta(hours=hours))
    # Neither proves the account has credit: a 506 reuse sent nothing, and a send
    # refused for another reason sent nothing either.
    attempt_at(
        NOW - timedelta(minutes=30), status=S.PENDING, vid="1001", code_sent=False
    )
    attempt_at(NOW - timedelta(minutes=20), status=S.FAILED, code=511)
    assert dashboard.out_of_credit_since(now=NOW) == CreditOutage(
        since=NOW - timedelta(hours=3),
        latest=NOW - timedelta(hours=1),
        refusals=3,
        last_sent=NOW - timedelta(hours=4),
    )


def test_a_real_send_after_the_refusals_ends_the_outage():
    refusal(NOW - timedelta(hours=2))
    # Sent for real (a vendor id), even if its code has since expired.
    attempt_at(NOW - timedelta(hours=1), status=S.EXPIRED, vid="1002")
    assert dashboard.out_of_credit_since(now=NOW) is None


def test_a_send_without_a_vendor_id_proves_nothing():
    refusal(NOW - timedelta(hours=2))
    attempt_at(NOW - timedelta(hours=1), status=S.UNKNOWN)  # timed out: no vendor id
    outage = dashboard.out_of_credit_since(now=NOW)
    assert outage is not None and outage.refusals == 1 and outage.last_sent is None


def test_refusals_older_than_a_day_are_forgotten():
    refusal(NOW - timedelta(hours=25))
    assert dashboard.out_of_credit_since(now=NOW) is None
    refusal(NOW - timedelta(hours=23))
    outage = dashboard.out_of_credit_since(now=NOW)
    assert outage is not None and outage.refusals == 1
    assert outage.since == NOW - timedelta(hours=23)


def test_dashboard_page_shows_the_out_of_credit_banner(admin_client):
    now = timezone.now()
    attempt_at(now - timedelta(hours=2), status=S.VERIFIED, vid="1003")
    first = refusal(now - timedelta(minutes=90))
    refusal(now - timedelta(minutes=60))
    html = admin_client.get(DASHBOARD_URL).content.decode()
    assert 'id="vn-credit"' in html
    banner = " ".join(html.split('id="vn-credit"')[1].split("</li>")[0].split())
    assert "refused sends for insufficient balance since" in banner
    since = formats.date_format(timezone.localtime(first.created_at), "DATETIME_FORMAT")
    assert since in banner
    assert "2 refusals" in banner and "Top up the VerifyNow account" in banner
    # A code that really went out since then: the account was topped up.
    attempt_at(now - timedelta(minutes=1), status=S.PENDING, vid="1004")
    html = admin_client.get(DASHBOARD_URL).content.decode()
    assert 'id="vn-credit"' not in html
