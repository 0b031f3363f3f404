"""URLs of the allauth variant: allauth's pages under ``/accounts/``, then the example
site's own (allauth's login and logout take over the site's at the same paths)."""

from __future__ import annotations

from django.urls import include, path

from .urls import urlpatterns as site_patterns

urlpatterns = [path("accounts/", include("allauth.urls")), *site_patterns]
