"""django-verifynow: phone-number verification through Message Central's VerifyNow
API."""

__version__ = "0.1.0.dev0"
__all__ = ["__version__"]
