"""Reading one row by primary key with its ``SELECT`` compiled once per connection.

Validating a code, resending and polling each start by reading the attempt by id.
``Model.objects.get(pk=...)`` builds a ``QuerySet``, resolves the lookup and compiles
the same ``SELECT`` every time: on SQLite about as much CPU as running it
(``benchmarks/bench.py --profile``). :class:`PrimaryKeyReader` keeps what the ORM
worked out (the SQL, the selected fields, the converters of the database backend and
of the fields) and only runs it, so the row and the instance are the ORM's own: the
same statement through the same cursor (query logging, ``CaptureQueriesContext`` and
execute wrappers see it), the same converted values, the instance made by
``Model.from_db`` (``post_init`` is sent, the state says which database it came from).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.core.signals import setting_changed
from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper

__all__ = ["PrimaryKeyReader"]

_M = TypeVar("_M", bound=models.Model)

#: Converters of one selected column, as the ORM applies them: ``f(value, expression,
#: connection)`` in order.
_Converters = tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]


class _Plan:
    """What the ORM worked out for one model on one connection."""

    __slots__ = ("sql", "attnames", "converters")

    def __init__(self, sql: str, attnames: list[str], converters: _Converters) -> None:
        self.sql = sql
        self.attnames = attnames
        self.converters = converters


class PrimaryKeyReader(Generic[_M]):
    """``model``'s default manager's ``get(pk=...)``, compiled once per connection.

    The database is the router's choice for reads of ``model``, as for the manager.
    Only the default manager's plain table qualifies: a default manager that filters
    or annotates would be bypassed, so it is refused when the reader is made.
    """

    def __init__(self, model: type[_M]) -> None:
        manager_queryset = model._default_manager.get_queryset()
        if manager_queryset.query.where or manager_queryset.query.annotations:
            raise TypeError(f"{model.__name__}: its default manager filters rows")
        self.model = model
        # Per connection object: Django keeps one per thread (and per async context)
        # and alias, and converters are bound to their connection's operations.
        self._plans: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Plan] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        _READERS.add(self)

    def get(self, pk: Any) -> _M:
        """The instance whose primary key is ``pk``.

        :raises model.DoesNotExist: no such row.
        :raises ValueError, TypeError, ValidationError: ``pk`` is not a value of the
            primary key field (as the ORM's lookup would).
        """
        alias = router.db_for_read(self.model)
        connection = connections[alias]
        plan = self._plans.get(connection)
        if plan is None:
            plan = self._plan(alias, connection)
        pk_field = self.model._meta.pk
        assert pk_field is not None
        value = pk_field.get_db_prep_value(
            pk_field.to_python(pk), connection, prepared=False
        )
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, (value,))
            row = cursor.fetchone()
        if row is None:
            raise self.model.DoesNotExist(  # type: ignore[attr-defined]
                f"{self.model._meta.object_name} matching query does not exist."
            )
        values = self._converted(row, plan, connection)
        return self.model.from_db(alias, plan.attnames, values)

    def forget(self) -> None:
        """Drop every compiled plan (a setting changed: the next read compiles)."""
        with self._lock:
            self._plans = weakref.WeakKeyDictionary()

    @staticmethod
    def _converted(
        row: Sequence[Any], plan: _Plan, connection: BaseDatabaseWrapper
    ) -> list[Any]:
        """The row's values as the ORM's ``apply_converters`` gives them."""
        values = list(row)
        for position, converters, expression in plan.converters:
            value = values[position]
            for converter in converters:
                value = converter(value, expression, connection)
            values[position] = value
        return values

    def _plan(self, alias: str, connection: BaseDatabaseWrapper) -> _Plan:
        """Compile ``SELECT ... WHERE pk = %s`` as the ORM does, once."""
        pk_field = self.model._meta.pk
        assert pk_field is not None
        sample = pk_field.to_python(pk_field.get_default())
        queryset = self.model._default_manager.using(alias).filter(pk=sample)
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        if len(params) != 1:  # pragma: no cover - the ORM compiles pk= to one param
            raise TypeError(f"{self.model.__name__}: unexpected pk lookup {sql!r}")
        columns = [column for column, _sql, _alias in compiler.select]
        attnames = [column.target.attname for column in columns]
        converters = tuple(
            (position, tuple(functions), expression)
            for position, (functions, expression) in compiler.get_converters(
                columns
            ).items()
        )
        plan = _Plan(sql, attnames, converters)
        with self._lock:
            self._plans[connection] = plan
        return plan


_READERS: weakref.WeakSet[PrimaryKeyReader[Any]] = weakref.WeakSet()


def _forget_plans(**kwargs: Any) -> None:
    # DATABASES, USE_TZ or TIME_ZONE change what the converters and SQL are (tests
    # override them); other settings are cheap to recompile for.
    for reader in list(_READERS):
        reader.forget()


setting_changed.connect(_forget_plans, dispatch_uid="django_verifynow.primary_key")
