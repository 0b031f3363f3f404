"""The django-verifynow example site: signup with a verified phone number."""
