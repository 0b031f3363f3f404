"""Test cache backends: one whose every operation fails (the fail-closed paths), one
that records every key it is asked about (no raw identifier in a key)."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache


class BrokenCache(BaseCache):
    """Raises ``ConnectionError`` on every call, like a Redis server that went away."""

    def __init__(
        self, location: str = "", params: dict[str, Any] | None = None
    ) -> None:
        super().__init__(params or {})

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache unavailable")

    add = get = set = touch = delete = clear = incr = decr = has_key = _fail
    get_many = set_many = delete_many = _fail


class RecordingCache(LocMemCache):
    """LocMem that remembers every key it was asked about (reset ``seen`` per test)."""

    seen: list[str] = []

    def make_and_validate_key(self, key: str, version: int | None = None) -> str:
        type(self).seen.append(key)
        return super().make_and_validate_key(key, version)
