"""Who is asking: the requester of a service call, and the attempts it may act on.

A requester is the request's user (when logged in), the random binding token kept in
its session, and its client IP. Attempts are bound to the requester that started them:
another session or user gets the same :class:`AttemptNotFound` as an unknown id, so
nothing reveals that an attempt exists (OWASP API1). Server-side callers (no request)
are trusted and may act on any attempt.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from .. import policy
from ..conf import IPNetwork, verifynow_settings
from ..exceptions import AttemptNotFound
from ..models import VerificationAttempt
from ..statements import PrimaryKeyReader

__all__ = [
    "SESSION_BINDING_KEY",
    "Requester",
    "client_ip",
    "get_attempt",
    "ip_key",
    "requester_for",
    "resolve",
]

#: The attempt by id, as ``VerificationAttempt.objects.get(pk=...)`` reads it: every
#: check, resend and poll starts with it, so its SELECT is compiled only once.
_ATTEMPTS = PrimaryKeyReader(VerificationAttempt)

#: Logger of the client-IP reading (the one-time "no proxy trusted" warning).
logger = logging.getLogger("django_verifynow.requester")

#: Session key holding the random token that binds attempts to a browser session.
SESSION_BINDING_KEY = "django_verifynow.binding"


@dataclass(frozen=True)
class Requester:
    """The user, session binding and client IP behind one service call."""

    request: Any
    user: Any
    #: SHA-256 of the session's binding token, or ``""`` without a session.
    binding: str
    ip: str | None
    #: The binding token was made by this call (a session's first send): no attempt
    #: can carry it yet, so nothing bound to it needs retiring.
    new_binding: bool = False

    @property
    def user_id(self) -> Any:
        """The user's primary key, or ``None`` for an anonymous requester."""
        return getattr(self.user, "pk", None)

    @property
    def trusted(self) -> bool:
        """Server-side callers (no request) skip binding checks and per-caller
        limits."""
        return self.request is None

    @property
    def limit_keys(self) -> dict[str, str | None]:
        """Non-phone keys of the rate limits: the IP (grouped) and the session or
        user."""
        session = f"user:{self.user_id}" if self.user_id is not None else self.binding
        return {"ip": ip_key(self.ip), "session": session or None}

    def with_user(self, user: Any) -> Requester:
        """The same requester acting for ``user``."""
        return Requester(
            request=self.request,
            user=user,
            binding=self.binding,
            ip=self.ip,
            new_binding=self.new_binding,
        )

    def owns(self, attempt: VerificationAttempt) -> bool:
        """Whether this requester may act on ``attempt``."""
        if self.trusted:
            return True
        if attempt.user_id is not None and attempt.user_id == self.user_id:
            return True
        return bool(attempt.session_binding) and secrets.compare_digest(
            attempt.session_binding, self.binding
        )


def requester_for(
    request: HttpRequest | None, user: Any = None, *, bind: bool
) -> Requester:
    """The :class:`Requester` of ``request`` (acting for ``user`` if given).

    :param bind: give the session a binding token if it has none (sends do; reads and
        checks do not, so they never create session data).
    """
    if user is None and request is not None:
        candidate = getattr(request, "user", None)
        if candidate is not None and getattr(candidate, "is_authenticated", False):
            user = candidate
    binding = ""
    new_binding = False
    session = getattr(request, "session", None) if request is not None else None
    if session is not None:
        token = session.get(SESSION_BINDING_KEY)
        if token is None and bind:
            # A random token in the session rather than the session key itself: the key
            # rotates on login (cycle_key), the token travels with the session data.
            token = secrets.token_urlsafe(32)
            session[SESSION_BINDING_KEY] = token
            new_binding = True
        if token:
            binding = hashlib.sha256(str(token).encode()).hexdigest()
    ip = client_ip(request) if request is not None else None
    return Requester(
        request=request, user=user, binding=binding, ip=ip, new_binding=new_binding
    )


def resolve(
    attempt: VerificationAttempt | uuid.UUID | str, requester: Requester
) -> VerificationAttempt:
    """The attempt (an instance or its id) if ``requester`` may act on it.

    :raises AttemptNotFound: unknown or malformed id, or bound to another requester.
    """
    if not isinstance(attempt, VerificationAttempt):
        try:
            pk = attempt if isinstance(attempt, uuid.UUID) else uuid.UUID(str(attempt))
            attempt = _ATTEMPTS.get(pk)
        except (
            ValueError,
            TypeError,
            AttributeError,
            VerificationAttempt.DoesNotExist,
        ):
            raise AttemptNotFound() from None
    if not requester.owns(attempt):
        # The same error as an unknown id: nothing reveals that the attempt exists.
        raise AttemptNotFound()
    return attempt


# -- client IP -------------------------------------------------------------------------
def ip_key(ip: str | None) -> str | None:
    """The rate-limit identity of an address: IPv4 as is, IPv6 grouped by its /64.

    IPv4-mapped IPv6 addresses count as their IPv4 address; an already grouped
    ``"2001:db8::/64"`` is returned unchanged. Anything unparsable gives ``None``.
    """
    if not ip:
        return None
    text = str(ip).strip()
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return None
        if net.version == 6 and net.prefixlen >= 64:
            return str(net.supernet(new_prefix=64))
        return str(net)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        # One subscriber usually gets a whole /64, so per-address limits on IPv6 would
        # be trivially bypassed by rotating the interface id (django-ratelimit default).
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def client_ip(request: Any) -> str | None:
    """The client's IP: ``REMOTE_ADDR``, or the address a trusted proxy forwarded.

    With ``VERIFYNOW["TRUSTED_PROXIES"]`` set, ``X-Forwarded-For`` is read only when
    the immediate peer (``REMOTE_ADDR``) is in one of those networks; it is then walked
    from the right past every entry that is itself a trusted proxy, and the first
    untrusted address is the client. A malformed entry stops the walk at the last good
    address (a proxy's), never at an entry further left, which the client chose. A
    peer outside the networks is the client, whatever its headers say.

    Only ``X-Forwarded-For`` is read: ``Forwarded`` (RFC 7239) and ``X-Real-IP`` are
    not. A proxy usually writes one of these headers and passes the others on from the
    client untouched, so reading a header the proxy does not write would let the
    client choose its address.

    Without ``TRUSTED_PROXIES`` the deprecated ``TRUSTED_PROXY_COUNT`` (*n* > 0) takes
    the *n*-th entry from the right, whoever connected; with neither it is
    ``REMOTE_ADDR``, and the first request that carries a forwarding header logs one
    warning per process.
    """
    meta = getattr(request, "META", {}) or {}
    remote = _clean_ip(meta.get("REMOTE_ADDR"))
    proxies = verifynow_settings.TRUSTED_PROXIES
    if proxies:
        return _walk_forwarded(remote, _forwarded_chain(meta), proxies)
    trusted = verifynow_settings.TRUSTED_PROXY_COUNT
    if trusted == 0:
        _warn_once_if_forwarded(meta)
        return remote
    # Deprecated hop count (W007): kept as it was for one release.
    chain = _forwarded_chain(meta)
    if len(chain) < trusted:
        return remote
    return _clean_ip(chain[-trusted]) or remote


def _forwarded_chain(meta: Any) -> list[str]:
    """The non-empty ``X-Forwarded-For`` entries, left (client side) to right.

    WSGI servers join repeated header lines with commas, so one split covers them.
    """
    chain = [p.strip() for p in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    return [p for p in chain if p]


def _walk_forwarded(
    remote: str | None, chain: list[str], proxies: tuple[IPNetwork, ...]
) -> str | None:
    """The client behind ``remote``: the trusted-network walk of :func:`client_ip`."""
    if remote is None or not _is_trusted_proxy(remote, proxies):
        return remote
    client = remote
    for entry in reversed(chain):
        address = _clean_ip(entry)
        if address is None:
            # Where a proxy's address should be there is none, so the chain cannot be
            # followed: keep the last address a trusted proxy vouched for, never guess
            # further left, where the client writes.
            break
        client = address
        if not _is_trusted_proxy(address, proxies):
            break
    return client


def _is_trusted_proxy(address: str, proxies: tuple[IPNetwork, ...]) -> bool:
    """Whether ``address`` (as :func:`_clean_ip` gives it) is in a trusted network."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; 10.0.0.0/8 in the
        # setting must still match them.
        ip = ip.ipv4_mapped
    return any(ip in network for network in proxies)


#: Request headers that say a proxy is in front of the app (META name, header name).
_FORWARDING_HEADERS = (
    ("HTTP_X_FORWARDED_FOR", "X-Forwarded-For"),
    ("HTTP_FORWARDED", "Forwarded"),
    ("HTTP_X_REAL_IP", "X-Real-IP"),
)

_forwarded_warning_logged = False
_forwarded_warning_lock = threading.Lock()


def _warn_once_if_forwarded(meta: Any) -> None:
    """Log, once per process, that forwarding headers arrive with no proxy trusted.

    Once, not per request: every request of a site behind a proxy carries them, and a
    client can send them too. The header's name is logged, never its addresses.
    """
    global _forwarded_warning_logged
    if _forwarded_warning_logged:
        return
    header = next((name for key, name in _FORWARDING_HEADERS if meta.get(key)), None)
    if header is None:
        return
    with _forwarded_warning_lock:
        if _forwarded_warning_logged:
            return
        _forwarded_warning_logged = True
    logger.warning(
        "requests carry %s but VERIFYNOW TRUSTED_PROXIES is empty: every client "
        "behind your proxy shares the proxy's address for the rate limits",
        header,
    )


def _clean_ip(value: Any) -> str | None:
    """Normalise one address; tolerates ``1.2.3.4:80`` and ``[::1]:80`` forms."""
    if not value:
        return None
    text = str(value).strip()
    candidates = [text]
    if text.startswith("[") and "]" in text:
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def get_attempt(
    attempt_id: uuid.UUID | str, *, request: HttpRequest | None = None
) -> VerificationAttempt:
    """Return the attempt if the requester may see it, else raise
    :class:`AttemptNotFound`.

    Lookups spend the requester's ``read`` budget, so ids cannot be enumerated.

    :raises RateLimited: the ``read`` limits.
    """
    requester = requester_for(request, bind=False)
    if not requester.trusted:
        policy.spend(policy.Action.READ, requester.limit_keys)
    return resolve(attempt_id, requester)
