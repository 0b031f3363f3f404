"""ASGI entry point of the example site: ``uvicorn example_project.asgi:application``.

Under ASGI the verification API answers with its async face: a request waiting for
VerifyNow holds no thread and no database connection (see ``docs/async.md``).
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

application = get_asgi_application()
