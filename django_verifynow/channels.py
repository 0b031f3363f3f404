"""Which channels a send may use, in which order: the one rule of ``CHANNELS``.

``VERIFYNOW["CHANNELS"]`` lists the channels a site allows, most preferred first. A
send tries them in that order and moves to the next one only when VerifyNow refuses
a channel as not deliverable (:class:`~django_verifynow.exceptions.ChannelRefused`,
decided by the client). A requested channel starts the order at itself and keeps only
the channels listed after it: the list reads "from most to least preferred", and a
fallback never goes back up it, so a user who picks SMS on a WhatsApp-first site
never gets WhatsApp.

Sites that never set ``CHANNELS`` keep the behaviour of ``FLOW_TYPE``: one channel,
no fallback, and a caller may still ask for any channel by name (``flow_type=``), as
before ``CHANNELS`` existed.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from .conf import FLOW_TYPES, verifynow_settings
from .exceptions import InvalidInput

__all__ = ["allowed", "label", "order", "requestable"]


def allowed() -> tuple[str, ...]:
    """The channels the site offers, most preferred first (``CHANNELS``)."""
    return verifynow_settings.CHANNELS


def requestable() -> tuple[str, ...]:
    """The channels a caller may ask for by name: ``CHANNELS`` when the site set it,
    else every channel (``FLOW_TYPE`` sites always accepted any ``flow_type``)."""
    if verifynow_settings.is_set("CHANNELS"):
        return verifynow_settings.CHANNELS
    return FLOW_TYPES


def order(requested: str | None = None) -> tuple[str, ...]:
    """The channels one send tries, in order.

    :param requested: a channel asked for (``None`` or ``""``: the site's order).
    :raises InvalidInput: ``requested`` is not a channel, or not one the site allows.
    """
    channels = allowed()
    if not requested:
        return channels
    if requested not in FLOW_TYPES:
        raise InvalidInput(_("Choose SMS or WhatsApp."))
    if requested not in requestable():
        raise InvalidInput(_("Codes cannot be sent on this channel."))
    if requested not in channels:
        return (requested,)  # a FLOW_TYPE site asked for another channel by name
    return channels[channels.index(requested) :]


def label(channel: str) -> str:
    """The channel's name for users ("SMS", "WhatsApp"), in the active language."""
    from .models import FlowType  # not at import time: widgets import this module

    try:
        return str(FlowType(channel).label)
    except ValueError:
        return channel
