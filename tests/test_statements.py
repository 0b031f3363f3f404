"""The compiled statements do what the ORM calls they stand for do.

Run on the suite's database: SQLite by default, PostgreSQL in ``.ci/run``.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
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
from django_verifynow.statements import Insert, Param, PrimaryKeyReader, Update

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


def test_a_read_is_one_statement_and_compiles_nothing(monkeypatch) -> None:
    row = _rows()[0]
    trusted = requester.requester_for(None, bind=False)
    requester.resolve(str(row.pk), trusted)  # the first read compiles
    compiled: list[int] = []
    build_filter = Query.build_filter

    def counting(self: Query, *args: Any, **kwargs: Any) -> Any:
        compiled.append(1)
        return build_filter(self, *args, **kwargs)

    monkeypatch.setattr(Query, "build_filter", counting)
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

    def read() -> None:
        try:
            results.append([_fields(reader.get(row.pk)) for row in rows])
        finally:
            connections.close_all()

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    expected = [_fields(VerificationAttempt.objects.get(pk=row.pk)) for row in rows]
    assert results == [expected] * 4
    assert len(reader._plans) >= 1  # one plan per live connection object


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

    compiled: list[int] = []
    as_sql = SQLUpdateCompiler.as_sql

    def counting(self: SQLUpdateCompiler, *args: Any, **kwargs: Any) -> Any:
        compiled.append(1)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLUpdateCompiler, "as_sql", counting)
    return compiled


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


# -- inserts ---------------------------------------------------------------------------
@contextlib.contextmanager
def _saves() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The ``pre_save`` and ``post_save`` signals of attempts sent meanwhile."""
    from django.db.models.signals import post_save, pre_save

    seen: list[tuple[str, dict[str, Any]]] = []

    def pre(sender: Any, **kwargs: Any) -> None:
        seen.append(("pre_save", {**kwargs, "sender": sender}))

    def post(sender: Any, **kwargs: Any) -> None:
        seen.append(("post_save", {**kwargs, "sender": sender}))

    pre_save.connect(pre, sender=VerificationAttempt)
    post_save.connect(post, sender=VerificationAttempt)
    try:
        yield seen
    finally:
        pre_save.disconnect(pre, sender=VerificationAttempt)
        post_save.disconnect(post, sender=VerificationAttempt)


def _but(mapping: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in keys}


def test_an_insert_does_what_objects_create_does() -> None:
    from django_verifynow.services import send

    user = get_user_model().objects.create_user("inserter", password="x")
    fields = {
        "phone_number": "+919876543210",
        "country": "IN",
        "status": "unknown",
        "purpose": "signup",
        "flow_type": "WHATSAPP",
        "otp_length": 8,
        "max_attempts": 3,
        "user": user,
        "ip_address": "2001:db8::1",
        "session_binding": "s" * 64,
        "created_at": timezone.now(),
    }
    with _saves() as seen:
        slow = VerificationAttempt.objects.create(**fields)
        fast = send._NEW_ATTEMPT.create(**fields)
    assert fast.pk != slow.pk and fast._state.db == slow._state.db
    assert not fast._state.adding
    stored = _fields(VerificationAttempt.objects.get(pk=fast.pk))
    expected = _fields(VerificationAttempt.objects.get(pk=slow.pk))
    assert _but(stored, "id") == _but(expected, "id")
    assert _fields(fast) == stored  # the instance is what the row holds
    # The same signals, with the same arguments, in the same order.
    assert [name for name, _ in seen] == ["pre_save", "post_save"] * 2
    for (_, orm), (_, ours) in zip(seen[:2], seen[2:], strict=True):
        assert _but(orm, "instance", "signal") == _but(ours, "instance", "signal")
    assert seen[2][1]["instance"] is fast and seen[3][1]["created"] is True


def test_an_insert_refuses_an_unsaved_user_as_save_does() -> None:
    from django_verifynow.services import send

    unsaved = get_user_model()(username="nobody")
    with pytest.raises(ValueError) as orm:
        VerificationAttempt.objects.create(phone_number="+919876543210", user=unsaved)
    with pytest.raises(ValueError) as ours:
        send._NEW_ATTEMPT.create(phone_number="+919876543210", user=unsaved)
    assert str(ours.value) == str(orm.value)
    assert not VerificationAttempt.objects.exists()


def test_an_insert_that_breaks_a_constraint_marks_the_block_for_rollback() -> None:
    from django.db import IntegrityError, transaction

    from django_verifynow.services import send

    live = {"phone_number": "+447911123456", "status": "pending"}
    VerificationAttempt.objects.create(**live, session_binding="b" * 64)
    marked = []
    with pytest.raises(IntegrityError), transaction.atomic():
        try:
            send._NEW_ATTEMPT.create(**live, session_binding="b" * 64)
        finally:
            marked.append(transaction.get_connection().needs_rollback)
    assert marked == [True]
    assert VerificationAttempt.objects.count() == 1


def test_an_insert_refuses_a_model_whose_row_is_read_back() -> None:
    from django_verifynow.models import VerificationCheck

    with pytest.raises(TypeError, match="VerificationCheck"):
        Insert(VerificationCheck)  # its auto-incremented key


def test_a_send_compiles_no_insert_of_its_attempt(monkeypatch) -> None:
    from django.db.models.sql.compiler import SQLInsertCompiler

    from django_verifynow import services
    from django_verifynow.testing import sandbox_session

    with sandbox_session():
        services.send_otp("+919800000001")  # compiles on the first run
        compiled: list[type] = []
        as_sql = SQLInsertCompiler.as_sql

        def counting(self: SQLInsertCompiler, *args: Any, **kwargs: Any) -> Any:
            compiled.append(self.query.model)
            return as_sql(self, *args, **kwargs)

        monkeypatch.setattr(SQLInsertCompiler, "as_sql", counting)
        assert services.send_otp("+919800000002").state == "pending"
    assert VerificationAttempt not in compiled
