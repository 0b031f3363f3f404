"""The admin's layout in a real browser: Playwright driving Debian's Chromium headless.

The dashboard chart at a phone's width (375 px) and a desktop's, in the light and the
dark admin themes: it never overflows its container, its labels keep a legible size
and never overlap, and its colours keep their contrast. The attempt history at
1366 px: its last column is visible without a horizontal scroll bar.

Never downloads a browser: ``scripts/install-browser.sh`` installs Debian's package.
Skipped with a reason when ``/usr/bin/chromium`` or Playwright is missing, unless
``VERIFYNOW_REQUIRE_SERVICES`` is set (``.ci/run``), which turns the skip into a
failure. Screenshots go to ``test-artifacts/screenshots/admin-*.png``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from django_verifynow.models import DailyAttemptStat, VerificationAttempt

from .chromium import SCREENSHOTS, WAIT

pytestmark = [pytest.mark.browser]

DASHBOARD = "/admin/django_verifynow/verificationattempt/dashboard/"
CHANGELIST = "/admin/django_verifynow/verificationattempt/"

#: The chart's figure (selectors that also match the chart before its rewrite, so these
#: tests fail on its layout, not on a missing id).
FIGURE = "#vn-summary figure"

#: Everything the chart shows as text (hidden labels aside), with its box in page
#: pixels.
LABEL_BOXES = """() => [
  ...document.querySelectorAll('#vn-summary figure svg text')
].filter(t => getComputedStyle(t).display !== 'none').map(t => {
  const r = t.getBoundingClientRect();
  return {text: t.textContent, left: r.left, right: r.right, top: r.top,
          bottom: r.bottom, size: parseFloat(getComputedStyle(t).fontSize)};
})"""

#: WCAG contrast of an element's colour property against the page background.
CONTRAST = """([selector, property]) => {
  const rgb = s => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = c => {
    const [r, g, b] = c.map(v => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const el = document.querySelector(selector);
  const fg = rgb(getComputedStyle(el)[property]);
  const bg = rgb(getComputedStyle(document.body).backgroundColor);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), colour: getComputedStyle(el)[property]};
}"""


@pytest.fixture
def admin_page(browser: Any, live_server: Any, transactional_db: None) -> Any:
    """Open a page as a logged-in superuser: ``admin_page(url, width, scheme)``."""
    user = get_user_model().objects.create_superuser("admin", "a@example.com", "x")
    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    contexts: list[Any] = []

    def open_page(url: str, width: int, scheme: str = "light") -> Any:
        context = browser.new_context(
            base_url=live_server.url,
            viewport={"width": width, "height": 900},
            color_scheme=scheme,
        )
        contexts.append(context)
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": cookie,
                    "url": live_server.url,
                }
            ]
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.set_default_timeout(WAIT)
        page.goto(url)
        page.wait_for_load_state("load")
        page.js_errors = errors
        return page

    yield open_page
    for context in contexts:
        context.close()


def add(n: int, *, at: Any, status: str = "verified", **fields: Any) -> None:
    VerificationAttempt.objects.bulk_create(
        VerificationAttempt(
            phone_number=f"+91987654{i:04d}",
            country="IN",
            status=status,
            created_at=at,
            **fields,
        )
        for i in range(n)
    )


def one_send() -> str:
    """The smallest chart: a single send, verified (the old axis read 0 0 0 1 1)."""
    add(1, at=timezone.now() - timedelta(minutes=5))
    return DASHBOARD


def a_million() -> str:
    """The widest labels: a purged day with a million verified sends, over 90 days."""
    DailyAttemptStat.objects.create(
        day=timezone.localdate() - timedelta(days=60),
        country="IN",
        flow_type="SMS",
        status="verified",
        attempts=1_000_000,
    )
    add(7, at=timezone.now() - timedelta(minutes=5))
    add(3, at=timezone.now() - timedelta(days=3), status="expired")
    return DASHBOARD + "?days=90"


def a_year() -> str:
    """365 days, drawn per week, with conversion above 100 % in one of them."""
    for weeks in range(0, 52, 3):
        add(5 + weeks, at=timezone.now() - timedelta(weeks=weeks, minutes=5))
        add(
            weeks,
            at=timezone.now() - timedelta(weeks=weeks, minutes=6),
            status="locked",
        )
    add(2, at=timezone.now() - timedelta(days=100), code_sent=False)
    return DASHBOARD + "?days=365"


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    # Half a pixel of tolerance: anti-aliased edges may touch.
    return (
        a["left"] < b["right"] - 0.5
        and b["left"] < a["right"] - 0.5
        and a["top"] < b["bottom"] - 0.5
        and b["top"] < a["bottom"] - 0.5
    )


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("data", [one_send, a_million, a_year])
def test_dashboard_chart_fits_and_reads_at_any_width(
    admin_page: Any, data: Any, width: int, scheme: str
) -> None:
    page = admin_page(data(), width, scheme)
    page.screenshot(
        path=str(SCREENSHOTS / f"admin-dashboard-{data.__name__}-{width}-{scheme}.png"),
        full_page=True,
    )
    assert page.js_errors == []
    chart = page.evaluate(
        """() => {
          const c = document.querySelector('#vn-summary figure');
          const r = c.getBoundingClientRect();
          const svgs = [...c.querySelectorAll('svg')]
            .map(s => s.getBoundingClientRect());
          const plot = svgs.reduce((a, b) => (a.width >= b.width ? a : b));
          return {scroll: c.scrollWidth, client: c.clientWidth, left: r.left,
                  right: r.right, plot: plot.width,
                  page: document.documentElement.scrollWidth,
                  viewport: document.documentElement.clientWidth};
        }"""
    )
    # No horizontal overflow: not inside the chart, not past the screen.
    assert chart["scroll"] <= chart["client"], chart
    assert chart["right"] <= chart["viewport"], chart
    assert chart["page"] <= chart["viewport"], chart
    assert chart["plot"] >= 0.5 * chart["client"], chart  # the plot gets the room
    labels = page.evaluate(LABEL_BOXES)
    assert len(labels) >= 6
    for label in labels:
        # Legible: the SVG is not scaled down, so 11 px stays 11 px on a phone.
        assert label["size"] >= 11 and label["bottom"] - label["top"] >= 10, label
        # Inside the chart's box (the first and last day may reach under the axes).
        assert (
            chart["left"] - 1 <= label["left"] and label["right"] <= chart["right"] + 1
        )
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            assert not overlaps(a, b), (a, b)
    y_axis = [label["text"] for label in labels][
        : page.locator(".vn-axis-sends text").count()
    ]
    assert len(set(y_axis)) == len(y_axis)  # distinct
    # Colours: the series and the text stand out from the page in this theme.
    for selector, prop, minimum in [
        (f"{FIGURE} .vn-sends", "fill", 3),
        (f"{FIGURE} .vn-verified", "fill", 3),
        (f"{FIGURE} .vn-legend span:nth-child(3) .vn-swatch", "backgroundColor", 3),
        (f"{FIGURE} svg text", "fill", 4.5),
    ]:
        found = page.evaluate(CONTRAST, [selector, prop])
        assert found["ratio"] >= minimum, (selector, scheme, found)


@pytest.mark.parametrize("language", ["fr", "hi"])
def test_dashboard_labels_fit_a_phone_in_other_languages(
    admin_page: Any, settings: Any, language: str
) -> None:
    """Longer month abbreviations ("sept. 23") and digit grouping of other languages."""
    settings.LANGUAGE_CODE = language
    page = admin_page(a_million(), 375, "light")
    page.screenshot(
        path=str(SCREENSHOTS / f"admin-dashboard-375-{language}.png"), full_page=True
    )
    labels = page.evaluate(LABEL_BOXES)
    shown = [label["text"] for label in labels]
    assert any(text.endswith("%") for text in shown), shown
    for i, a in enumerate(labels):
        assert a["size"] >= 11, a
        for b in labels[i + 1 :]:
            assert not overlaps(a, b), (a, b)
    width = page.evaluate(
        "() => [document.querySelector('#vn-summary figure').scrollWidth,"
        " document.querySelector('#vn-summary figure').clientWidth,"
        " document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert width[0] <= width[1] and width[2] <= width[3], width


def test_dashboard_follows_the_admin_theme_toggle(admin_page: Any) -> None:
    """prefers-color-scheme picks the colours unless the admin's toggle forced one."""
    add(3, at=timezone.now() - timedelta(minutes=5))

    def colours(page: Any) -> list[str]:
        # The series' own colours (not the page's: that one the admin switches).
        return page.evaluate(
            """() => ['.vn-sends', '.vn-verified', '.vn-legend span:nth-child(3) i']
                .map(s => document.querySelector('#vn-summary figure ' + s))
                .map(e => getComputedStyle(e).fill + ' ' + getComputedStyle(e)
                  .backgroundColor)"""
        )

    light = colours(admin_page(DASHBOARD, 1280, "light"))
    dark = colours(admin_page(DASHBOARD, 1280, "dark"))
    # Each series changes colour with the theme (a light blue on white, a dark
    # green on black would fail the contrast the other test asks for).
    assert all(a != b for a, b in zip(light, dark, strict=True)), (light, dark)
    # The toggle's data-theme wins over the system preference, both ways.
    forced = admin_page(DASHBOARD, 1280, "light")
    forced.evaluate("document.documentElement.dataset.theme = 'dark'")
    assert colours(forced) == dark
    forced = admin_page(DASHBOARD, 1280, "dark")
    forced.evaluate("document.documentElement.dataset.theme = 'light'")
    assert colours(forced) == light
    forced.screenshot(path=str(SCREENSHOTS / "admin-dashboard-forced-light.png"))


def test_changelist_fits_1366_pixels(admin_page: Any) -> None:
    """The attempt history at 1366 px, beside both sidebars, with long values in every
    column: the last column is on screen without a horizontal scroll bar."""
    user = get_user_model().objects.create_user(
        "someone.with.a.rather.long.login@example.com"
    )
    now = timezone.now()
    for i in range(8):
        VerificationAttempt.objects.create(
            phone_number=f"+4479111234{i:02d}",
            country="GB",
            status=["verified", "pending", "locked", "unknown"][i % 4],
            purpose="account_recovery_with_second_factor",
            flow_type="WHATSAPP",
            ip_address="2001:db8:85a3:1234:5678:8a2e:370:7334",
            user=user,
            check_count=i % 6,
            created_at=now - timedelta(days=40 + i, hours=i),
            expires_at=now + timedelta(minutes=5),
        )
    page = admin_page(CHANGELIST, 1366, "light")
    page.screenshot(path=str(SCREENSHOTS / "admin-changelist-1366.png"), full_page=True)
    assert page.js_errors == []
    layout = page.evaluate(
        """() => {
          const results = document.querySelector('#changelist-form .results');
          const r = results.getBoundingClientRect();
          const last = document.querySelector('#result_list thead th:last-child');
          const cell = document.querySelector('#result_list tbody tr td:last-child');
          return {scroll: results.scrollWidth, client: results.clientWidth,
                  right: r.right, last: last.className,
                  lastRight: last.getBoundingClientRect().right,
                  cellRight: cell.getBoundingClientRect().right,
                  page: document.documentElement.scrollWidth,
                  viewport: document.documentElement.clientWidth};
        }"""
    )
    assert layout["scroll"] <= layout["client"], layout
    assert layout["lastRight"] <= layout["right"] + 0.5, layout
    assert layout["cellRight"] <= layout["right"] + 0.5, layout
    assert layout["page"] <= layout["viewport"], layout
    assert "column-requester" in layout["last"]
    assert page.locator("#result_list td.field-requester").first.is_visible()
