"""The hot path's SQL, compiled by the ORM once per database connection.

Every check, resend and poll reads an attempt by id, and every check and send runs a
few fixed ``UPDATE`` statements. Built with ``QuerySet`` calls each time, the ORM
resolves the lookups and compiles the same SQL again: on SQLite a check's reservation
took 14 times the CPU through the ORM that it takes compiled, a read by id 7 times
(``benchmarks/PERFORMANCE.md``). The classes here let the ORM
compile each statement once per connection and then only run it:

* :class:`PrimaryKeyReader` is ``Model.objects.get(pk=...)``: the same ``SELECT``,
  the backend's and the fields' converters, and ``Model.from_db`` (``post_init`` is
  sent, the instance's state names its database);
* :class:`Update` is ``queryset.update(**values)``, where :class:`Param` marks the
  values each run supplies, prepared for the database as their model field prepares
  them.

The SQL is the ORM's own and runs through the connection's cursor, so query logging,
``CaptureQueriesContext`` and execute wrappers see it. The database is the router's
choice, as for the manager. A plan is kept per connection object (Django keeps one per
thread, or async context, and alias) and dropped when a setting changes.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.core.signals import setting_changed
from django.db import connections, models, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression
from django.db.models.sql import UpdateQuery

__all__ = ["Param", "PrimaryKeyReader", "Update"]

_M = TypeVar("_M", bound=models.Model)
_P = TypeVar("_P")


class _PerConnection(Generic[_P]):
    """Plans kept per connection object, all dropped when a setting changes.

    ``DATABASES``, ``USE_TZ`` or ``TIME_ZONE`` change the SQL or the converters (tests
    override them); any other setting only costs one compile more.
    """

    def __init__(self) -> None:
        self._plans: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _P] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        _COMPILED.add(self)

    def _plan_for(self, alias: str) -> tuple[BaseDatabaseWrapper, _P]:
        connection = connections[alias]
        plan = self._plans.get(connection)
        if plan is None:
            plan = self._compile(alias, connection)
            with self._lock:
                self._plans[connection] = plan
        return connection, plan

    def _compile(self, alias: str, connection: BaseDatabaseWrapper) -> _P:
        raise NotImplementedError

    def forget(self) -> None:
        """Drop every plan: the next run compiles again."""
        with self._lock:
            self._plans = weakref.WeakKeyDictionary()


_COMPILED: weakref.WeakSet[_PerConnection[Any]] = weakref.WeakSet()


def _forget_plans(**kwargs: Any) -> None:
    for compiled in list(_COMPILED):
        compiled.forget()


setting_changed.connect(_forget_plans, dispatch_uid="django_verifynow.statements")


# -- reads by primary key --------------------------------------------------------------
#: Converters of the selected columns, as the ORM applies them: position, the
#: functions ``f(value, expression, connection)`` in order, the column expression.
_Converters = tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]


class _ReadPlan:
    __slots__ = ("attnames", "converters", "sql")

    def __init__(self, sql: str, attnames: list[str], converters: _Converters) -> None:
        self.sql = sql
        self.attnames = attnames
        self.converters = converters


class PrimaryKeyReader(_PerConnection[_ReadPlan], Generic[_M]):
    """``model``'s default manager's ``get(pk=...)``, compiled once per connection.

    Only a default manager that returns the plain table qualifies: one that filters
    or annotates would be bypassed, so it is refused when the reader is made.
    """

    def __init__(self, model: type[_M]) -> None:
        manager_queryset = model._default_manager.get_queryset()
        if manager_queryset.query.where or manager_queryset.query.annotations:
            raise TypeError(f"{model.__name__}: its default manager filters rows")
        super().__init__()
        self.model = model

    def get(self, pk: Any) -> _M:
        """The instance whose primary key is ``pk``.

        :raises model.DoesNotExist: no such row.
        :raises ValueError, TypeError, ValidationError: ``pk`` is not a value of the
            primary key field (as the ORM's lookup would).
        """
        alias = router.db_for_read(self.model)
        connection, plan = self._plan_for(alias)
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

    @staticmethod
    def _converted(
        row: Sequence[Any], plan: _ReadPlan, connection: BaseDatabaseWrapper
    ) -> list[Any]:
        """The row's values as the ORM's ``apply_converters`` gives them."""
        values = list(row)
        for position, converters, expression in plan.converters:
            value = values[position]
            for converter in converters:
                value = converter(value, expression, connection)
            values[position] = value
        return values

    def _compile(self, alias: str, connection: BaseDatabaseWrapper) -> _ReadPlan:
        """``SELECT ... WHERE pk = %s`` as the ORM compiles it."""
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
        return _ReadPlan(sql, attnames, converters)


# -- updates ---------------------------------------------------------------------------
class _Slot:
    """Where a :class:`Param`'s value goes among a compiled statement's parameters."""

    __slots__ = ("field", "name")

    def __init__(self, name: str, field: models.Field[Any, Any]) -> None:
        self.name = name
        self.field = field


class Param(Expression):
    """A value that each run of an :class:`Update` supplies by ``name``.

    It is prepared for the database as the model field ``field`` (default: ``name``;
    ``"pk"`` is the primary key) prepares its values, in a lookup
    (``expires_at__gt=Param("now", "expires_at")``) as in a new value
    (``verified_at=Param("verified_at")``).
    """

    def __init__(self, name: str, field: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.field_name = field or name

    def resolve_expression(
        self,
        query: Any = None,
        allow_joins: bool = True,
        reuse: Any = None,
        summarize: bool = False,
        for_save: bool = False,
    ) -> Param:
        resolved = self.copy()
        meta = query.model._meta
        field = meta.pk if self.field_name == "pk" else meta.get_field(self.field_name)
        resolved.output_field = field
        return resolved

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        return "%s", [_Slot(self.name, self.output_field)]


class _UpdatePlan:
    __slots__ = ("names", "params", "sql")

    def __init__(self, sql: str, params: list[Any]) -> None:
        self.sql = sql
        self.params = params
        self.names = frozenset(p.name for p in params if isinstance(p, _Slot))


class Update(_PerConnection[_UpdatePlan]):
    """``queryset.update(**values)``, compiled once per connection.

    :class:`Param` in the filter or the values marks what :meth:`run` supplies; the
    rest (constants, ``F()`` expressions) is compiled in. Only a plain ``UPDATE`` of
    the queryset's own table qualifies (no values of a parent model).
    """

    def __init__(self, queryset: models.QuerySet[Any], **values: Any) -> None:
        if not values:
            raise TypeError("an Update needs values to set")
        super().__init__()
        self.model = queryset.model
        self.queryset = queryset
        self.values = values

    def run(self, **params: Any) -> int:
        """Run the statement with ``params`` (one per :class:`Param` name); the number
        of rows it changed, as ``QuerySet.update`` returns it."""
        alias = router.db_for_write(self.model)
        connection, plan = self._plan_for(alias)
        if params.keys() != plan.names:
            raise TypeError(
                f"parameters {sorted(params)} given, {sorted(plan.names)} expected"
            )
        args = [
            value.field.get_db_prep_save(params[value.name], connection)
            if isinstance(value, _Slot)
            else value
            for value in plan.params
        ]
        # As QuerySet.update: an error inside an atomic block marks it for rollback.
        with transaction.mark_for_rollback_on_error(using=alias):
            with connection.cursor() as cursor:
                cursor.execute(plan.sql, args)
                return int(cursor.rowcount)

    def _compile(self, alias: str, connection: BaseDatabaseWrapper) -> _UpdatePlan:
        """The ``UPDATE`` as ``QuerySet.update`` compiles it."""
        query: Any = self.queryset.using(alias).query.chain(UpdateQuery)
        query.add_update_values(self.values)
        if query.related_updates:
            raise TypeError(f"{self.model.__name__}: an update of a parent model")
        sql, params = query.get_compiler(using=alias).as_sql()
        return _UpdatePlan(sql, list(params))
