"""URLconf for the test suite."""

from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("admin/", admin.site.urls),
]

# The verification API at /api/verify/ and its OpenAPI schema at /api/schema/
# (tests/test_api*.py; the schema route exists when drf-spectacular is installed).
from tests.schema_urls import api_patterns, schema_patterns  # noqa: E402

urlpatterns += [*api_patterns, *schema_patterns]
