"""One Redis connection pool per process for Django's ``RedisCache``.

Django's ``RedisCache`` keeps its connection pool on the cache instance, and Django
builds cache instances per thread under WSGI but per *request* under ASGI (``caches``
is context-local there). So on an ASGI site every request that touches the cache,
the session engine's load and save above all, opens a new TCP connection to Redis,
does redis-py's connection handshake and leaves the connection for the garbage
collector: measured under uvicorn, about a tenth of a worker's CPU per verification.

Naming this class as the cache's ``pool_class`` makes every ``RedisCache`` instance
with the same server URL and options share one pool for the life of the process::

    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/0",
            "OPTIONS": {"pool_class": "django_verifynow.cache.SharedConnectionPool"},
        }
    }

It changes nothing else: redis-py's pools are thread-safe and reset themselves in a
forked child (gunicorn's ``--preload``), and a WSGI site, whose caches are already
per thread, gains only one pool per process instead of one per thread. The
verification policy's own scripts keep one client per cache configuration whatever
the pool class (``policy/redis_store.py``); this is for Django's own cache calls.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import redis

__all__ = ["SharedConnectionPool"]


class SharedConnectionPool(redis.ConnectionPool):
    """A ``redis.ConnectionPool`` whose :meth:`from_url` hands out one pool per URL and
    options per process (see the module docstring)."""

    _shared: ClassVar[dict[tuple[type, str, str], redis.ConnectionPool]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        """The process's pool for ``url`` and ``kwargs``, built on first use.

        ``kwargs`` are what Django's ``RedisCache`` passes on from ``OPTIONS`` (the
        parser class, timeouts, ``max_connections``...): two caches that differ in
        any of them get pools of their own.
        """
        key = (cls, url, repr(sorted(kwargs.items())))
        pool = cls._shared.get(key)
        if pool is None:
            with cls._shared_lock:
                pool = cls._shared.get(key)
                if pool is None:
                    pool = cls._shared[key] = super().from_url(url, **kwargs)
        return pool
