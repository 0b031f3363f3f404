"""URLconf of the allauth tests (tests/test_contrib_allauth.py): allauth's own views
under /accounts/ and a page to land on after login.

allauth decides which phone URLs exist when ``allauth.account.urls`` is first
imported, so the tests import this module under their allauth settings.
"""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def profile(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"user={request.user.get_username()}")


urlpatterns = [
    path("accounts/profile/", profile),
    path("accounts/", include("allauth.urls")),
]
