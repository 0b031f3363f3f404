"""The soak harness's own bookkeeping (``benchmarks/soak_accounting.py``).

Fast and self-contained: no gunicorn, no database, no sandbox server. Each detector is
shown a clean set of books (no finding) and a damaged one (exactly the finding).
"""

from __future__ import annotations

import ipaddress
import random
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import soak_accounting as acc  # noqa: E402
import soak_flows  # noqa: E402

NOW = 1_800_000_000.0


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(NOW + offset, tz=timezone.utc)


def row(id_: str = "a1", **kw: object) -> acc.AttemptRow:
    values: dict[str, object] = {
        "id": id_,
        "phone_number": "+919876543210",
        "status": "verified",
        "expires_at": at(60),
        "check_count": 1,
        "max_attempts": 5,
        "ip_address": "192.0.2.1",
        "provider_verification_id": "1000000",
        "code_sent": True,
    }
    values.update(kw)
    return acc.AttemptRow(**values)  # type: ignore[arg-type]


def test_effective_state_expires_pending_rows_only() -> None:
    assert acc.effective_state("pending", at(1), NOW) == "pending"
    assert acc.effective_state("pending", at(0), NOW) == "expired"
    assert acc.effective_state("pending", at(-5), NOW) == "expired"
    assert acc.effective_state("verified", at(-5), NOW) == "verified"
    assert acc.effective_state("pending", None, NOW) == "pending"
    naive = datetime.fromtimestamp(NOW - 5, tz=timezone.utc).replace(tzinfo=None)
    assert acc.effective_state("pending", naive, NOW) == "expired"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (acc.Answer("send", 201), None),
        (acc.Answer("send", 429, "rate_limited", "30"), None),
        (acc.Answer("send", 502, "provider_error"), None),
        (acc.Answer("validate", 503, "provider_unavailable", "30"), None),
        (acc.Answer("validate", 503, "provider_unavailable", None), "Retry-After"),
        (acc.Answer("send", 500, "server_error"), "500"),
        (acc.Answer("send", 502, None, None, json=False), "non-JSON"),
        (acc.Answer("send", 502, "provider_unavailable"), "contract"),
        (acc.Answer("read", 504, "x"), "504"),
        (acc.Answer("read", 0, json=False), "no HTTP answer"),
    ],
)
def test_classify_5xx(answer: acc.Answer, problem: str | None) -> None:
    found = acc.classify_5xx(answer)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_explain_5xx_matches_answers_to_faults() -> None:
    answers = [
        acc.Answer("send", 502, "provider_error"),
        acc.Answer("validate", 503, "provider_unavailable", "30"),
        acc.Answer("validate", 503, "provider_unavailable", "30"),
    ]
    vendor = [
        acc.VendorRequest("send", "http_500"),
        acc.VendorRequest("validate", "timeout"),
        acc.VendorRequest("validate", "latency"),  # slow, answered: explains nothing
        acc.VendorRequest("validate", None),
    ]
    explained = acc.explain_5xx(answers, vendor, not_reached=1)
    assert explained["unexplained"] == 0
    assert explained["api_502"] == 1 and explained["api_503"] == 2
    # Without the call that never reached the vendor, one 503 has no cause.
    assert acc.explain_5xx(answers, vendor, not_reached=0)["unexplained"] == 1
    # A 502 with only a latency fault around: unexplained.
    assert acc.explain_5xx(answers[:1], vendor[2:], not_reached=0)["unexplained"] == 1


def test_lost_attempts() -> None:
    rows = {"a1": row("a1")}
    assert acc.lost_attempts(["a1"], rows) == []
    assert acc.lost_attempts(["a1", "a2", "a2"], rows) == ["a2"]


def test_sms_without_row() -> None:
    sms = {
        "country_code": "91",
        "mobile_number": "9876543210",
        "verification_id": "1000000",
    }
    assert acc.sms_without_row([sms], [row()]) == []
    # The send timed out: no id was learned, but an "unknown" row records the SMS.
    lost_answer = {**sms, "verification_id": "1000001"}
    unknown = row("a2", status="unknown", provider_verification_id="")
    assert acc.sms_without_row([sms, lost_answer], [row(), unknown]) == []
    # One unknown row covers one SMS, not two.
    another = {**sms, "verification_id": "1000002"}
    lost = acc.sms_without_row([sms, lost_answer, another], [row(), unknown])
    assert len(lost) == 1 and "1000002" in lost[0] and "9876543210" not in lost[0]
    # No row at all.
    assert len(acc.sms_without_row([sms], [])) == 1


def test_sends_vs_rows() -> None:
    vendor = [acc.VendorRequest("send", phone="+919876543210")]
    assert acc.sends_vs_rows(vendor, [row()]) == ([], 0)
    # A row whose send never reached the vendor (breaker open).
    assert acc.sends_vs_rows(vendor, [row(), row("a2", status="failed")]) == ([], 1)
    lost, _ = acc.sends_vs_rows(vendor * 2, [row()])
    assert len(lost) == 1 and "2 vendor sends, 1 attempt rows" in lost[0]


def test_check_rows_vs_vendor() -> None:
    rows = [row("a1"), row("a2", provider_verification_id="1000001")]
    vendor = [
        acc.VendorRequest("validate", verification_id="1000000"),
        acc.VendorRequest("validate", verification_id="1000000"),
        acc.VendorRequest("validate", verification_id="1000001"),
        acc.VendorRequest("send", phone="+919876543210"),
    ]
    checks = [
        acc.CheckRow("a1", "wrong_code"),
        acc.CheckRow("a1", "verified"),
        acc.CheckRow("a2", "unknown"),  # timed out: the vendor was reached
        acc.CheckRow("a2", "unavailable"),  # breaker open: not reached
    ]
    assert acc.check_rows_vs_vendor(vendor, checks, rows) == ([], 1)
    # A vendor verdict nobody recorded.
    problems, _ = acc.check_rows_vs_vendor(vendor, checks[1:], rows)
    assert problems == [
        "verificationId 1000000: 2 vendor validate requests, 1 check rows"
    ]
    # A check recorded as answered that never reached the vendor.
    problems, _ = acc.check_rows_vs_vendor(vendor[:2], checks, rows)
    assert problems == [
        "verificationId 1000001: 0 vendor validate requests, 1 check rows"
    ]


def test_api_db_mismatches() -> None:
    rows = {
        "ok": row("ok"),
        "lapsed": row("lapsed", status="pending", expires_at=at(-10), check_count=0),
        "stale": row("stale", status="pending", expires_at=at(-30), check_count=0),
        "pend": row("pend", status="pending", check_count=2),
        "flip": row("flip", status="locked"),
    }
    obs = [
        acc.Observation("ok", "verified", 0, NOW - 1),
        # Said pending 20 s ago, expired 10 s ago: time, not a write.
        acc.Observation("lapsed", "pending", 5, NOW - 20),
        acc.Observation("pend", "pending", 3, NOW - 1),
        acc.Observation("missing", "pending", 5, NOW - 1),  # a lost row, not here
    ]
    assert acc.api_db_mismatches(obs, rows, now=NOW) == []
    bad = [
        # Said pending when its expiry was already 10 s past: the API lied.
        acc.Observation("stale", "pending", 5, NOW - 20),
        acc.Observation("pend", "pending", 5, NOW - 1),
        acc.Observation("flip", "verified", 0, NOW - 1),
    ]
    found = acc.api_db_mismatches(bad, rows, now=NOW)
    assert len(found) == 3
    assert "attempt stale" in found[0] and "'expired'" in found[0]
    assert "attempts_left=5" in found[1] and "2/5" in found[1]
    assert "API said 'verified', row is 'locked'" in found[2]


def test_verified_lost() -> None:
    rows = {
        "v": row("v"),
        "x": row("x", status="expired"),
        "w": row("w", status="locked"),
    }
    checks = [
        acc.CheckRow("v", "verified"),
        acc.CheckRow("v", "verified"),  # a double submit: 703, still verified
        acc.CheckRow("w", "wrong_code"),
    ]
    assert acc.verified_lost(checks, rows) == []
    found = acc.verified_lost([*checks, acc.CheckRow("x", "verified")], rows)
    assert found == ["attempt x: the vendor verified its code, the row is 'expired'"]


def test_ip_mismatches_normalises_addresses() -> None:
    rows = {
        "a1": row("a1", ip_address="2001:db8:0:1::2"),
        "a2": row("a2", ip_address="192.0.2.7"),
    }
    ok = {"a1": "2001:0db8:0000:0001:0000:0000:0000:0002", "a2": "192.0.2.7"}
    assert acc.ip_mismatches(ok, rows) == []
    found = acc.ip_mismatches({**ok, "a2": "192.0.2.8"}, rows)
    assert found == ["attempt a2: client 192.0.2.8, recorded 192.0.2.7"]


def test_status_histogram_and_latency() -> None:
    answers = [
        acc.Answer("send", 201, elapsed=0.010),
        acc.Answer("send", 201, elapsed=0.030),
        acc.Answer("send", 502, "provider_error", elapsed=0.020),
        acc.Answer("read", 200, elapsed=0.005),
        acc.Answer("read", 0, elapsed=40.0),  # no answer: no latency
    ]
    hist = acc.status_histogram(answers)
    assert hist["send"] == {201: 2, 502: 1}
    assert hist["all"] == {201: 2, 502: 1, 200: 1, 0: 1}
    lat = acc.latency_summary(answers)
    assert lat["send"]["median"] == pytest.approx(20.0)
    assert lat["send"]["max"] == pytest.approx(30.0)
    assert lat["read"]["n"] == 1


def test_problems_count() -> None:
    problems = acc.Problems()
    assert problems.count() == 0
    problems.mismatches.append("x")
    problems.lost_attempts.extend(["a", "b"])
    assert problems.count() == 3


def test_mask_hides_the_number() -> None:
    assert acc.mask("+919876543210") == "+91********10"


def test_client_addresses_are_distinct_documentation_addresses() -> None:
    rng = random.Random(1)
    addresses = [soak_flows.client_address(i, rng) for i in range(1500)]
    docs = [
        ipaddress.ip_network(n)
        for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
    ]
    parsed = [ipaddress.ip_address(a) for a in addresses]
    assert all(any(ip in net for net in docs) for ip in parsed)
    # Distinct per flow (IPv6 per /64, as the limits group it) up to 762 IPv4 flows.
    keys = [
        str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else ip
        for ip in parsed
    ]
    assert len(set(keys)) == len(keys)


def test_phone_numbers_are_distinct_allowed_mobiles() -> None:
    import phonenumbers

    numbers = soak_flows.phone_numbers(200, random.Random(2))
    assert len(set(numbers)) == 200
    regions = set()
    for number in numbers:
        parsed = phonenumbers.parse(number)
        assert phonenumbers.is_valid_number(parsed)
        regions.add(phonenumbers.region_code_for_number(parsed))
    assert regions == {"IN", "GB", "US", "FR"}
    # Spread over prefixes (all but the last four digits): no prefix limit in play.
    assert len({n[:-4] for n in numbers}) > 150
