"""URLconf of the sandbox inbox (development only; 404 unless SANDBOX and DEBUG).

::

    path("sandbox/inbox/", include("django_verifynow.sandbox.urls")),

The page is ``{% url "verifynow_sandbox:inbox" %}``.
"""

from __future__ import annotations

from django.urls import path

from .inbox import inbox

app_name = "verifynow_sandbox"

urlpatterns = [path("", inbox, name="inbox")]
