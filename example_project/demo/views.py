"""Views of the example site."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from django_verifynow.exceptions import AttemptNotFound
from django_verifynow.phone import mask

from .forms import PhoneChangeForm, SignupForm
from .models import Profile


def home(request: HttpRequest) -> HttpResponse:
    """Landing page with links to everything the example shows."""
    return render(request, "demo/home.html", {"sandbox": settings.SANDBOX})


def signup(request: HttpRequest) -> HttpResponse:
    """Create an account whose phone number was verified in this browser."""
    form = SignupForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        try:
            # The proof is consumed in the same transaction as the user and the profile.
            with transaction.atomic():
                user = form.save()
                Profile.objects.create(
                    user=user,
                    phone_number=form.cleaned_data["phone"],
                    phone_verified_at=timezone.now(),
                )
        except AttemptNotFound:
            pass  # used meanwhile (a concurrent submit): the form now shows the error
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome! Your phone number is verified.")
            return redirect("profile")
    return render(request, "demo/signup.html", {"form": form})


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """The user's verified phone number."""
    profile = Profile.objects.filter(user=request.user).first()
    return render(
        request,
        "demo/profile.html",
        {"profile": profile, "masked": mask(profile.phone_number) if profile else ""},
    )


@login_required
def change_phone(request: HttpRequest) -> HttpResponse:
    """Replace the verified number: password re-check plus verification of the new
    one."""
    form = PhoneChangeForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        try:
            with form.atomic_consume(user=request.user):
                Profile.objects.update_or_create(
                    user=request.user,
                    defaults={
                        "phone_number": form.cleaned_data["phone"],
                        "phone_verified_at": timezone.now(),
                    },
                )
        except AttemptNotFound:
            pass
        else:
            messages.success(request, "Your phone number was changed.")
            return redirect("profile")
    return render(request, "demo/change_phone.html", {"form": form})
