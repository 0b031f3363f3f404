"""The client over real HTTP against the sandbox server, under every HTTP-status
profile, and its one deadline per call against a hanging vendor.

The profiles disagree on the HTTP status of every non-200 body code (the main unknown
of the vendor protocol: the vendor documents only the success case, and public
integrations disagree); the client must behave the same under all of them because it
decides on the body alone.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Iterator

import pytest
import requests

from django_verifynow import client as client_module
from django_verifynow.client import VerifyNowClient
from django_verifynow.client.aio import AsyncVerifyNowClient
from django_verifynow.codes import Outcome
from django_verifynow.exceptions import (
    ChannelRefused,
    OutOfCredit,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from django_verifynow.reasons import Reason
from django_verifynow.sandbox import (
    PROFILES,
    SANDBOX_CUSTOMER_ID,
    SANDBOX_PASSWORD,
    FakeClock,
    SandboxEngine,
)
from django_verifynow.sandbox.server import SandboxServer

NUMBER = {"country_code": "91", "national_number": "9876543210"}


@pytest.fixture(params=sorted(PROFILES))
def sim(request) -> Iterator[tuple[SandboxEngine, SandboxServer]]:
    engine = SandboxEngine(profile=request.param, clock=FakeClock(start=time.time()))
    with SandboxServer(engine) as server:
        yield engine, server


class AwaitedClient:
    """An :class:`AsyncVerifyNowClient` called like the sync client, each call
    awaited on this object's own event loop (so its httpx pool lives across calls)."""

    def __init__(self, client: VerifyNowClient) -> None:
        self.sync = client
        self.aclient = AsyncVerifyNowClient(client)
        self.loop = asyncio.new_event_loop()

    def send(self, **kwargs):
        return self.loop.run_until_complete(self.aclient.send(**kwargs))

    def validate(self, **kwargs):
        return self.loop.run_until_complete(self.aclient.validate(**kwargs))

    def close(self) -> None:
        self.loop.run_until_complete(self.aclient.aclose())
        self.loop.close()

    def __getattr__(self, name):
        return getattr(self.sync, name)


_MODE = {"async": False, "made": []}


@pytest.fixture(autouse=True, params=["sync", "async"])
def client_mode(request) -> Iterator[str]:
    """Every test runs with the sync client and with the async one (httpx)."""
    _MODE["async"] = request.param == "async"
    yield request.param
    for made in _MODE["made"]:
        made.close()
    _MODE["made"] = []
    _MODE["async"] = False


def make_client(server: SandboxServer, **kwargs) -> VerifyNowClient:
    kwargs.setdefault("timeout", (1.0, 2.0))
    client = VerifyNowClient(
        customer_id=SANDBOX_CUSTOMER_ID,
        password=SANDBOX_PASSWORD,
        base_url=server.url,
        **kwargs,
    )
    if not _MODE["async"]:
        return client
    awaited = AwaitedClient(client)
    _MODE["made"].append(awaited)
    return awaited  # type: ignore[return-value]


def code_for(engine: SandboxEngine) -> str:
    return engine.last_code("91", "9876543210")


def wrong(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


def test_full_flow_and_every_validate_outcome(sim):
    engine, server = sim
    client = make_client(server)
    sent = client.send(**NUMBER, otp_length=6)
    assert sent.verification_id.isdigit() and sent.timeout == 60 and not sent.reused
    code = code_for(engine)
    assert len(code) == 6

    assert (
        client.validate(verification_id=sent.verification_id, code=wrong(code)).outcome
        is Outcome.WRONG_CODE
    )
    assert (
        client.validate(verification_id=sent.verification_id, code=code).outcome
        is Outcome.VERIFIED
    )
    again = client.validate(verification_id=sent.verification_id, code=code)
    assert again.outcome is Outcome.ALREADY_VERIFIED and again.response_code == 703
    assert engine.count("token") == 1


def test_one_token_and_one_connection_for_many_calls(sim, client_mode):
    engine, server = sim
    client = make_client(server)
    for i in range(8):
        client.send(country_code="91", national_number=f"98765432{i:02d}", otp_length=6)
    assert engine.count("token") == 1
    assert engine.count("send") == 8
    # Keep-alive: the pooled session reused one TCP connection for all nine requests.
    # The async client's token fetch is the blocking transport's: one more connection.
    assert server.stats()["connections_opened"] == (2 if client_mode == "async" else 1)


def test_token_refresh_on_401_replays_once(sim):
    engine, server = sim
    client = make_client(server)
    client.send(**NUMBER, otp_length=6)
    engine.revoke_tokens()
    result = client.send(country_code="91", national_number="9812345678", otp_length=6)
    assert result.verification_id
    assert engine.count("token") == 2
    assert engine.count("send") == 3  # the first, the refused one, its replay


def test_wrong_credentials(sim):
    engine, server = sim
    client = VerifyNowClient(
        customer_id=SANDBOX_CUSTOMER_ID, password="wrong", base_url=server.url
    )
    with pytest.raises(ProviderAuthError) as info:
        client.send(**NUMBER, otp_length=6)
    assert info.value.reason is Reason.CREDENTIALS_REFUSED
    assert engine.count("send") == 0


def test_pending_code_is_reused_on_506(sim):
    engine, server = sim
    client = make_client(server)
    first = client.send(**NUMBER, otp_length=6)
    second = client.send(**NUMBER, otp_length=6)
    assert second.reused and second.verification_id == first.verification_id
    assert second.response_code == 506 and 0 < second.timeout <= 60
    assert len(engine.outbox) == 1


def test_expiry_705(sim):
    engine, server = sim
    client = make_client(server)
    sent = client.send(**NUMBER, otp_length=6)
    engine.clock.advance(61)
    result = client.validate(
        verification_id=sent.verification_id, code=code_for(engine)
    )
    assert result.outcome is Outcome.EXPIRED and result.response_code == 705


def test_lock_after_the_vendor_maximum_800(sim):
    engine, server = sim
    client = make_client(server)
    sent = client.send(**NUMBER, otp_length=6)
    bad = wrong(code_for(engine))
    outcomes = [
        client.validate(verification_id=sent.verification_id, code=bad).outcome
        for _ in range(6)
    ]
    assert outcomes == [Outcome.WRONG_CODE] * 5 + [Outcome.LIMIT_REACHED]


def test_unknown_verification_505(sim):
    _, server = sim
    with pytest.raises(ProviderError) as info:
        make_client(server).validate(verification_id="99999999", code="123456")
    assert info.value.response_code == 505
    assert info.value.reason is Reason.VENDOR_REFUSED


@pytest.mark.parametrize(
    ("engine_options", "number", "code"),
    [
        (
            {"country_codes": ["91"]},
            {"country_code": "44", "national_number": "7400123456"},
            511,
        ),
        ({}, {"country_code": "91", "national_number": "12"}, 400),
    ],
)
def test_send_refusals(sim, engine_options, number, code):
    engine, server = sim
    engine.configure(**engine_options)
    with pytest.raises(ProviderError) as info:
        make_client(server).send(**number, otp_length=6)
    assert info.value.response_code == code
    assert info.value.reason is Reason.VENDOR_REFUSED


def test_out_of_credit_508(sim, caplog):
    engine, server = sim
    # Over the wire, as an operator would: one credit left on the account.
    config = requests.post(
        server.url + "/__sim__/config", json={"credits": 1}, timeout=5
    )
    assert config.json()["balance"] == {SANDBOX_CUSTOMER_ID: 1}
    client = make_client(server)
    assert client.send(**NUMBER, otp_length=6).verification_id
    for n in range(2):
        with pytest.raises(OutOfCredit) as info:
            client.send(
                country_code="91", national_number=f"981234567{n}", otp_length=6
            )
        assert info.value.reason is Reason.OUT_OF_CREDIT
        assert (info.value.endpoint, info.value.response_code) == ("send", 508)
    assert engine.count("send") == 3 and len(engine.outbox) == 1
    assert any("out of credit (508)" in r.getMessage() for r in caplog.records)


def test_send_rate_800(sim):
    engine, server = sim
    engine.configure(sends_per_window=1)
    client = make_client(server)
    client.send(**NUMBER, otp_length=6)
    engine.expire(engine.outbox[-1].verification_id)
    with pytest.raises(RateLimited) as info:
        client.send(**NUMBER, otp_length=6)
    assert info.value.reason is Reason.VENDOR_LIMIT


def test_no_resend_after_a_read_timeout(sim):
    engine, server = sim
    client = make_client(server, timeout=(1.0, 0.3))
    client.get_token()
    engine.inject_fault("timeout", endpoint="send", delay=1.0)
    with pytest.raises(ProviderTimeout) as info:
        client.send(**NUMBER, otp_length=6)
    assert info.value.reason is Reason.PROVIDER_TIMEOUT
    time.sleep(0.8)  # let the held-back answer drain before counting
    assert engine.count("send") == 1
    assert len(engine.outbox) == 1  # the SMS went out: the outcome was truly unknown


@pytest.mark.parametrize("kind", ["http_500", "malformed_json"])
def test_vendor_faults_are_not_retried(sim, kind):
    engine, server = sim
    client = make_client(server)
    engine.inject_fault(kind, endpoint="send")
    with pytest.raises(ProviderError) as info:
        client.send(**NUMBER, otp_length=6)
    assert info.value.reason is Reason.PROVIDER_ERROR
    assert engine.count("send") == 1


def test_dropped_connection_is_not_retried(sim):
    engine, server = sim
    client = make_client(server)
    engine.inject_fault("drop_connection", endpoint="send")
    with pytest.raises(ProviderTimeout):
        client.send(**NUMBER, otp_length=6)
    assert engine.count("send") == 1


def test_server_down_is_unavailable_not_unknown():
    engine = SandboxEngine()
    server = SandboxServer(engine).start()
    url = server.url
    server.stop()
    client = VerifyNowClient(
        customer_id=SANDBOX_CUSTOMER_ID,
        password=SANDBOX_PASSWORD,
        base_url=url,
        timeout=(0.5, 0.5),
    )
    with pytest.raises(ProviderUnavailable) as info:
        client.send(**NUMBER, otp_length=6)
    assert not isinstance(info.value, ProviderTimeout)
    assert info.value.reason is Reason.PROVIDER_UNAVAILABLE


def test_v2_family(sim):
    engine, server = sim
    client = make_client(server, api_version="v2")
    sent = client.send(**NUMBER, otp_length=6)
    result = client.validate(
        verification_id=sent.verification_id, code=code_for(engine), **NUMBER
    )
    assert result.outcome is Outcome.VERIFIED
    assert {r.path for r in engine.requests if r.endpoint != "token"} == {
        "/verification/v2/verification/send",
        "/verification/v2/verification/validateOtp",
    }


def test_no_secret_or_full_number_in_logs(sim, caplog):
    engine, server = sim
    caplog.set_level(logging.DEBUG)
    client = make_client(server)
    sent = client.send(**NUMBER, otp_length=6)
    code = code_for(engine)
    client.validate(verification_id=sent.verification_id, code=wrong(code))
    client.validate(verification_id=sent.verification_id, code=code)
    engine.inject_fault("http_500", endpoint="validate")
    with pytest.raises(ProviderError):
        client.validate(verification_id=sent.verification_id, code=code)
    token = client.get_token()
    key = base64.b64encode(SANDBOX_PASSWORD.encode()).decode()
    # The sandbox's own delivery line shows the code on purpose (a development inbox).
    text = "\n".join(
        f"{r.name} {r.getMessage()}"
        for r in caplog.records
        if r.name != "django_verifynow.sandbox"
    )
    assert "urllib3.connectionpool" in text  # the debug lines were captured...
    for secret in (code, wrong(code), token, key, SANDBOX_PASSWORD, "9876543210"):
        assert secret not in text  # ...and redacted


# -- one deadline per call, over real HTTP --------------------------------------------
#
# The token endpoint hangs (the "timeout" fault holds its answer back for 30 s).
# Timeouts and deadlines are small so the suite stays fast; each assertion on elapsed
# time is a bound (deadline + SLACK), not a benchmark.

SLACK = 0.5


@pytest.fixture
def hung() -> Iterator[tuple[SandboxEngine, SandboxServer]]:
    engine = SandboxEngine()
    with SandboxServer(engine) as server:
        yield engine, server


def vendor_calls(server: SandboxServer) -> dict[str, int]:
    """Requests per endpoint, from the sandbox's own inspection endpoint."""
    stats = requests.get(server.url + "/__sim__/stats", timeout=5).json()
    return stats["requests"]


def timed(call, *args, **kwargs) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as info:
        call(*args, **kwargs)
    return info.value, time.monotonic() - started


def test_a_hanging_token_endpoint_is_cut_at_the_deadline(hung):
    engine, server = hung
    engine.inject_fault("timeout", endpoint="token", times=None, delay=30)
    # A read timeout of 5 s alone would outlast the 1.5 s deadline three times over.
    client = make_client(server, timeout=(0.5, 5.0), deadline=1.5)
    error, elapsed = timed(client.send, **NUMBER, otp_length=6)
    assert elapsed <= 1.5 + SLACK
    assert type(error) is ProviderUnavailable  # nothing was sent: never a timeout
    assert error.reason is Reason.PROVIDER_UNAVAILABLE
    assert vendor_calls(server)["send"] == 0
    assert vendor_calls(server)["token"] == 1  # no time was left for a retry


def test_retries_and_real_back_off_sleeps_stay_inside_the_deadline(hung, monkeypatch):
    engine, server = hung
    monkeypatch.setattr(client_module, "_sleep", time.sleep)  # real back-off here
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # 0.75 s, 1.5 s
    engine.inject_fault("http_500", endpoint="token", times=None)
    client = make_client(server, deadline=1.5)
    error, elapsed = timed(client.send, **NUMBER, otp_length=6)
    # 500, 0.75 s back-off, 500; the 1.5 s back-off no longer fits: give up (without
    # the deadline: three attempts and 2.25 s of sleep).
    assert elapsed <= 1.5 + SLACK
    assert vendor_calls(server) == {"token": 2, "send": 0, "validate": 0, "other": 0}
    assert type(error) is ProviderUnavailable


def test_hanging_token_attempts_open_the_breaker_across_calls(hung, monkeypatch):
    engine, server = hung
    # Shortest back-off (0.25 s, 0.5 s; not slept in the suite) so three attempts fit.
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    engine.inject_fault("timeout", endpoint="token", times=None, delay=30)
    client = make_client(server, timeout=(0.5, 0.25), deadline=2.0, breaker_failures=4)
    first, elapsed = timed(client.send, **NUMBER, otp_length=6)
    assert elapsed <= 2.0 + SLACK
    assert engine.count("token") == 3  # three attempts, all counted, breaker closed
    second, _ = timed(client.send, **NUMBER, otp_length=6)
    # The fourth failed attempt, the first of this call, opened it: no fifth.
    assert engine.count("token") == 4
    third, elapsed = timed(client.send, **NUMBER, otp_length=6)
    assert engine.count("token") == 4 and elapsed < 0.2  # open: no I/O at all
    assert 0 < third.retry_after <= 60
    for error in (first, second, third):
        assert type(error) is ProviderUnavailable
    assert vendor_calls(server)["send"] == 0


def test_a_slow_token_leaves_no_time_to_send(hung):
    engine, server = hung
    engine.inject_fault("latency", endpoint="token", delay=1.1)
    client = make_client(server, timeout=(0.5, 5.0), deadline=1.5)
    error, elapsed = timed(client.send, **NUMBER, otp_length=6)
    assert elapsed <= 1.5 + SLACK
    assert type(error) is ProviderUnavailable and error.endpoint == "send"
    assert vendor_calls(server)["send"] == 0 and engine.outbox == []
    # The token came in time and was kept: the next send needs no token request.
    assert client.send(**NUMBER, otp_length=6).verification_id
    assert vendor_calls(server)["token"] == 1


def test_a_hanging_send_times_out_at_the_deadline(hung):
    engine, server = hung
    client = make_client(server, timeout=(0.5, 5.0), deadline=1.0)
    client.get_token()
    engine.inject_fault("timeout", endpoint="send", delay=30)
    started = time.monotonic()
    with pytest.raises(ProviderTimeout) as info:
        client.send(**NUMBER, otp_length=6)
    assert time.monotonic() - started <= 1.0 + SLACK
    # The send reached the vendor (an SMS went out): the outcome is unknown.
    assert info.value.reason is Reason.PROVIDER_TIMEOUT
    assert engine.count("send") == 1


# -- channels -------------------------------------------------------------------------


def test_whatsapp_refused_for_a_number_is_channel_refused_over_http(sim):
    engine, server = sim
    # Over the wire, as the control API takes it: this number has no WhatsApp.
    config = requests.post(
        server.url + "/__sim__/config",
        json={"no_whatsapp": ["+919876543210"]},
        timeout=5,
    )
    assert config.json()["no_whatsapp"] == ["+919876543210"]
    client = make_client(server)
    with pytest.raises(ChannelRefused) as info:
        client.send(**NUMBER, flow_type="WHATSAPP", otp_length=6)
    assert info.value.reason is Reason.CHANNEL_REFUSED
    assert (info.value.channel, info.value.response_code) == ("WHATSAPP", 400)
    assert engine.outbox == []  # nothing sent, no credit spent
    # The same number by SMS works; so does WhatsApp for another number.
    assert client.send(**NUMBER, flow_type="SMS", otp_length=6).verification_id
    other = {"country_code": "91", "national_number": "9812345678"}
    assert client.send(**other, flow_type="WHATSAPP", otp_length=6).verification_id
    assert [m.flow_type for m in engine.outbox] == ["SMS", "WHATSAPP"]
    # Every v3 send carries type=OTP, as the vendor documents.
    assert {r.query.get("type") for r in engine.requests if r.endpoint == "send"} == {
        "OTP"
    }


def test_an_account_without_whatsapp_is_channel_refused(sim):
    engine, server = sim
    engine.configure(flow_types=["SMS"])
    with pytest.raises(ChannelRefused):
        make_client(server).send(**NUMBER, flow_type="WHATSAPP", otp_length=6)


def test_whatsapp_on_v2_is_channel_refused_and_an_sms_400_is_not(sim):
    engine, server = sim
    client = make_client(server, api_version="v2")
    with pytest.raises(ChannelRefused):
        client.send(**NUMBER, flow_type="WHATSAPP", otp_length=6)
    with pytest.raises(ProviderError) as info:
        client.send(country_code="91", national_number="12", otp_length=6)
    assert not isinstance(info.value, ChannelRefused)
    assert info.value.reason is Reason.VENDOR_REFUSED
