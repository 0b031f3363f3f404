"""ASGI entry point of the benchmark site (``asgi_concurrency.py``'s default ``--app``).

The same application Django's ``startproject`` template gives, on the benchmark
settings; ``--app example_project.asgi:application`` runs the example's own module
instead (the harness sets ``DJANGO_SETTINGS_MODULE``, which it keeps).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site_settings")

application = get_asgi_application()
