"""The compiled statements do what the ORM calls they stand for do.

Run on the suite's database: SQLite by default, PostgreSQL in ``.ci/run``.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.db.models.sql.query import Query
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_verifynow.models import VerificationAttempt
from django_verifynow.services import requester
from django_verifynow.statements import Param, PrimaryKeyReader, Update

pytestmark = pytest.mark.django_db


def _fields(instance: VerificationAttempt) -> dict[str, Any]:
    return {
        field.attname: getattr(instance, field.attname)
        for field in VerificationAttempt._meta.concrete_fields
    }


def _rows() -> list[VerificationAttempt]:
    user = get_user_model().objects.create_user("reader", password="x")
    now = timezone.now()
    return [
        VerificationAttempt.objects.create(phone_number="+447911123456"),
        VerificationAttempt.objects.create(
            phone_number="+919876543210",
            country="IN",
            status="verified",
            flow_type="WHATSAPP",
            refused_flow_type="SMS",
            otp_length=8,
            provider_verification_id="12345",
            user=user,
            ip_address="2001:db8::1",
            session_binding="b" * 64,
            expires_at=now + timedelta(minutes=5),
            verified_at=now,
            consumed_at=now,
            check_count=3,
            last_response_code=200,
            code_sent=False,
        ),
        VerificationAttempt.objects.create(
            phone_number="+14155550100", ip_address="192.0.2.7", code_sent=True
        ),
    ]


def test_a_read_equals_the_orms_get() -> None:
    reader = PrimaryKeyReader(VerificationAttempt)
    for row in _rows():
        for pk in (row.pk, str(row.pk)):
            fast = reader.get(pk)
            slow = VerificationAttempt.objects.get(pk=row.pk)
            assert _fields(fast) == _fields(slow)
            assert {k: type(v) for k, v in _fields(fast).items()} == {
                k: type(v) for k, v in _fields(slow).items()
            }
            assert fast._state.db == slow._state.db and not fast._state.adding
            if fast.expires_at is not None:
                assert timezone.is_aware(fast.expires_at)


def test_a_read_under_other_time_settings_equals_the_orms_get() -> None:
    reader = PrimaryKeyReader(VerificationAttempt)
    row = _rows()[1]
    reader.get(row.pk)  # compiled under the suite's settings
    with override_settings(USE_TZ=False):
        fast, slow = reader.get(row.pk), VerificationAttempt.objects.get(pk=row.pk)
        assert _fields(fast) == _fields(slow)
        assert timezone.is_naive(fast.expires_at)


def test_an_unknown_or_malformed_id() -> None:
    reader = PrimaryKeyReader(VerificationAttempt)
    with pytest.raises(VerificationAttempt.DoesNotExist):
        reader.get(uuid.uuid4())
    with pytest.raises(ValidationError):
        reader.get("not-a-uuid")


def _calls(monkeypatch, owner: type, name: str) -> list[int]:
    """One entry per call of ``owner.name`` from now on (the test's monkeypatch)."""
    calls: list[int] = []
    original = getattr(owner, name)

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def test_a_read_is_one_statement_and_compiles_nothing(monkeypatch) -> None:
    row = _rows()[0]
    trusted = requester.requester_for(None, bind=False)
    requester.resolve(str(row.pk), trusted)  # the first read compiles
    compiled = _calls(monkeypatch, Query, "build_filter")
    with CaptureQueriesContext(connection) as queries:
        assert requester.resolve(str(row.pk), trusted).pk == row.pk
    assert len(queries) == 1
    assert compiled == []


def test_the_database_is_the_routers_read_choice(monkeypatch) -> None:
    from django_verifynow import statements

    asked: list[type] = []

    def db_for_read(model: type, **hints: Any) -> str:
        asked.append(model)
        return "default"

    monkeypatch.setattr(statements.router, "db_for_read", db_for_read)
    row = _rows()[0]
    assert PrimaryKeyReader(VerificationAttempt).get(row.pk).pk == row.pk
    assert asked == [VerificationAttempt]


def test_a_default_manager_that_filters_is_refused() -> None:
    filtering = SimpleNamespace(
        __name__="Filtered",
        _default_manager=SimpleNamespace(
            get_queryset=lambda: VerificationAttempt.objects.filter(status="pending")
        ),
    )
    with pytest.raises(TypeError, match="Filtered"):
        PrimaryKeyReader(filtering)  # type: ignore[type-var]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_each_thread_reads_on_its_own_connection() -> None:
    reader = PrimaryKeyReader(VerificationAttempt)
    rows = _rows()
    results: list[Any] = []
    used: list[tuple[int, bool]] = []
    # All four connections are alive together, so their ids cannot be reused.
    together = threading.Barrier(4, timeout=30)

    def read() -> None:
        try:
            results.append([_fields(reader.get(row.pk)) for row in rows])
            own = connections["default"]
            used.append((id(own), own in reader._plans))
            together.wait()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    expected = [_fields(VerificationAttempt.objects.get(pk=row.pk)) for row in rows]
    assert results == [expected] * 4
    # Four connection objects, each with the plan compiled for it.
    assert len({ident for ident, _ in used}) == 4
    assert all(planned for _, planned in used)


# -- updates ---------------------------------------------------------------------------
def _twins(**fields: Any) -> tuple[VerificationAttempt, VerificationAttempt]:
    """Two rows alike but for their numbers: one for the ORM, one for the statement."""
    now = timezone.now()
    base = {"created_at": now, "expires_at": now + timedelta(minutes=5), **fields}
    return (
        VerificationAttempt.objects.create(phone_number="+447911123456", **base),
        VerificationAttempt.objects.create(phone_number="+447911123457", **base),
    )


def _state(row: VerificationAttempt) -> dict[str, Any]:
    row.refresh_from_db()
    return {k: v for k, v in _fields(row).items() if k not in ("id", "phone_number")}


ROW_STATES = [
    {},
    {"status": "locked"},
    {"status": "verified"},
    {"check_count": 5, "max_attempts": 5},
    {"check_count": 4, "max_attempts": 5},
    {"expires_at": timezone.now() - timedelta(seconds=1)},
]


@pytest.mark.parametrize("fields", ROW_STATES)
def test_the_check_statements_do_what_their_orm_calls_do(fields) -> None:
    from django.db.models import F

    from django_verifynow.services import check

    now = timezone.now()
    orm_row, row = _twins(**fields)
    expected = VerificationAttempt.objects.filter(
        pk=orm_row.pk,
        status="pending",
        check_count__lt=F("max_attempts"),
        expires_at__gt=now,
    ).update(check_count=F("check_count") + 1)
    assert check._RESERVE.run(pk=row.pk, now=now) == expected
    assert _state(row) == _state(orm_row)

    values = {"last_response_code": 200, "verified_at": now}
    expected = VerificationAttempt.objects.filter(pk=orm_row.pk).transition(
        "verified", from_=("pending", "locked"), **values
    )
    assert check._VERIFY.run(pk=row.pk, **values) == expected
    assert _state(row) == _state(orm_row)


@pytest.mark.parametrize("fields", ROW_STATES)
def test_the_lock_statement_does_what_its_orm_call_does(fields) -> None:
    from django.db.models import F

    from django_verifynow.services import check

    orm_row, row = _twins(**fields)
    expected = VerificationAttempt.objects.filter(
        pk=orm_row.pk, check_count__gte=F("max_attempts")
    ).transition("locked", last_response_code=702)
    assert check._LOCK.run(pk=row.pk, last_response_code=702) == expected
    assert _state(row) == _state(orm_row)


@pytest.mark.parametrize("status", ["unknown", "pending", "failed"])
def test_the_go_live_statement_does_what_its_orm_call_does(status) -> None:
    from django_verifynow.services import send

    orm_row, row = _twins(status=status, expires_at=None)
    values = {
        "provider_verification_id": "4242",
        "provider_transaction_id": "",
        "last_response_code": 200,
        "expires_at": timezone.now() + timedelta(minutes=5),
        "code_sent": False,
        "flow_type": "WHATSAPP",
        "check_count": 2,
    }
    expected = VerificationAttempt.objects.filter(pk=orm_row.pk).transition(
        "pending", from_=("unknown",), **values
    )
    assert send._GO_LIVE.run(pk=row.pk, **values) == expected
    assert _state(row) == _state(orm_row)


def test_an_update_under_other_time_settings_writes_what_the_orm_writes() -> None:
    from django_verifynow.services import check

    check._VERIFY.run(
        pk=uuid.uuid4(), last_response_code=200, verified_at=timezone.now()
    )
    with override_settings(USE_TZ=False):
        naive = timezone.now()
        orm_row, row = _twins(status="pending", expires_at=None)
        VerificationAttempt.objects.filter(pk=orm_row.pk).transition(
            "verified", last_response_code=200, verified_at=naive
        )
        check._VERIFY.run(pk=row.pk, last_response_code=200, verified_at=naive)
        assert _state(row) == _state(orm_row)
        assert row.verified_at == naive


def test_an_update_wants_exactly_its_parameters() -> None:
    from django_verifynow.services import check

    row = _twins()[0]
    before = _state(row)
    with pytest.raises(TypeError, match="expected"):
        check._RESERVE.run(pk=row.pk)
    with pytest.raises(TypeError, match="expected"):
        check._RESERVE.run(pk=row.pk, now=timezone.now(), extra=1)
    assert _state(row) == before
    with pytest.raises(TypeError, match="values"):
        Update(VerificationAttempt.objects.all())


def test_an_update_that_breaks_a_constraint_marks_the_block_for_rollback() -> None:
    from django.db import IntegrityError, transaction

    live = VerificationAttempt.objects.create(
        phone_number="+447911123456", status="pending", session_binding="b" * 64
    )
    other = VerificationAttempt.objects.create(
        phone_number=live.phone_number, status="expired", session_binding="b" * 64
    )
    revive = VerificationAttempt.objects.filter(pk=Param("pk")).transition_statement(
        "pending", from_=("expired",), check_count=Param("n", "check_count")
    )
    marked = []
    with pytest.raises(IntegrityError), transaction.atomic():
        try:
            revive.run(pk=other.pk, n=0)
        finally:
            marked.append(transaction.get_connection().needs_rollback)
    assert marked == [True]
    assert _state(other)["status"] == "expired"


def _compiled_updates(monkeypatch) -> list[int]:
    from django.db.models.sql.compiler import SQLUpdateCompiler

    return _calls(monkeypatch, SQLUpdateCompiler, "as_sql")


def test_a_send_and_a_check_compile_no_update(monkeypatch) -> None:
    from django_verifynow import services
    from django_verifynow.testing import last_code, sandbox_session

    with sandbox_session():

        def flow(number: str) -> None:
            attempt = services.send_otp(number)
            assert attempt.state == "pending"
            code = last_code(number)
            wrong = "1" * attempt.otp_length if set(code) == {"0"} else "0" * len(code)
            assert services.validate_otp(attempt.pk, wrong).check_result == "wrong_code"
            verified = services.validate_otp(attempt.pk, code)
            assert verified.check_result == "verified"

        flow("+919800000001")  # each statement compiles on its first run
        compiled = _compiled_updates(monkeypatch)
        flow("+919800000002")
    assert compiled == []
