"""Counting and summing for ``bench.py``: Redis round trips, samples and ratios.

No Django import at module level, so the harness's own test
(``tests/test_bench_harness.py``) runs without settings, a database or a Redis server.

Redis round trips are counted by patching redis-py's classes, one call = one round
trip:

* ``redis.Redis.execute_command``: every plain command (GET, SET NX, MGET, EVALSHA …);
* ``redis.client.Pipeline.execute``: a whole pipeline (or MULTI/EXEC) with at least one
  command queued, whatever its length;
* ``redis.client.Pipeline.immediate_execute_command``: WATCH and the commands a
  watching pipeline sends at once (and the ``SCRIPT EXISTS`` / ``SCRIPT LOAD`` of a
  pipeline that runs scripts).

``Pipeline`` overrides ``execute_command`` to queue, so queued commands never reach the
patched ``Redis.execute_command`` and are not counted twice.
"""

from __future__ import annotations

import contextlib
import re
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "RedisRoundTrips",
    "by_family",
    "RoundTrip",
    "Samples",
    "flow_over_floor",
    "key_family",
    "overhead_in_noops",
]

#: Django's cache key layout is ``<KEY_PREFIX>:<version>:<key>``.
_DJANGO_KEY_RE = re.compile(r"^[^:]*:\d+:")
#: A key segment that is a value, not a name: a digest, a number, a window index.
_VALUE_SEGMENT_RE = re.compile(r"^(?:[0-9a-f]{12,}|[0-9.]+|all)$")
#: Commands whose arguments after the name are all keys.
_MULTI_KEY_COMMANDS = frozenset({"MGET", "DEL", "UNLINK", "EXISTS", "TOUCH", "WATCH"})


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def key_family(key: Any) -> str:
    """A short, value-free name for a cache key, for grouping round trips.

    ``":1:verifynow:rl:send:phone:<digest>:3600.123"`` → ``"verifynow:rl:send:phone"``;
    a Django session key → ``"session"``; the token and breaker keys keep their names
    without the account or URL digest.
    """
    text = _DJANGO_KEY_RE.sub("", _text(key), count=1)
    if text.startswith("django.contrib.sessions.cache"):
        return "session"
    parts = []
    for part in text.split(":"):
        if _VALUE_SEGMENT_RE.match(part):
            continue
        parts.append(part)
        if len(parts) == 4:
            break
    return ":".join(parts) or "?"


def _keys_of(args: Sequence[Any]) -> list[Any]:
    """The keys a command names (best effort: enough to label it)."""
    if not args:
        return []
    name = _text(args[0]).upper()
    if name in ("EVAL", "EVALSHA", "FCALL"):
        try:
            count = int(args[2])
        except (IndexError, TypeError, ValueError):
            return []
        return list(args[3 : 3 + count])
    if name in _MULTI_KEY_COMMANDS:
        return list(args[1:])
    if name == "MSET":
        return list(args[1::2])
    return [args[1]] if len(args) > 1 else []


@dataclass(frozen=True)
class RoundTrip:
    """One round trip: ``"command"`` or ``"pipeline"``, and what it carried."""

    kind: str
    #: ``(COMMAND, key family)`` per command carried (one for a plain command).
    commands: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        """``"GET session"``, or ``"pipeline[INCR verifynow:rl:send:ip, …]"``."""
        shown = ", ".join(f"{c} {k}".strip() for c, k in self.commands)
        return shown if self.kind == "command" else f"{self.kind}[{shown}]"


def _describe(args: Sequence[Any]) -> tuple[str, str]:
    name = _text(args[0]).upper() if args else "?"
    families = list(dict.fromkeys(key_family(k) for k in _keys_of(args)))
    return name, ",".join(families)


class RedisRoundTrips:
    """Patch redis-py so every round trip is recorded while :meth:`recording`.

    Use as a context manager (or :meth:`install` / :meth:`uninstall`); outside a
    :meth:`recording` block the patched methods only forward.
    """

    def __init__(self) -> None:
        self._originals: dict[tuple[type, str], Any] = {}
        self._log: list[RoundTrip] | None = None

    # -- patching --------------------------------------------------------------------
    def install(self) -> RedisRoundTrips:
        """Patch the classes (idempotent)."""
        if self._originals:
            return self
        import redis
        import redis.client

        counter = self

        plain = redis.Redis.execute_command

        def execute_command(self: Any, *args: Any, **options: Any) -> Any:
            counter._record("command", [args])
            return plain(self, *args, **options)

        pipe_execute = redis.client.Pipeline.execute

        def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.command_stack or getattr(self, "watching", False):
                counter._record("pipeline", [c[0] for c in self.command_stack])
            return pipe_execute(self, *args, **kwargs)

        immediate = redis.client.Pipeline.immediate_execute_command

        def immediate_execute_command(self: Any, *args: Any, **options: Any) -> Any:
            counter._record("command", [args])
            return immediate(self, *args, **options)

        for cls, name, replacement in (
            (redis.Redis, "execute_command", execute_command),
            (redis.client.Pipeline, "execute", execute),
            (
                redis.client.Pipeline,
                "immediate_execute_command",
                immediate_execute_command,
            ),
        ):
            self._originals[(cls, name)] = cls.__dict__[name]
            setattr(cls, name, replacement)
        return self

    def uninstall(self) -> None:
        """Put the original methods back."""
        for (cls, name), original in self._originals.items():
            setattr(cls, name, original)
        self._originals.clear()

    def __enter__(self) -> RedisRoundTrips:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- recording -------------------------------------------------------------------
    def _record(self, kind: str, commands: Sequence[Sequence[Any]]) -> None:
        if self._log is not None:
            self._log.append(RoundTrip(kind, tuple(_describe(c) for c in commands)))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[RoundTrip]]:
        """Record the round trips made inside the block into the yielded list."""
        log: list[RoundTrip] = []
        outer, self._log = self._log, log
        try:
            yield log
        finally:
            self._log = outer
            if outer is not None:
                outer.extend(log)


def by_family(trips: Sequence[RoundTrip]) -> dict[str, int]:
    """Round trips per key family.

    A round trip that touches several families (an MGET of several keys, a pipeline,
    a script) counts once, under its first family with ``" +N"`` for the others.
    """
    counts: Counter[str] = Counter()
    for trip in trips:
        families = list(
            dict.fromkeys(f for _, k in trip.commands for f in k.split(",") if f)
        )
        if not families:
            label = "?"
        elif len(families) == 1:
            label = families[0]
        else:
            label = f"{families[0]} +{len(families) - 1}"
        counts[label] += 1
    return dict(sorted(counts.items()))


@dataclass
class Samples:
    """Wall times of one measured operation, in seconds."""

    name: str
    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        """Record one sample."""
        self.values.append(seconds)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def median(self) -> float | None:
        """Median, or ``None`` without samples."""
        return statistics.median(self.values) if self.values else None

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (nearest rank), or ``None`` without samples."""
        if not self.values:
            return None
        ordered = sorted(self.values)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index]

    def summary(self) -> dict[str, Any]:
        """JSON-able figures in milliseconds."""

        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 4)

        return {
            "samples": len(self.values),
            "median_ms": ms(self.median),
            "p10_ms": ms(self.quantile(0.1)),
            "p90_ms": ms(self.quantile(0.9)),
            "min_ms": ms(min(self.values) if self.values else None),
        }


def overhead_in_noops(
    api: float | None, floor: float | None, noop: float | None
) -> float | None:
    """(API time − vendor floor) ÷ DRF no-op time; ``None`` if a figure is missing."""
    if api is None or floor is None or not noop:
        return None
    return (api - floor) / noop


def flow_over_floor(api: float | None, floor: float | None) -> float | None:
    """API time ÷ vendor floor; ``None`` if a figure is missing."""
    if api is None or not floor:
        return None
    return api / floor
