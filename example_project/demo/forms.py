"""The example's forms: each is the three-line change the README describes."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm

from django_verifynow.forms import VerifiedPhoneFormMixin, VerifiedPhoneNumberField


class SignupForm(VerifiedPhoneFormMixin, UserCreationForm):
    """Django's user creation plus a phone number proven by a code."""

    # The user picks WhatsApp or SMS (the site's CHANNELS); a refused WhatsApp falls
    # back to SMS by itself.
    phone = VerifiedPhoneNumberField(
        purpose="signup", label="Phone number", channel_choice=True
    )


class PhoneChangeForm(VerifiedPhoneFormMixin, forms.Form):
    """Change the verified number: the current password plus a verified new number."""

    password = forms.CharField(
        label="Current password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    phone = VerifiedPhoneNumberField(purpose="phone_change", label="New phone number")

    def clean_password(self) -> Any:
        """Re-authenticate: a stolen session alone cannot move the account's phone."""
        password = self.cleaned_data["password"]
        user = getattr(self.request, "user", None)
        if user is None or not user.check_password(password):
            raise forms.ValidationError(
                "Your password is not correct.", code="password"
            )
        return password
