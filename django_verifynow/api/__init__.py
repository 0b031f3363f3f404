"""The DRF HTTP API of django-verifynow.

Mount it with ``path("<prefix>/", include("django_verifynow.urls"))``. The modules:

* :mod:`.serializers` parse requests and render attempts;
* :mod:`.views` call :mod:`django_verifynow.services` and nothing below it;
* :mod:`.errors` is the one error contract (``{"code", "detail", ...}``);
* :mod:`.idempotency` replays the first answer to a repeated ``Idempotency-Key``;
* :mod:`.schema` annotates the views for drf-spectacular when it is installed.

See ``docs/api.md`` for the endpoints, bodies and every error code.
"""

from __future__ import annotations
