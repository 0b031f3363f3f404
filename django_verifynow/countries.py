"""Country names for the widget's country list, in the active language.

From django-phonenumber-field's ``localized_choices`` (babel's CLDR names) when babel
is installed, else from the names libphonenumber ships (read on their own: importing
its geocoder would load about 100 MB of prefix tables), else the ISO code.
"""

from __future__ import annotations

import functools
import importlib.util
import unicodedata
from pathlib import Path

import phonenumbers
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import translation

__all__ = ["country_label", "country_name", "country_names", "sort_key"]

# What localized_choices() raises without babel (ImproperlyConfigured), or, with
# babel, for a locale babel does not know.
_BABEL_ERRORS: tuple[type[Exception], ...] = (
    ImproperlyConfigured,
    ValueError,
    LookupError,
)
try:  # pragma: no cover - depends on whether babel is installed
    from babel import UnknownLocaleError

    _BABEL_ERRORS += (UnknownLocaleError,)
except ImportError:  # pragma: no cover
    pass


def _babel_names(language: str) -> dict[str, str]:
    """Country names from django-phonenumber-field's ``localized_choices`` (babel's
    CLDR names); ``{}`` without babel or for a locale babel does not know."""
    from phonenumber_field.formfields import localized_choices

    try:
        choices = localized_choices(language)
    except _BABEL_ERRORS:
        return {}
    # Its labels read "India +91": keep the name.
    return {code: str(label).rsplit(" +", 1)[0] for code, label in choices if code}


@functools.lru_cache(maxsize=1)
def _libphonenumber_locale_data() -> dict[str, dict[str, str]]:
    """libphonenumber's country names: ``{region: {language: name}}``.

    ``phonenumbers`` ships them in ``phonenumbers/geodata/locale.py`` for its geocoder.
    Importing that module the usual way runs ``phonenumbers.geodata``'s ``__init__``,
    which loads every prefix table (about 100 MB and a second per process) that
    country names need none of, so the file is read on its own; should the package's
    layout change, the usual import is the fallback.
    """
    path = Path(phonenumbers.__file__).resolve().parent / "geodata" / "locale.py"
    spec = importlib.util.spec_from_file_location(
        "django_verifynow._phonenumbers_locale", path
    )
    if spec is not None and spec.loader is not None and path.is_file():
        module = importlib.util.module_from_spec(spec)
        # For its "from ..util import u" (phonenumbers.util, already imported).
        module.__package__ = "phonenumbers.geodata"
        try:
            spec.loader.exec_module(module)
        except (ImportError, SyntaxError):  # pragma: no cover - another layout
            pass
        else:
            return dict(getattr(module, "LOCALE_DATA", {}))
    try:  # pragma: no cover - another layout
        from phonenumbers.geodata.locale import LOCALE_DATA
    except ImportError:  # pragma: no cover
        return {}
    return dict(LOCALE_DATA)


def _libphonenumber_name(code: str, language: str) -> str:
    """libphonenumber's name of a country in ``language`` ("" when it has none)."""
    names = _libphonenumber_locale_data().get(code, {})
    name = str(names.get(language, ""))
    if name.startswith("*"):
        # "*xx": the same name as the entry of language xx.
        name = str(names.get(name[1:], ""))
    return name


@functools.lru_cache(maxsize=64)
def country_names(language: str) -> dict[str, str]:
    """Name of every region libphonenumber knows, in ``language`` (a language code
    such as ``"fr"`` or ``"pt-br"``).

    django-phonenumber-field's babel names when babel is installed, else
    libphonenumber's names (no extra dependency); a region without a name in
    ``language`` gets its English name, and one without any name is left out (the
    caller shows its code).
    """
    names = _babel_names(language)
    if names:
        return names
    # libphonenumber's names are per language only ("pt" for "pt-br").
    lang = translation.to_locale(language).split("_")[0].lower()
    found: dict[str, str] = {}
    for code in sorted(phonenumbers.SUPPORTED_REGIONS):
        name = _libphonenumber_name(code, lang) or _libphonenumber_name(code, "en")
        if name:
            found[code] = name
    return found


def active_language() -> str:
    """The active language, else the site's ``LANGUAGE_CODE``."""
    return translation.get_language() or settings.LANGUAGE_CODE


def country_name(code: str, language: str | None = None) -> str:
    """The name of region ``code`` in ``language`` (the active one by default), or
    the code itself when no name is known ("XK")."""
    code = code.upper()
    return country_names(language or active_language()).get(code) or code


def country_label(code: str, language: str | None = None) -> str:
    """The country list's label of region ``code``: "India (+91)", "Inde (+91)"."""
    code = code.upper()
    calling = phonenumbers.country_code_for_region(code)
    return f"{country_name(code, language)} (+{calling})"


def sort_key(text: str) -> str:
    """Order names as people read them: "Émirats" next to "Espagne", any case."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
