"""Test numbers: the vendor call of a ``TEST_NUMBERS`` entry, answered here.

App-store reviewers and automated tests need a number that accepts a known code on a
live site. Everything a send or a check does for such a number is the same as for any
other (parsing, the admission policy's limits, cooldown, daily cap and failure cap, the
attempt and check rows, the signals, the API's answers): only the vendor call that the
service flow yields is replaced, by :func:`perform`, which the drivers in
:mod:`.vendor` call instead of the client. So neither driver, nor the client's token or
circuit breaker, ever touches the network for a test number.

* A send returns a :class:`~django_verifynow.client.SendResult` whose verification id
  starts with :data:`~django_verifynow.models.TEST_VERIFICATION_PREFIX` (VerifyNow's
  ids are digit strings, so the two never mix) and carries the moment it was issued.
* A validate of such an id compares the code with the number's fixed code in constant
  time and answers the :class:`~django_verifynow.client.ValidateResult` VerifyNow would
  (702 wrong, 200 right, 705 once the validity window is over). Tries per attempt and
  "already verified" are kept by the attempt row, as for every number, before any call
  is made. A test id whose number is no longer listed answers like an id VerifyNow
  does not know (505): the attempt fails, and its code is never compared with anything.
* A real verification id never reaches this module, whatever the settings say: only
  the prefix decides.

Every use is logged once, at WARNING, as a ``test_number_used`` security event with
the action and the masked number, never the code.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Any

from django.utils import timezone

from .. import phone
from ..client import SendResult, ValidateResult
from ..codes import Outcome, ResponseCode
from ..conf import verifynow_settings
from ..exceptions import ProviderError
from ..models import TEST_VERIFICATION_PREFIX
from ..reasons import Reason
from . import notify

__all__ = ["TEST_CODE_VALIDITY", "handles", "is_test_id", "perform"]

#: Seconds a test number's code stays valid: VerifyNow's default window, so the
#: cooldown and expiry of a test number are those of a real one.
TEST_CODE_VALIDITY = 60

#: Digits of the issue time (Unix seconds) in a test verification id.
_ISSUED_DIGITS = 10


def is_test_id(verification_id: object) -> bool:
    """Whether ``verification_id`` was issued here for a test number."""
    return isinstance(verification_id, str) and verification_id.startswith(
        TEST_VERIFICATION_PREFIX
    )


def _number(kwargs: Any) -> str:
    return f"+{kwargs.get('country_code', '')}{kwargs.get('national_number', '')}"


def handles(call: Any) -> bool:
    """Whether ``call`` (a :class:`~.vendor.VendorCall`) is answered here.

    A send when its number is a ``TEST_NUMBERS`` entry; a validate when its id is a
    test id, whatever the settings now say. Reads no cache and no database.
    """
    if call.method == "validate":
        return is_test_id(call.kwargs.get("verification_id"))
    if call.method == "send":
        numbers = verifynow_settings.TEST_NUMBERS
        return bool(numbers) and _number(call.kwargs) in numbers
    return False


def perform(call: Any) -> SendResult | ValidateResult:
    """Answer ``call`` as VerifyNow would, without it (see the module docstring).

    :raises ProviderError: a validate whose number is no longer a test number (505).
    """
    e164 = _number(call.kwargs)
    if call.method == "send":
        _used("send", e164)
        issued = int(timezone.now().timestamp())
        return SendResult(
            verification_id=(
                f"{TEST_VERIFICATION_PREFIX}{issued:0{_ISSUED_DIGITS}d}"
                f"{secrets.token_hex(8)}"
            ),
            timeout=TEST_CODE_VALIDITY,
            transaction_id=None,
            response_code=ResponseCode.SUCCESS,
        )
    _used("validate", e164)
    expected = verifynow_settings.TEST_NUMBERS.get(e164)
    if expected is None:
        raise ProviderError(
            endpoint="validate",
            response_code=ResponseCode.INVALID_VERIFICATION_ID,
            reason=Reason.VENDOR_REFUSED,
        )
    verification_id: str = call.kwargs["verification_id"]
    if _lapsed(verification_id):
        return ValidateResult(Outcome.EXPIRED, ResponseCode.VERIFICATION_EXPIRED)
    code = str(call.kwargs.get("code", ""))
    # Both are ASCII digits (the service refuses anything else): compare bytes.
    if hmac.compare_digest(code.encode(), expected.encode()):
        return ValidateResult(Outcome.VERIFIED, ResponseCode.SUCCESS)
    return ValidateResult(Outcome.WRONG_CODE, ResponseCode.WRONG_OTP_PROVIDED)


def _lapsed(verification_id: str) -> bool:
    """Whether the validity window of a test id is over (as VerifyNow's 705)."""
    start = len(TEST_VERIFICATION_PREFIX)
    try:
        issued = int(verification_id[start : start + _ISSUED_DIGITS])
    except ValueError:
        return True  # not an id issued here: nothing to accept
    return timezone.now().timestamp() >= issued + TEST_CODE_VALIDITY


def _used(action: str, e164: str) -> None:
    notify.event(
        "test_number_used",
        None,
        None,
        level=logging.WARNING,
        phone=phone.mask(e164),
        country=phone.region_of(e164),
        action=action,
    )
