"""The attempt-history admin: rendered content with real data, masking and the
full-number permission, search normalisation, filters, read-only pages, CSV export,
the dashboard page, and query counts that do not grow with the page size."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_verifynow.admin import (
    BoundedCountPaginator,
    VerificationAttemptAdmin,
    phone_search_candidates,
)
from django_verifynow.models import (
    AttemptStatus,
    CheckOutcome,
    VerificationAttempt,
    VerificationCheck,
)

pytestmark = pytest.mark.django_db

PHONE = "+919876543210"
MASKED = "+91********10"
OTHER = "+447911123456"
CHANGELIST = "admin:django_verifynow_verificationattempt_changelist"
DASHBOARD = "admin:django_verifynow_verificationattempt_dashboard"
CHANGE = "admin:django_verifynow_verificationattempt_change"


def attempt(phone=PHONE, **fields):
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


def many(n, phone=PHONE, **fields):
    now = timezone.now()
    VerificationAttempt.objects.bulk_create(
        VerificationAttempt(
            phone_number=phone,
            country="IN",
            status=AttemptStatus.EXPIRED,
            created_at=now - timedelta(minutes=i),
            **fields,
        )
        for i in range(n)
    )


def full_number_permission():
    ct = ContentType.objects.get_for_model(VerificationAttempt)
    perm, _ = Permission.objects.get_or_create(
        codename="view_full_phone_number",
        content_type=ct,
        defaults={"name": "Can view full phone numbers"},
    )
    return perm


def staff(username="operator", *perms):
    user = get_user_model().objects.create_user(username, is_staff=True)
    ct = ContentType.objects.get_for_model(VerificationAttempt)
    user.user_permissions.add(
        Permission.objects.get(codename="view_verificationattempt", content_type=ct)
    )
    for perm in perms:
        user.user_permissions.add(perm)
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def operator_client(client):
    client.force_login(staff())
    return client


def changelist(client, **params):
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return response


# -- rendering and masking -------------------------------------------------------------


def test_changelist_shows_the_attempt_masked(operator_client):
    user = get_user_model().objects.create_user("alice")
    a = attempt(user=user, flow_type="WHATSAPP", check_count=2, purpose="signup")
    html = changelist(operator_client).content.decode()
    assert (
        f'<td class="field-phone"><span class="verifynow-line">{MASKED}</span><br>'
        '<span class="verifynow-quiet">IN</span></td>'
    ) in html
    assert PHONE not in html and "9876543210" not in html
    assert "verifynow-status-pending" in html and ">Pending<" in html
    assert "WhatsApp" in html and "signup" in html and "203.0.113.7" in html
    assert reverse("admin:auth_user_change", args=[user.pk]) in html
    assert (
        reverse("admin:django_verifynow_verificationattempt_change", args=[a.pk])
        in html
    )
    assert reverse(DASHBOARD) in html
    assert "1 verification attempt" in html


def test_full_numbers_need_the_permission(client):
    attempt()
    client.force_login(staff("trusted", full_number_permission()))
    html = changelist(client).content.decode()
    assert f'<td class="field-phone_full"><span class="verifynow-line">{PHONE}' in html
    assert 'class="field-phone"' not in html


def test_superuser_sees_full_numbers(admin_client):
    attempt()
    assert PHONE in changelist(admin_client).content.decode()


def test_no_add_button_and_add_page_forbidden(admin_client):
    attempt()
    html = changelist(admin_client).content.decode()
    assert reverse("admin:django_verifynow_verificationattempt_add") not in html
    assert (
        admin_client.get(
            reverse("admin:django_verifynow_verificationattempt_add")
        ).status_code
        == 403
    )


def test_change_page_is_read_only_with_check_history(operator_client):
    a = attempt(
        status=AttemptStatus.VERIFIED,
        check_count=2,
        last_response_code=200,
        session_binding="s" * 64,
    )
    VerificationCheck.objects.create(
        attempt=a,
        outcome=CheckOutcome.WRONG_CODE,
        response_code=702,
        ip_address="198.51.100.1",
    )
    VerificationCheck.objects.create(
        attempt=a, outcome=CheckOutcome.VERIFIED, response_code=200
    )
    url = reverse("admin:django_verifynow_verificationattempt_change", args=[a.pk])
    html = operator_client.get(url).content.decode()
    assert (
        "Wrong code" in html
        and "702 WRONG_OTP_PROVIDED" in html
        and "198.51.100.1" in html
    )
    checks = html.split('id="checks-group"')[1]
    assert checks.index("Wrong code") < checks.index("200 SUCCESS")
    assert MASKED in html and PHONE not in html
    assert "s" * 64 not in html
    assert 'name="_save"' not in html and 'name="phone_number"' not in html
    # A POST changes nothing.
    operator_client.post(url, {"status": "verified", "phone_number": "+10000000000"})
    a.refresh_from_db()
    assert a.phone_number == PHONE


@pytest.mark.parametrize(
    "status, extra, expected",
    [
        (AttemptStatus.VERIFIED, {}, "2 of 5 checks used"),
        (AttemptStatus.LOCKED, {}, "2 of 5 checks used"),
        (AttemptStatus.PENDING, {}, "2 of 5 checks used, 3 left"),
        # Stored pending, but its code life is over: settled, no "left".
        (
            AttemptStatus.PENDING,
            {"expires_at": timezone.now() - timedelta(minutes=1)},
            "2 of 5 checks used",
        ),
    ],
)
def test_change_page_says_checks_used_of_allowed(
    operator_client, status, extra, expected
):
    a = attempt(status=status, check_count=2, max_attempts=5, **extra)
    html = operator_client.get(reverse(CHANGE, args=[a.pk])).content.decode()
    found = re.search(
        r'field-checks_used.*?<div class="readonly">(.*?)</div>', html, re.S
    )
    assert found and found.group(1) == expected
    assert "Checks left" not in html and "checks left" not in html
    assert "Checks used:" not in html  # one line, not three


def test_change_page_full_number_with_permission(client):
    a = attempt()
    client.force_login(staff("trusted", full_number_permission()))
    html = client.get(
        reverse("admin:django_verifynow_verificationattempt_change", args=[a.pk])
    ).content.decode()
    assert PHONE in html


def test_delete_only_for_superusers(client, admin_client):
    a = attempt()
    ct = ContentType.objects.get_for_model(VerificationAttempt)
    user = staff(
        "deleter",
        Permission.objects.get(codename="delete_verificationattempt", content_type=ct),
    )
    client.force_login(user)
    url = reverse("admin:django_verifynow_verificationattempt_delete", args=[a.pk])
    assert client.get(url).status_code == 403
    assert admin_client.get(url).status_code == 200
    admin_client.post(url, {"post": "yes"})
    assert not VerificationAttempt.objects.filter(pk=a.pk).exists()


def test_changelist_columns_are_few_and_narrow(operator_client):
    user = get_user_model().objects.create_user("frank")
    a = attempt(
        user=user, flow_type="WHATSAPP", check_count=2, created_at=timezone.now()
    )
    response = changelist(operator_client)
    html = response.content.decode()
    # Six columns (and the checkbox) instead of nine: two values share each cell.
    assert list(response.context["cl"].list_display) == [
        "action_checkbox",
        "created",
        "phone",
        "status_badge",
        "purpose_channel",
        "checks",
        "requester",
    ]
    assert "django_verifynow/admin/changelist.css" in html
    local = timezone.localtime(a.created_at)
    created = html.split('<th class="field-created">')[1].split("</th>")[0]
    assert f'<time datetime="{a.created_at.isoformat()}">' in created
    assert f"{local:%Y}" in created and reverse(CHANGE, args=[a.pk]) in created
    purpose = html.split('<td class="field-purpose_channel">')[1].split("</td>")[0]
    assert purpose == 'signup<br><span class="verifynow-quiet">WhatsApp</span>'
    checks = html.split('<td class="field-checks">')[1].split("</td>")[0]
    assert checks == '<span title="2 of 5 checks used, 3 left">2/5</span>'
    requester = html.split('<td class="field-requester">')[1].split("</td>")[0]
    assert reverse("admin:auth_user_change", args=[user.pk]) in requester
    assert '<span class="verifynow-quiet">203.0.113.7</span>' in requester
    # Still sortable by time only (the indexed order).
    assert "sortable column-created" in html
    assert "column-phone sortable" not in html


def test_unfiltered_list_has_no_show_all(operator_client):
    attempt()
    attempt(OTHER, status=AttemptStatus.VERIFIED)
    html = changelist(operator_client).content.decode()
    toolbar = html.split('id="toolbar"')[1].split("</form>")[0]
    assert "Show all" not in toolbar and "results" not in toolbar
    assert "2 verification attempts" in html  # the count is still there, once
    # Narrowed lists say how many matched, with a link back to everything.
    local = timezone.localtime(timezone.now())
    for params in (
        {"q": PHONE},
        {"status__exact": "verified"},
        {"country": "GB"},
        {"created_at__year": local.year},
    ):
        html = changelist(operator_client, **params).content.decode()
        toolbar = html.split('id="toolbar"')[1].split("</form>")[0]
        assert "Show all" in toolbar and "result" in toolbar, params
    # Sorting or paging is no filter.
    html = changelist(operator_client, o="-1").content.decode()
    assert "Show all" not in html.split('id="toolbar"')[1].split("</form>")[0]


# -- search ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "term",
    [
        "+919876543210",
        "+91 98765 43210",
        "0091-98765-43210",
        "919876543210",
        "(+91) 98765-43210",
    ],
)
def test_search_normalises_the_number(operator_client, term):
    mine = attempt()
    attempt(OTHER)
    attempt("+919812345678")
    result = list(changelist(operator_client, q=term).context["cl"].result_list)
    assert result == [mine]


def test_search_national_format_with_allowed_countries(operator_client):
    uk = attempt(OTHER)
    attempt()
    # Tried in each allowed country: several may be valid; only existing rows match.
    assert "+447911123456" in phone_search_candidates("07911 123456")
    assert phone_search_candidates("not a number 12") == []
    assert list(
        changelist(operator_client, q="07911 123456").context["cl"].result_list
    ) == [uk]


def test_search_by_vendor_id_attempt_id_and_user(operator_client):
    user = get_user_model().objects.create_user("bob", email="bob@example.com")
    a = attempt(provider_verification_id="12345678")
    b = attempt(OTHER, user=user)
    c = attempt("+919812345678")
    assert list(
        changelist(operator_client, q="12345678").context["cl"].result_list
    ) == [a]
    assert list(changelist(operator_client, q="bob").context["cl"].result_list) == [b]
    assert list(
        changelist(operator_client, q="BOB@example.com").context["cl"].result_list
    ) == [b]
    assert list(changelist(operator_client, q=str(c.pk)).context["cl"].result_list) == [
        c
    ]
    assert (
        list(changelist(operator_client, q="no such thing").context["cl"].result_list)
        == []
    )


def test_search_is_exact_not_substring(operator_client):
    attempt()
    assert list(changelist(operator_client, q="98765").context["cl"].result_list) == []


# -- filters and date hierarchy --------------------------------------------------------


def test_filters(operator_client):
    a = attempt(status=AttemptStatus.VERIFIED, purpose="signup", flow_type="SMS")
    b = attempt(
        OTHER, status=AttemptStatus.LOCKED, purpose="login", flow_type="WHATSAPP"
    )
    assert list(
        changelist(operator_client, status__exact="locked").context["cl"].result_list
    ) == [b]
    assert list(
        changelist(operator_client, country="IN").context["cl"].result_list
    ) == [a]
    assert list(
        changelist(operator_client, purpose="login").context["cl"].result_list
    ) == [b]
    assert list(
        changelist(operator_client, flow_type__exact="SMS").context["cl"].result_list
    ) == [a]
    html = changelist(operator_client).content.decode()
    assert (
        "?purpose=login" in html and "?purpose=signup" in html and "?country=GB" in html
    )


def test_date_hierarchy_without_distinct_scan(operator_client):
    now = timezone.now()
    attempt(created_at=now - timedelta(days=400))
    recent = attempt(created_at=now)
    with CaptureQueriesContext(connection) as ctx:
        html = changelist(operator_client).content.decode()
    assert f"?created_at__year={now.year}" in html
    assert f"?created_at__year={now.year - 1}" in html
    assert not [q for q in ctx.captured_queries if "DISTINCT" in q["sql"].upper()]
    local = timezone.localtime(now)
    drilled = changelist(
        operator_client, created_at__year=local.year, created_at__month=local.month
    )
    assert list(drilled.context["cl"].result_list) == [recent]
    assert f"created_at__day={local.day}" in drilled.content.decode()


# -- large tables ----------------------------------------------------------------------


def _queries(client, **params):
    with CaptureQueriesContext(connection) as ctx:
        changelist(client, **params)
    return [q["sql"] for q in ctx.captured_queries]


def test_query_count_does_not_grow_with_the_page(
    operator_client, django_assert_max_num_queries
):
    user = get_user_model().objects.create_user("carol")
    many(3, user=user)
    small = _queries(operator_client)
    many(150, user=user)
    with django_assert_max_num_queries(len(small)):
        response = changelist(operator_client)
    assert len(response.context["cl"].result_list) == 100
    assert (
        len(_queries(operator_client, q=PHONE)) <= len(small) + 1
    )  # + the user lookup
    assert len(_queries(operator_client, status__exact="expired", country="IN")) == len(
        small
    )


def test_counts_are_bounded(operator_client):
    many(5)
    for sql in _queries(operator_client):
        if "COUNT(" in sql.upper():
            assert "LIMIT" in sql.upper(), sql


def test_count_capped_says_more_than(operator_client, monkeypatch):
    many(30)
    monkeypatch.setattr(VerificationAttemptAdmin, "count_limit", 20)
    monkeypatch.setattr(VerificationAttemptAdmin, "list_per_page", 10)
    response = changelist(operator_client)
    html = response.content.decode()
    assert response.context["cl"].paginator.capped is True
    assert "More than 20 verification attempts" in html
    assert "Select all matching" in html


def test_bounded_paginator_exact_below_the_limit():
    many(7)
    paginator = BoundedCountPaginator(
        VerificationAttempt.objects.order_by("-created_at"), 5, limit=10
    )
    assert (
        paginator.count == 7 and paginator.capped is False and paginator.num_pages == 2
    )


# -- CSV export ------------------------------------------------------------------------


def _export(client, *attempts):
    response = client.post(
        reverse(CHANGELIST),
        {"action": "export_csv", "_selected_action": [str(a.pk) for a in attempts]},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def test_csv_export_masked(operator_client):
    user = get_user_model().objects.create_user("=HYPERLINK(evil)")
    a = attempt(
        user=user, status=AttemptStatus.VERIFIED, check_count=1, last_response_code=200
    )
    attempt(OTHER)
    rows = _export(operator_client, a)
    assert rows[0][:5] == ["id", "created_at", "phone_number", "country", "status"]
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["id"] == str(a.pk) and row["phone_number"] == MASKED
    assert (
        row["status"] == "verified"
        and row["checks_used"] == "1"
        and row["country"] == "IN"
    )
    assert row["user"] == "'=HYPERLINK(evil)"  # not a formula in a spreadsheet
    assert not any("code" == h for h in rows[0])


def test_csv_export_full_with_permission(client):
    a = attempt()
    client.force_login(staff("trusted", full_number_permission()))
    rows = _export(client, a)
    assert rows[1][2] == PHONE


# -- dashboard page --------------------------------------------------------------------


def test_dashboard_page(operator_client, django_assert_max_num_queries):
    for i in range(4):
        attempt(status=AttemptStatus.VERIFIED if i < 3 else AttemptStatus.LOCKED)
    attempt(OTHER, status=AttemptStatus.FAILED, last_response_code=511)
    with django_assert_max_num_queries(14):
        response = operator_client.get(reverse(DASHBOARD))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<svg" in html and "<script" not in html.split('id="content-main"')[1]
    assert '<b id="vn-total-sends">4</b>' in html
    assert '<b id="vn-total-verified">3</b>' in html
    assert '<b id="vn-total-conversion">75 %</b>' in html
    assert "511 INVALID_COUNTRY_CODE" in html
    assert html.count('class="vn-sends"') == 30
    assert "No country or prefix shows the pumping signature" in html


def test_dashboard_needs_view_permission(client):
    user = get_user_model().objects.create_user("clerk", is_staff=True)
    client.force_login(user)
    assert client.get(reverse(DASHBOARD)).status_code == 403
    client.logout()
    assert client.get(reverse(DASHBOARD)).status_code == 302


# -- effective expiry (one truth for expiry) -------------------------------------------


def lapsed(phone=PHONE, **fields):
    """An attempt still stored ``pending`` whose code life ended ten minutes ago."""
    now = timezone.now()
    return attempt(
        phone,
        status=AttemptStatus.PENDING,
        created_at=now - timedelta(minutes=20),
        expires_at=now - timedelta(minutes=10),
        **fields,
    )


def test_status_filter_lists_a_lapsed_pending_attempt_under_expired(operator_client):
    stale = lapsed()
    live = attempt(OTHER)  # pending, expires in ten minutes
    stored = attempt("+919812345678", status=AttemptStatus.EXPIRED)
    expired = changelist(operator_client, status__exact="expired").context["cl"]
    assert set(expired.result_list) == {stale, stored}
    pending = changelist(operator_client, status__exact="pending").context["cl"]
    assert list(pending.result_list) == [live]
    # The filter offers every status under its usual parameter.
    html = changelist(operator_client).content.decode()
    assert "?status__exact=expired" in html and "?status__exact=pending" in html
    # Nothing rewrote the row: the state is computed, not stored.
    stale.refresh_from_db()
    assert stale.status == AttemptStatus.PENDING


def test_lapsed_pending_attempt_shows_expired_in_list_page_and_export(
    operator_client,
):
    stale = lapsed()
    html = changelist(operator_client).content.decode()
    assert "verifynow-status-expired" in html and ">Expired<" in html
    assert "verifynow-status-pending" not in html
    page = operator_client.get(reverse(CHANGE, args=[stale.pk])).content.decode()
    assert "verifynow-status-expired" in page
    assert "verifynow-status-pending" not in page
    rows = _export(operator_client, stale)
    assert dict(zip(rows[0], rows[1], strict=True))["status"] == "expired"


# -- search by the user (a consumed signup attempt is linked to its user) --------------


def test_search_by_username_finds_the_consumed_signup_attempt(operator_client):
    user = get_user_model().objects.create_user("dave")
    now = timezone.now()
    signup = attempt(
        user=user,
        status=AttemptStatus.VERIFIED,
        purpose="signup",
        verified_at=now,
        consumed_at=now,
    )
    attempt(OTHER, purpose="signup")  # the same purpose, no user
    attempt("+919812345678", user=get_user_model().objects.create_user("dave2"))
    response = changelist(operator_client, q="dave")
    assert list(response.context["cl"].result_list) == [signup]  # exact, not a prefix
    assert "=user__username" in response.context["cl"].search_fields


def test_search_follows_the_user_models_username_field(operator_client, monkeypatch):
    user = get_user_model().objects.create_user("erin-login", first_name="erin")
    mine = attempt(user=user)
    attempt(OTHER)
    # A custom user model that logs in with another field than ``username``.
    monkeypatch.setattr(get_user_model(), "USERNAME_FIELD", "first_name")
    response = changelist(operator_client, q="erin")
    assert list(response.context["cl"].result_list) == [mine]
    assert "=user__first_name" in response.context["cl"].search_fields
    by_login = changelist(operator_client, q="erin-login").context["cl"]
    assert list(by_login.result_list) == []
