"""Integrations with other Django packages, each an optional app of its own.

Nothing here is imported by the core: a contrib app is used only when it is listed in
``INSTALLED_APPS``, and it needs the package it integrates (installed with the matching
extra, e.g. ``pip install django-verifynow[otp]``).
"""
