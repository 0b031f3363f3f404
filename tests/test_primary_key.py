"""The compiled primary-key read gives what ``objects.get(pk=...)`` gives.

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
from django_verifynow.primary_key import PrimaryKeyReader
from django_verifynow.services import requester

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
    from django_verifynow import primary_key

    asked: list[type] = []

    def db_for_read(model: type, **hints: Any) -> str:
        asked.append(model)
        return "default"

    monkeypatch.setattr(primary_key.router, "db_for_read", db_for_read)
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
