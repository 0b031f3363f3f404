"""Building the client from the ``VERIFYNOW`` settings: :func:`get_client`."""

from __future__ import annotations

import hashlib
import threading
import weakref
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from ..conf import verifynow_settings
from .calls import VerifyNowClient

if TYPE_CHECKING:
    from .aio import AsyncVerifyNowClient

__all__ = ["get_async_client", "get_client"]

#: Clients per configuration (see :func:`get_client`); cleared when it grows past 32.
_clients: dict[tuple[Any, ...], VerifyNowClient] = {}
_clients_lock = threading.Lock()


def get_client() -> VerifyNowClient:
    """Return the client for the current ``VERIFYNOW`` settings.

    Clients are cached per configuration, so ``override_settings`` gets a matching
    client and production reuses one pool of connections. With ``SANDBOX`` on, every
    request goes to the in-process simulator: nothing leaves the machine.
    """
    # Looked up several times per send: working out its configuration again (a dozen
    # settings and a digest of the password) only when the settings change.
    return verifynow_settings.derived("client", _client_for_settings)


def _client_for_settings() -> VerifyNowClient:
    """The cached client of the current settings' configuration, made if new."""
    s = verifynow_settings
    sandbox = s.SANDBOX
    if sandbox:
        from ..sandbox import sandbox_credentials

        customer_id, password = sandbox_credentials()
    else:
        customer_id, password = s.require_credentials()
    config = (
        sandbox,
        s.BASE_URL,
        customer_id,
        # The key holds a digest, never the password itself.
        hashlib.sha256(password.encode()).hexdigest(),
        s.API_VERSION,
        s.TIMEOUT,
        s.DEADLINE,
        s.EMAIL,
        s.COUNTRY,
        s.CACHE,
        s.CIRCUIT_BREAKER_FAILURES,
        s.CIRCUIT_BREAKER_RESET,
    )
    with _clients_lock:
        client = _clients.get(config)
        if client is None:
            adapter_factory = None
            if sandbox:
                from ..sandbox.transport import SandboxAdapter

                adapter_factory = SandboxAdapter
            client = VerifyNowClient(
                customer_id=customer_id,
                password=password,
                base_url=s.BASE_URL,
                api_version=s.API_VERSION,
                timeout=s.TIMEOUT,
                deadline=s.DEADLINE,
                email=s.EMAIL,
                country=s.COUNTRY,
                cache_alias=s.CACHE,
                breaker_failures=s.CIRCUIT_BREAKER_FAILURES,
                breaker_reset=s.CIRCUIT_BREAKER_RESET,
                adapter_factory=adapter_factory,
            )
            if len(_clients) > 32:  # many override_settings in a test run
                _clients.clear()
            _clients[config] = client
        return client


#: The async face of each cached client (dropped with it).
_async_clients: weakref.WeakKeyDictionary[VerifyNowClient, AsyncVerifyNowClient] = (
    weakref.WeakKeyDictionary()
)


def get_async_client() -> AsyncVerifyNowClient:
    """Return the async client for the current ``VERIFYNOW`` settings.

    It shares everything with :func:`get_client`'s client (token cache, breaker,
    settings); only its HTTP goes through ``httpx``. With ``SANDBOX`` on it answers from
    the in-process simulator, like the sync one.

    :raises ImproperlyConfigured: ``httpx`` is missing (install
        ``django-verifynow[async]``), or the settings are incomplete.
    """
    try:
        import httpx  # noqa: F401
    except ImportError:
        raise ImproperlyConfigured(
            _(
                "The async API of django-verifynow needs httpx: "
                "pip install django-verifynow[async]"
            )
        ) from None
    from .aio import AsyncVerifyNowClient

    client = get_client()
    with _clients_lock:
        aclient = _async_clients.get(client)
        if aclient is None:
            factory = None
            if verifynow_settings.SANDBOX:
                from ..sandbox.aio import SandboxAsyncTransport

                factory = SandboxAsyncTransport
            aclient = AsyncVerifyNowClient(client, factory)
            _async_clients[client] = aclient
        return aclient
