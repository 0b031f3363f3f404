"""Dashboard figures computed from known fixtures: per day, totals, countries, vendor
errors, blocked sends, the SMS-pumping signature and the chart geometry."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
import time_machine
from django.utils import formats, timezone

from django_verifynow import dashboard, signals
from django_verifynow.dashboard import CreditOutage
from django_verifynow.models import (
    AttemptStatus,
    CheckOutcome,
    DailyAttemptStat,
    VerificationAttempt,
    VerificationCheck,
)
from django_verifynow.reasons import Reason

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


def test_every_reason_has_a_translatable_label():
    from django.utils.functional import Promise

    from django_verifynow.reasons import BLOCKED_REASONS, Reason

    assert set(dashboard.REASON_LABELS) == set(Reason)
    labels = [dashboard.REASON_LABELS[r] for r in Reason]
    assert all(isinstance(label, Promise) for label in labels)  # gettext_lazy
    assert len({str(label) for label in labels}) == len(labels)  # never ambiguous
    for reason in Reason:
        assert dashboard.reason_label(reason.value) == str(
            dashboard.REASON_LABELS[reason]
        )
        assert dashboard.reason_label(reason.value) != reason.value
    assert BLOCKED_REASONS <= set(dashboard.REASON_LABELS)


def test_reason_labels_for_keys_counted_before_typed_reasons():
    assert dashboard.reason_label("rate_limited:prefix") == str(
        dashboard.REASON_LABELS[Reason.PREFIX_BLOCKED]
    )
    assert dashboard.reason_label("rate_limited:send") == "Rate limit (send)"
    assert dashboard.reason_label("unknown") == "Unknown reason"
    assert dashboard.reason_label("something_new") == "something_new"  # never hidden


def test_dashboard_page_shows_reason_labels_not_keys(admin_client):
    for reason in [Reason.PHONE_LIMIT, Reason.PHONE_LIMIT, "rate_limited:send"]:
        signals.verification_blocked.send(
            sender=VerificationAttempt, attempt=None, request=None, reason=reason
        )
    html = admin_client.get(DASHBOARD_URL).content.decode()
    table = html.split('id="vn-blocked"')[1].split("</section>")[0]
    rows = re.findall(
        r'<tr class="vn-blocked-row"><td title="([^"]*)">([^<]*)</td>'
        r'<td class="num">(\d+)</td>',
        table,
    )
    assert rows == [
        ("phone_limit", "Limit per phone number", "2"),
        ("rate_limited:send", "Rate limit (send)", "1"),
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
    assert len(c.sends) == len(c.verified) == 30 and not c.per_week
    assert c.sends[-1].height == plot_height  # 20 sends: the nice maximum is 20
    assert c.verified[-1].height == plot_height / 2
    assert c.sends[0].height == 0
    assert len(c.conversion) == 2  # only days with sends
    assert len(c.conversion_segments) == 1  # yesterday and today are neighbours
    assert c.y_ticks[-1].value == 20
    assert "2026-03-15: 20 sent, 10 verified, 50 % converted" == c.sends[-1].title
    # Percent of the plot's width: the 30 days share 100 %, today's bars at the end.
    assert 0 < c.sends[0].x < c.sends[-1].x < c.verified[-1].x < 100
    assert c.verified[-1].x + c.verified[-1].width <= 100


def one_day(sends, verified=None, *, days=30):
    """A window of ``days`` days whose only data is today's."""
    first = NOW.date() - timedelta(days=days - 1)
    series = [
        dashboard.DayStats(first + timedelta(days=n), 0, 0, 0) for n in range(days)
    ]
    series[-1] = dashboard.DayStats(
        NOW.date(), sends, sends if verified is None else verified, 0
    )
    return series


@pytest.mark.parametrize(
    "sends, labels",
    [
        (1, ["0", "1"]),
        (7, ["0", "2", "4", "6", "8"]),
        (1_000_000, ["0", "500,000", "1,000,000"]),
    ],
)
def test_y_ticks_are_exact_and_distinct_at_any_scale(sends, labels):
    c = dashboard.chart(one_day(sends))
    assert [t.label for t in c.y_ticks] == labels
    values = [t.value for t in c.y_ticks]
    assert values == sorted(set(values)) and all(v == int(v) for v in values)
    steps = {b - a for a, b in zip(values, values[1:], strict=False)}
    assert len(steps) == 1  # evenly spaced
    # The axis is honest: each gridline sits where its value's bar would end.
    plot = c.plot_bottom - c.plot_top
    for t in c.y_ticks:
        assert t.y == pytest.approx(c.plot_bottom - plot * t.value / values[-1])
    assert c.sends[-1].height == pytest.approx(plot * sends / values[-1])
    # The axis column is wide enough for its longest label.
    assert c.axis_width >= 7 * max(len(label) for label in labels)


@pytest.mark.parametrize("maximum", [0, 1, 2, 3, 5, 9, 10, 11, 99, 101, 12_345, 10**9])
def test_nice_ticks_use_1_2_5_steps(maximum):
    ticks = dashboard.nice_ticks(maximum)
    step = ticks[1]
    assert ticks[0] == 0 and ticks[-1] >= max(maximum, 1) and 2 <= len(ticks) <= 5
    assert ticks == list(range(0, ticks[-1] + 1, step))
    assert int(str(step).rstrip("0") or "0") in (1, 2, 5)


def test_one_day_of_data_draws_a_conversion_dot():
    c = dashboard.chart(one_day(4, 3))
    assert len(c.conversion) == 1 and c.conversion_segments == []
    dot = c.conversion[0]
    plot = c.plot_bottom - c.plot_top
    assert dot.y == pytest.approx(c.plot_bottom - plot * 0.75)
    assert "75 %" in dot.title
    # The dot is centred on today's slot, between its two bars.
    assert c.sends[-1].x < dot.x < c.verified[-1].x + c.verified[-1].width


def test_conversion_line_breaks_on_days_without_sends():
    series = one_day(2, 1)
    day = series[-1].day
    series[-4] = dashboard.DayStats(day - timedelta(days=3), 4, 4, 0)
    series[-3] = dashboard.DayStats(day - timedelta(days=2), 4, 2, 0)
    # day - 1: no sends, so no conversion to join across.
    c = dashboard.chart(series)
    assert len(c.conversion) == 3
    assert [(s.x1, s.x2) for s in c.conversion_segments] == [
        (c.conversion[0].x, c.conversion[1].x)
    ]


def test_equal_sends_and_verified_stand_side_by_side():
    c = dashboard.chart(one_day(5, 5))
    sent, verified = c.sends[-1], c.verified[-1]
    assert sent.height == verified.height > 0
    # Both visible: next to each other within today's slot, never one over the other.
    slot = 100 / 30
    assert 100 - slot <= sent.x < sent.x + sent.width <= verified.x
    assert verified.x + verified.width <= 100


def test_conversion_above_100_percent_stretches_its_axis():
    # Two reused codes verified today for one SMS sent today: 200 %, shown as such.
    c = dashboard.chart(one_day(1, 2))
    assert [t.label for t in c.conversion_ticks][-1] == "200 %"
    assert c.conversion[0].y == pytest.approx(c.plot_top)
    assert [t.label for t in dashboard.chart(one_day(4, 3)).conversion_ticks] == [
        "0 %",
        "50 %",
        "100 %",
    ]


def test_long_windows_are_drawn_per_week():
    series = one_day(3, 1, days=365)
    series[0] = dashboard.DayStats(series[0].day, 2, 2, 0)
    c = dashboard.chart(series)
    assert c.per_week and c.period_days == 7
    assert len(c.sends) == len(c.verified) == 53  # 52 weeks and the oldest day
    assert c.sends[-1].title.startswith(
        f"{NOW.date() - timedelta(days=6):%Y-%m-%d} – {NOW.date():%Y-%m-%d}: 3 sent"
    )
    assert c.sends[0].title.startswith(f"{series[0].day:%Y-%m-%d}: 2 sent")
    assert 2 <= len(c.x_labels) <= 6
    assert dashboard.chart(series[-62:]).period_days == 1


def test_every_other_day_label_is_minor_from_the_newest():
    c = dashboard.chart(one_day(1))
    assert [label.label for label in c.x_labels][-1] == "Mar 15"  # today
    assert [label.minor for label in c.x_labels] == [True, False] * 3


def svg(html, cls):
    """The inner markup of the dashboard's ``<svg class="vn-… {cls}">``."""
    return html.split(f'class="vn-axis {cls}"' if "axis" in cls else f'class="{cls}"')[
        1
    ].split("</svg>")[0]


def test_dashboard_page_draws_the_chart(admin_client):
    add(1, at=timezone.now() - timedelta(minutes=5))
    html = admin_client.get(DASHBOARD_URL).content.decode()
    axis = svg(html, "vn-axis-sends")
    assert re.findall(r">([^<>]+)</text>", axis) == ["0", "1"]
    plot = svg(html, "vn-plot")
    assert plot.count('<circle class="vn-conversion-dot"') == 1
    assert plot.count('class="vn-sends"') == plot.count('class="vn-verified"') == 30
    assert "viewBox" not in html.split('id="vn-chart"')[1].split("</figure>")[0]
    for swatch in ("sends", "verified", "conversion"):
        assert f'class="vn-swatch vn-swatch-{swatch}"' in html
    assert "django_verifynow/admin/dashboard.css" in html
    assert "<style" not in html.split('id="content-main"')[1]


def test_chart_coordinates_are_never_localised(admin_client, settings):
    # French writes 12,5: no SVG coordinate may have a decimal comma.
    settings.LANGUAGE_CODE = "fr"
    add(7, at=timezone.now() - timedelta(minutes=5))
    add(3, at=timezone.now() - timedelta(days=2), status=S.EXPIRED)
    html = admin_client.get(DASHBOARD_URL).content.decode()
    chart_html = html.split('id="vn-chart"')[1].split("</figure>")[0]
    coordinates = re.findall(
        r'\b(?:x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"', chart_html
    )
    assert coordinates and not [c for c in coordinates if "," in c]


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


# -- purged days (DailyAttemptStat) ----------------------------------------------------


def purge(*args):
    from django.core.management import call_command

    call_command("verifynow_purge", *args, stdout=io.StringIO())


def figures(days, now):
    """What the page shows, minus what the purge cannot keep (consumed, codes)."""
    o = dashboard.overview(days, now=now)
    total = o.summary
    return (
        o.days,
        (total.sends, total.verified, total.locked, total.failed, total.unknown),
        total.expired,
        o.countries,
    )


#: 14:00 UTC: ``--days 33`` puts the purge's cutoff at 14:00 on SPLIT_DAY.
PURGE_NOW = datetime(2026, 3, 15, 14, 0, tzinfo=dt_timezone.utc)
SPLIT_DAY = PURGE_NOW - timedelta(days=33)


def test_a_day_split_by_the_purge_is_counted_once():
    morning, evening = SPLIT_DAY.replace(hour=8), SPLIT_DAY.replace(hour=20)
    add(3, at=morning)
    add(1, at=morning, status=S.EXPIRED, country="GB", phone="+447911123456")
    add(1, at=morning, status=S.FAILED, code=511)
    add(2, at=evening)
    add(1, at=evening, status=S.LOCKED)
    before = figures(90, PURGE_NOW)
    with time_machine.travel(PURGE_NOW, tick=False):
        purge("--days", "33")
    # The day really is split: its morning is in the counters, its evening in the table.
    assert sum(DailyAttemptStat.objects.values_list("attempts", flat=True)) == 5
    assert (
        VerificationAttempt.objects.filter(created_at__date=SPLIT_DAY.date()).count()
        == 3
    )
    after = figures(90, PURGE_NOW)
    assert after == before
    day = next(d for d in after[0] if d.day == SPLIT_DAY.date())
    assert (day.sends, day.verified, day.failed) == (7, 5, 1)
    assert [(c.country, c.sends) for c in after[3]] == [("IN", 6), ("GB", 1)]
    # A second run deletes nothing and counts nothing twice.
    with time_machine.travel(PURGE_NOW, tick=False):
        purge("--days", "33")
    assert figures(90, PURGE_NOW) == before
    # The response code did not survive: the vendor-error table says only what it
    # knows, and the overview says how much came from the counters.
    assert ("send", 511, 1) not in [
        (e.call, e.response_code, e.count)
        for e in dashboard.vendor_errors(90, now=PURGE_NOW)
    ]
    assert dashboard.overview(90, now=PURGE_NOW).purged == 5


def test_fully_purged_days_and_a_kept_pending_attempt():
    old = PURGE_NOW - timedelta(days=60)
    add(4, at=old)
    add(2, at=old, status=S.LOCKED)
    # Still pending and valid (the purge never deletes it), on the same old day.
    add(1, at=old, status=S.PENDING, expires_at=PURGE_NOW + timedelta(minutes=5))
    add(5, at=PURGE_NOW - timedelta(days=200), status=S.EXPIRED)
    before = figures(365, PURGE_NOW)
    with time_machine.travel(PURGE_NOW, tick=False):
        purge()
    assert VerificationAttempt.objects.count() == 1
    assert figures(365, PURGE_NOW) == before
    assert sum(d.sends for d in dashboard.daily_stats(365, now=PURGE_NOW)) == 12
    # The 30-day window does not reach back that far.
    assert sum(d.sends for d in dashboard.daily_stats(now=PURGE_NOW)) == 0


def test_purged_days_use_the_local_day_of_the_purge(settings):
    # 20:00 UTC is 01:30 the next day in India: both sides must say so.
    settings.TIME_ZONE = "Asia/Kolkata"
    at = datetime(2026, 1, 10, 20, 0, tzinfo=dt_timezone.utc)
    add(2, at=at)
    before = figures(90, PURGE_NOW)
    with time_machine.travel(PURGE_NOW, tick=False):
        purge()
    assert list(DailyAttemptStat.objects.values_list("day", flat=True)) == [
        datetime(2026, 1, 11).date()
    ]
    assert figures(90, PURGE_NOW) == before


def test_longer_windows_on_the_page_with_bounded_queries(
    admin_client, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    now = timezone.now()
    add(3, at=now - timedelta(minutes=5))
    # A year of purged days: one counter row per day, country and status.
    today = timezone.localdate()
    DailyAttemptStat.objects.bulk_create(
        DailyAttemptStat(
            day=today - timedelta(days=n),
            country=country,
            flow_type="SMS",
            status=status,
            attempts=10,
        )
        for n in range(31, 400)
        for country in ("IN", "GB")
        for status in (S.VERIFIED, S.EXPIRED)
    )
    counts = {}
    for days in (30, 90, 365):
        with CaptureQueriesContext(connection) as ctx:
            response = admin_client.get(DASHBOARD_URL, {"days": days})
        counts[days] = len(ctx.captured_queries)
        html = response.content.decode()
        assert response.context["window_days"] == days
        assert html.count("<tr><td>") >= days  # one table row per day
        sends = 3 + 40 * max(days - 31, 0)
        assert f'<b id="vn-total-sends">{sends:,}</b>' in html  # grouped
        assert ('id="vn-purged"' in html) == (days > 31)
    assert counts[30] == counts[90] == counts[365]  # the window never adds a query
    # Session, user, attempts, counters, checks, pumping (2), credit (2); the pumping
    # watch adds two when it has candidates.
    with django_assert_max_num_queries(11):
        admin_client.get(DASHBOARD_URL, {"days": 365})
    assert '<strong aria-current="page">365 days</strong>' in html
    assert 'href="?days=90"' in html and 'href="?days=30"' in html
    assert "(last 30 days)" in html  # blocked sends: the cache keeps a month


@pytest.mark.parametrize(
    "value, days", [("90", 90), ("0", 1), ("-5", 1), ("100000", 366), ("abc", 30)]
)
def test_window_parameter_is_bounded(admin_client, value, days):
    response = admin_client.get(DASHBOARD_URL, {"days": value})
    assert response.status_code == 200
    assert response.context["window_days"] == days
    assert len(response.context["days"]) == days
