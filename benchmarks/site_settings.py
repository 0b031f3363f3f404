"""Settings of the benchmark site: the example site as a deployment runs it.

``benchmarks/throughput.py`` and ``benchmarks/asgi_concurrency.py`` serve the example
project with these (``DJANGO_SETTINGS_MODULE=site_settings``, ``benchmarks/`` and
``example_project/`` on ``PYTHONPATH``). On top of ``example_project.settings`` and its
environment switches (PostgreSQL, ``EXAMPLE_CONN_MAX_AGE``, Redis, the sandbox server
as the vendor), they add:

- sessions in the cache (``BENCH_SESSION_ENGINE`` to change it): the database session
  engine would add a write per send to every flow, which no busy site should pay;
- ``TRUSTED_PROXIES = ["127.0.0.1"]``: the load generator's ``X-Forwarded-For`` is
  each simulated user's address, so the per-IP limits see many users;
- ``/bench/noop/`` (``site_urls.py``), the DRF no-op a flow is compared with.
"""

from __future__ import annotations

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import VERIFYNOW

ROOT_URLCONF = "site_urls"
SESSION_ENGINE = os.environ.get(
    "BENCH_SESSION_ENGINE", "django.contrib.sessions.backends.cache"
)
VERIFYNOW = {**VERIFYNOW, "TRUSTED_PROXIES": ["127.0.0.1"]}
