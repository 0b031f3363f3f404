"""URLs of the example site."""

from __future__ import annotations

from demo import views
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("profile/", views.profile, name="profile"),
    path("profile/phone/", views.change_phone, name="change_phone"),
    # The package's sandbox inbox: 404 unless VERIFYNOW["SANDBOX"] and DEBUG are on.
    path("sandbox/inbox/", include("django_verifynow.sandbox.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

# The verification API the widget talks to.
urlpatterns.append(path("api/verify/", include("django_verifynow.urls")))

if settings.HAS_SPECTACULAR:
    from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

    urlpatterns += [
        path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
        path(
            "api/docs/",
            SpectacularSwaggerView.as_view(url_name="schema"),
            name="api-docs",
        ),
    ]
