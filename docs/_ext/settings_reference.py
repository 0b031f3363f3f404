"""What the settings reference shows, read from the code: no Sphinx import here.

``docs/_ext/verifynow_docs.py`` renders it; ``tests/test_docs_site.py`` checks that
every key of :data:`django_verifynow.defaults.DEFAULTS` has a typed, documented
property on :class:`django_verifynow.conf.VerifyNowSettings`, so a new key without a
docstring fails the test suite, not just the docs build.
"""

from __future__ import annotations

import inspect
import pprint
from dataclasses import dataclass


class UndocumentedSetting(Exception):
    """A ``VERIFYNOW`` key the reference cannot describe from the code."""


@dataclass(frozen=True)
class SettingDoc:
    """One ``VERIFYNOW`` key as the reference shows it."""

    key: str
    default: str  #: ``repr`` of the default, pretty-printed when long
    type: str  #: the property's return annotation
    doc: str  #: the property's docstring (reStructuredText)


def settings_reference() -> list[SettingDoc]:
    """Every ``VERIFYNOW`` key, in the order of ``DEFAULTS``.

    :raises UndocumentedSetting: a key without a ``setting_property``, or one without
        a docstring or a return annotation; or a property that is not a key.
    """
    from django_verifynow.conf import DEFAULTS, VerifyNowSettings, setting_property

    properties = {
        name: value
        for name, value in vars(VerifyNowSettings).items()
        if isinstance(value, setting_property)
    }
    extra = sorted(set(properties) - set(DEFAULTS))
    if extra:
        raise UndocumentedSetting(f"properties without a default in DEFAULTS: {extra}")
    found = []
    for key, default in DEFAULTS.items():
        prop = properties.get(key)
        if prop is None:
            raise UndocumentedSetting(
                f"{key}: no setting_property on VerifyNowSettings"
            )
        doc = inspect.cleandoc(prop.func.__doc__ or "")
        if not doc:
            raise UndocumentedSetting(f"{key}: its property has no docstring")
        annotation = prop.func.__annotations__.get("return")
        if annotation is None:
            raise UndocumentedSetting(f"{key}: its property has no return annotation")
        found.append(
            SettingDoc(
                key=key,
                default=pprint.pformat(default, width=72, sort_dicts=False),
                type=annotation if isinstance(annotation, str) else repr(annotation),
                doc=doc,
            )
        )
    return found
