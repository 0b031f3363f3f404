"""A cache backend whose every operation fails, to prove the fail-closed paths."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import BaseCache


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
