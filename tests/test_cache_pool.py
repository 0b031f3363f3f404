"""``django_verifynow.cache.SharedConnectionPool``: Django's ``RedisCache`` built per
request (as under ASGI) still uses one Redis connection pool per process.

Runs only with ``VERIFYNOW_TEST_REDIS_URL``. Django's ``caches`` is context-local: a
request under ASGI runs in a context of its own and so builds its own cache instances.
Each test does what such requests do, reading ``caches[alias]`` in new, empty
``contextvars`` contexts, and asks Redis which connection answered (``CLIENT ID``).
"""

from __future__ import annotations

import contextvars
import os
from typing import Any

import pytest
from django.core.cache import caches
from django.test import override_settings

from django_verifynow.cache import SharedConnectionPool

REDIS_URL = os.environ.get("VERIFYNOW_TEST_REDIS_URL", "")
POOL = "django_verifynow.cache.SharedConnectionPool"

pytestmark = pytest.mark.redis


def _cache(**options: Any) -> dict[str, Any]:
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "verifynow-tests-pool",
        "OPTIONS": options,
    }


def _connection_per_request(alias: str, requests: int = 3) -> list[int]:
    """The Redis connection id that served each of ``requests`` "requests", each in a
    new context with its own cache instance, one after the other."""

    def one() -> int:
        cache = caches[alias]
        cache.set("probe", 1)
        client = cache._cache.get_client(write=True)  # type: ignore[attr-defined]
        return int(client.client_id())

    return [contextvars.Context().run(one) for _ in range(requests)]


def test_per_request_caches_share_one_connection() -> None:
    with override_settings(CACHES={"default": _cache(pool_class=POOL)}):
        ids = _connection_per_request("default")
    assert len(set(ids)) == 1, ids


def test_without_it_each_request_connects_anew() -> None:
    # Why the class exists: Django's own pool lives on the instance.
    with override_settings(CACHES={"default": _cache()}):
        ids = _connection_per_request("default")
    assert len(set(ids)) == len(ids), ids


def test_caches_with_other_options_get_their_own_pool() -> None:
    caches_setting = {
        "default": _cache(pool_class=POOL),
        "other": _cache(pool_class=POOL, socket_timeout=2.5),
    }
    with override_settings(CACHES=caches_setting):

        def pools() -> tuple[Any, Any]:
            return (
                caches["default"]._cache._get_connection_pool(True),  # type: ignore[attr-defined]
                caches["other"]._cache._get_connection_pool(True),  # type: ignore[attr-defined]
            )

        first = contextvars.Context().run(pools)
        second = contextvars.Context().run(pools)
    assert first[0] is second[0] and first[1] is second[1]
    assert first[0] is not first[1]
    assert isinstance(first[0], SharedConnectionPool)
    assert first[1].connection_kwargs["socket_timeout"] == 2.5
