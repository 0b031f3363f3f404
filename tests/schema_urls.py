"""A URLconf for tests that serves the API and its OpenAPI schema.

``schema_patterns`` is appended to ``tests.urls``; the schema view generates from this
module only (the API, not the admin), as a site would with its own urlconf.
"""

from __future__ import annotations

from django.urls import include, path

from django_verifynow.api.schema import spectacular_available

api_patterns = [path("api/verify/", include("django_verifynow.urls"))]
schema_patterns = []

if spectacular_available():
    from drf_spectacular.views import SpectacularAPIView

    schema_patterns.append(
        path(
            "api/schema/",
            SpectacularAPIView.as_view(patterns=api_patterns),
            name="schema",
        )
    )

urlpatterns = [*api_patterns, *schema_patterns]
