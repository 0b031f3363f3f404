"""The French and Hindi catalogs: complete, true to their sources, and in use."""

from __future__ import annotations

import ast
import gettext
import html
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from django import forms
from django.template import Context, Template
from django.utils import translation

from django_verifynow import exceptions
from django_verifynow.api import errors as api_errors
from django_verifynow.apps import VerifyNowConfig
from django_verifynow.forms import VerifiedPhoneNumberField
from django_verifynow.models import AttemptStatus, VerificationAttempt
from django_verifynow.widgets import DEFAULT_MESSAGES

LOCALE_DIR = Path(__file__).resolve().parent.parent / "django_verifynow" / "locale"
LANGUAGES = ("fr", "hi")
PLURAL_FORMS = {
    "fr": "nplurals=2; plural=(n > 1);",
    "hi": "nplurals=2; plural=(n != 1);",
}

# -- a small .po reader ----------------------------------------------------------------

_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
_KEYWORD = re.compile(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?)\s+"(.*)"\s*$')
_CONTINUATION = re.compile(r'^"(.*)"\s*$')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), text)


_GETTEXT = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy"}


def source_messages(package: Path) -> set[str]:
    """Every literal passed to a gettext function in the modules under ``package``
    (migrations aside): what a package's own catalogs must hold."""
    found: set[str] = set()
    for module in package.rglob("*.py"):
        if "migrations" in module.parts:
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in _GETTEXT and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    found.add(first.value)
    return found


def parse_po(path: Path) -> list[dict]:
    """Entries as dicts: ``flags`` (set), ``msgid``, optional ``msgid_plural``,
    ``msgctxt``, and ``msgstr`` (str) or ``msgstr[i]`` keys. Obsolete ``#~`` skipped."""
    entries: list[dict] = []
    entry: dict = {"flags": set()}
    key = None

    def flush() -> None:
        nonlocal entry, key
        if "msgid" in entry:
            entries.append(entry)
        entry, key = {"flags": set()}, None

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("#,"):
            if key is not None and key.startswith("msgstr"):
                flush()
            entry["flags"].update(f.strip() for f in line[2:].split(","))
            continue
        if line.startswith("#"):
            if key is not None and key.startswith("msgstr"):
                flush()
            continue
        match = _KEYWORD.match(line)
        if match:
            if (
                match.group(1) in ("msgctxt", "msgid")
                and key
                and key.startswith("msgstr")
            ):
                flush()
            key = match.group(1)
            entry[key] = _unescape(match.group(2))
            continue
        match = _CONTINUATION.match(line)
        assert match and key, f"{path}: cannot parse {raw!r}"
        entry[key] += _unescape(match.group(1))
    flush()
    return entries


def catalog(lang: str) -> tuple[dict[str, str], list[dict]]:
    """The header fields and the message entries of ``lang``'s django.po."""
    entries = parse_po(LOCALE_DIR / lang / "LC_MESSAGES" / "django.po")
    header = next(e for e in entries if e["msgid"] == "" and "msgctxt" not in e)
    fields = dict(
        line.split(": ", 1) for line in header["msgstr"].splitlines() if ": " in line
    )
    return fields, [e for e in entries if e is not header]


def msgstrs(entry: dict) -> list[str]:
    if "msgid_plural" in entry:
        return [v for k, v in sorted(entry.items()) if k.startswith("msgstr[")]
    return [entry["msgstr"]]


_PYTHON_FORMAT = re.compile(
    r"%(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]"
)
_BRACE_FORMAT = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
_HTML_TAG = re.compile(r"</?[A-Za-z][^>]*>")


def placeholders(text: str, flags: set[str]) -> Counter:
    found: list[str] = []
    if "python-format" in flags:
        found += _PYTHON_FORMAT.findall(text)
    found += _BRACE_FORMAT.findall(text)
    found += _HTML_TAG.findall(text)
    return Counter(found)


# -- the catalogs themselves -----------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_header(lang: str) -> None:
    fields, _entries = catalog(lang)
    assert fields["Language"] == lang
    assert fields["Content-Type"] == "text/plain; charset=UTF-8"
    assert fields["Plural-Forms"] == PLURAL_FORMS[lang]
    for value in fields.values():
        assert "FULL NAME" not in value and "EMAIL@ADDRESS" not in value
        assert "YEAR-MO-DA" not in value


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_message_is_translated(lang: str) -> None:
    _fields, entries = catalog(lang)
    assert len(entries) > 100
    for entry in entries:
        assert "fuzzy" not in entry["flags"], entry["msgid"]
        strs = msgstrs(entry)
        assert strs, entry["msgid"]
        assert all(s.strip() for s in strs), f"untranslated: {entry['msgid']!r}"
        if "msgid_plural" in entry:
            assert len(strs) == 2, entry["msgid"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_placeholders_match(lang: str) -> None:
    _fields, entries = catalog(lang)
    for entry in entries:
        flags = entry["flags"]
        sources = [entry["msgid"]]
        if "msgid_plural" in entry:
            sources.append(entry["msgid_plural"])
        for index, translated in enumerate(msgstrs(entry)):
            source = sources[min(index, len(sources) - 1)]
            assert placeholders(translated, flags) == placeholders(source, flags), (
                f"{lang}: placeholders differ in {translated!r} for {source!r}"
            )


def test_both_languages_have_the_same_messages() -> None:
    def ids(lang: str) -> set[tuple]:
        return {(e.get("msgctxt"), e["msgid"]) for e in catalog(lang)[1]}

    assert ids("fr") == ids("hi")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_compiled_catalog_is_up_to_date(lang: str) -> None:
    """The shipped .mo holds exactly the .po's translations (compilemessages ran)."""
    mo_path = LOCALE_DIR / lang / "LC_MESSAGES" / "django.mo"
    with mo_path.open("rb") as fp:
        mo = gettext.GNUTranslations(fp)
    _fields, entries = catalog(lang)
    for entry in entries:
        if "msgid_plural" in entry:
            for n, form in ((1, 0), (2, 1)):
                plural = mo.ngettext(entry["msgid"], entry["msgid_plural"], n)
                assert plural == entry[f"msgstr[{form}]"]
        else:
            assert mo.gettext(entry["msgid"]) == entry["msgstr"]


# -- translations in use ---------------------------------------------------------------

EXPECTED = {
    "fr": {
        "rate_limited": "Trop de demandes. Veuillez patienter avant de réessayer.",
        "unavailable": (
            "Le service de vérification est temporairement indisponible. "
            "Veuillez réessayer dans quelques instants."
        ),
        "invalid_phone": (
            "Saisissez un numéro de téléphone valide, avec l'indicatif du pays."
        ),
        "code_expired": "Ce code a expiré. Demandez un nouveau code.",
        "verbose_name": "tentative de vérification",
        "verbose_name_plural": "tentatives de vérification",
        "phone_field": "numéro de téléphone",
        "status_locked": "Verrouillée",
        "app": "Vérification du téléphone",
        "unverified": (
            "Vérifiez ce numéro de téléphone : envoyez un code et saisissez-le "
            "ci-dessus."
        ),
        "wrong_code": "Code incorrect. Tentatives restantes : 3.",
        "wrong_code_1": "Code incorrect. Il vous reste 1 tentative.",
        "wrong_code_2": "Code incorrect. Il vous reste 2 tentatives.",
        "rate_limited_widget": "Trop de demandes. Réessayez dans 30 s.",
        "send": "Envoyer le code",
        "locked_0": "0 tentative verrouillée après trop de codes incorrects.",
        "locked_1": "1 tentative verrouillée après trop de codes incorrects.",
        "locked_2": "2 tentatives verrouillées après trop de codes incorrects.",
        "pumping_ok": "conversion inférieure à 40 % avec au moins 50 envois",
    },
    "hi": {
        "rate_limited": (
            "बहुत अधिक अनुरोध किए गए हैं। कृपया फिर से प्रयास करने से पहले प्रतीक्षा करें।"
        ),
        "unavailable": (
            "सत्यापन सेवा अस्थायी रूप से अनुपलब्ध है। कृपया थोड़ी देर बाद फिर से प्रयास करें।"
        ),
        "invalid_phone": "कृपया देश कोड सहित एक मान्य फ़ोन नंबर दर्ज करें।",
        "code_expired": ("इस कोड की समय-सीमा समाप्त हो गई है। कृपया नए कोड का अनुरोध करें।"),
        "verbose_name": "सत्यापन प्रयास",
        "verbose_name_plural": "सत्यापन प्रयास",
        "phone_field": "फ़ोन नंबर",
        "status_locked": "लॉक",
        "app": "फ़ोन सत्यापन",
        "unverified": "इस फ़ोन नंबर को सत्यापित करें: कोड भेजें और उसे ऊपर दर्ज करें।",
        "wrong_code": "गलत कोड। शेष प्रयास: 3।",
        "wrong_code_1": "गलत कोड। 1 प्रयास शेष है।",
        "wrong_code_2": "गलत कोड। 2 प्रयास शेष हैं।",
        "rate_limited_widget": "बहुत अधिक अनुरोध किए गए हैं। 30 सेकंड बाद फिर से प्रयास करें।",
        "send": "कोड भेजें",
        "locked_0": "0 प्रयास बहुत अधिक गलत कोड के बाद लॉक किए गए।",
        "locked_1": "1 प्रयास बहुत अधिक गलत कोड के बाद लॉक किया गया।",
        "locked_2": "2 प्रयास बहुत अधिक गलत कोड के बाद लॉक किए गए।",
        "pumping_ok": "कम से कम 50 भेजे गए कोड पर 40 % से कम रूपांतरण दर",
    },
}

_LOCKED_TEMPLATE = Template(
    "{% load i18n %}{% blocktranslate count counter=n %}{{ counter }} attempt locked "
    "after too many wrong codes.{% plural %}{{ counter }} attempts locked after too "
    "many wrong codes.{% endblocktranslate %}"
)
_PUMPING_TEMPLATE = Template(
    '{% load i18n %}{% translate "No country or prefix shows the pumping signature '
    '(conversion below 40 % with at least 50 sends, while sends rose)." %}'
)


def _wrong_code(n: int) -> str:
    return translation.ngettext(
        "Wrong code. %(n)d attempt left.", "Wrong code. %(n)d attempts left.", n
    ) % {"n": n}


def _strings() -> dict[str, str]:
    """The strings under test, resolved in the active language."""
    field = VerifiedPhoneNumberField()
    return {
        "rate_limited": str(exceptions.RateLimited().message),
        "unavailable": str(exceptions.ProviderUnavailable().message),
        "invalid_phone": str(exceptions.InvalidPhoneNumber().message),
        "code_expired": str(api_errors.CodeExpired().detail),
        "verbose_name": str(VerificationAttempt._meta.verbose_name),
        "verbose_name_plural": str(VerificationAttempt._meta.verbose_name_plural),
        "phone_field": str(
            VerificationAttempt._meta.get_field("phone_number").verbose_name
        ),
        "status_locked": str(AttemptStatus.LOCKED.label),
        "app": str(VerifyNowConfig.verbose_name),
        "unverified": str(field.error_messages["unverified"]),
        "wrong_code": str(DEFAULT_MESSAGES["wrong_code"]).format(n=3),
        "wrong_code_1": _wrong_code(1),
        "wrong_code_2": _wrong_code(2),
        "rate_limited_widget": str(DEFAULT_MESSAGES["rate_limited"]).format(n=30),
        "send": str(DEFAULT_MESSAGES["send"]),
        "locked_0": _LOCKED_TEMPLATE.render(Context({"n": 0})),
        "locked_1": _LOCKED_TEMPLATE.render(Context({"n": 1})),
        "locked_2": _LOCKED_TEMPLATE.render(Context({"n": 2})),
        "pumping_ok": _PUMPING_TEMPLATE.render(Context()),
    }


@pytest.mark.parametrize("lang", LANGUAGES)
def test_translated_strings(lang: str) -> None:
    with translation.override("en"):
        english = _strings()
    with translation.override(lang):
        translated = _strings()
    expected = EXPECTED[lang]
    for key, value in translated.items():
        assert value != english[key], key
        if key == "pumping_ok":
            assert expected[key] in value
            assert "%%" not in value
        else:
            assert value == expected[key], key


@pytest.mark.urls("tests.browser_urls")
@pytest.mark.parametrize("lang", LANGUAGES)
def test_widget_renders_translated(lang: str) -> None:
    class Form(forms.Form):
        phone = VerifiedPhoneNumberField(purpose="signup")

    with translation.override(lang):
        rendered = str(Form()["phone"])
    expected = EXPECTED[lang]
    assert expected["send"] in rendered
    script = re.search(
        r'<script[^>]*type="application/json"[^>]*>(.*?)</script>', rendered, re.S
    )
    assert script, "no messages script"
    messages = json.loads(html.unescape(script.group(1)))
    assert messages["send"] == expected["send"]
    assert messages["wrong_code"].format(n=3) == expected["wrong_code"]
    assert messages["wrong_code_counts"]["1"] == expected["wrong_code_1"]
    assert messages["wrong_code_counts"]["2"] == expected["wrong_code_2"]
