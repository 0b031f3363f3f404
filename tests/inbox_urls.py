"""A URLconf with the package's sandbox inbox mounted as a site mounts it."""

from django.urls import include, path

urlpatterns = [path("sandbox/inbox/", include("django_verifynow.sandbox.urls"))]
