"""The sandbox server takes a burst of new connections at once.

A benchmark of hundreds of concurrent requests (``benchmarks/asgi_concurrency.py``:
one thread per request under ASGI, each with its own vendor connection) opens that
many connections in the same instant. With ``socketserver``'s default listen backlog
of 5, the kernel drops the SYNs beyond the accept queue and the clients retry a
second later: connect delays, and timeouts, that the simulated vendor caused.
"""

from __future__ import annotations

import socket

from django_verifynow.sandbox.server import SandboxServer

BURST = 200


def test_a_burst_of_connections_is_queued_before_any_is_accepted() -> None:
    # Bound and listening, but not serving: nothing accepts, so every connection
    # below must complete its handshake into the kernel's accept queue.
    server = SandboxServer(port=0)
    port = server.port
    sockets: list[socket.socket] = []
    try:
        for _ in range(BURST):
            s = socket.socket()
            s.settimeout(3)
            s.connect(("127.0.0.1", port))  # times out once the queue is full
            sockets.append(s)
        assert len(sockets) == BURST
    finally:
        for s in sockets:
            s.close()
        server.stop()
