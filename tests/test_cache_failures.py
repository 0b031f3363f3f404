"""A failing limits cache is reported as the cache, never as VerifyNow: sends are
refused without a vendor call and the log names the cache; checks still reach the
vendor (the token and the breaker fall back)."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from django_verifynow.client import get_client
from django_verifynow.testing import last_code, sandbox_engine

pytestmark = pytest.mark.django_db

PHONE = "+919876543210"
BROKEN = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
URL = "/api/verify/"


def send(api: APIClient, phone: str = PHONE):
    return api.post(URL, {"phone_number": phone}, format="json")


def test_a_send_with_the_cache_down_names_the_cache_and_calls_no_vendor(caplog):
    caplog.set_level(logging.DEBUG)
    with override_settings(CACHES=BROKEN):
        response = send(APIClient())
    assert response.status_code == 503
    assert response.json()["code"] == "provider_unavailable"
    assert sandbox_engine().count() == 0  # not even a token request
    [line] = [r for r in caplog.records if r.name == "django_verifynow.ratelimit"]
    assert line.levelno == logging.ERROR
    message = line.getMessage()
    assert 'VERIFYNOW["CACHE"] = "default"' in message
    assert "ConnectionError" in message and "fails closed" in message
    assert "VerifyNow was not called" in message
    vendor = [r for r in caplog.records if r.name == "django_verifynow.client"]
    assert vendor == []  # nothing blames the vendor


def test_a_check_with_the_cache_down_still_reaches_the_vendor(caplog):
    api = APIClient()
    created = send(api).json()
    get_client().tokens.fallback = None  # a fresh worker: no token in memory either
    caplog.set_level(logging.DEBUG)
    with override_settings(CACHES=BROKEN):
        response = api.post(
            f"{URL}{created['id']}/validate/",
            {"code": last_code(PHONE)},
            format="json",
        )
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "verified"
    assert sandbox_engine().count("token") == 2  # fetched again, not cached
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all(r.name == "django_verifynow.ratelimit" for r in errors)
