"""A threaded HTTP/1.1 server (with keep-alive) for the simulator's WSGI app.

For wire-level tests: a real socket, real ``requests`` connection pooling, and faults
that only a server can produce (an answer that arrives too late, a connection closed
or reset without an answer). It counts the TCP connections it accepts, so tests can
prove that a client reuses its connections (``GET /__sim__/stats``).

Usage::

    with SandboxServer(SandboxEngine()) as server:
        requests.get(server.url + "/auth/v1/authentication/token", params=...)
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from .engine import SandboxEngine
from .wsgi import CONTROL_KEY, STATS_KEY, make_wsgi_app

__all__ = ["SandboxServer"]

logger = logging.getLogger("django_verifynow.sandbox")

_MAX_BODY = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    """Runs the WSGI app for every request on a keep-alive connection."""

    protocol_version = "HTTP/1.1"
    server_version = "VerifyNowSandbox/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _HTTPServer

    def setup(self) -> None:
        # Idle keep-alive connections give up after this long (socket timeout).
        # Per connection, so on the instance: typeshed declares it a ClassVar.
        self.timeout = self.server.idle_timeout  # type: ignore[misc]
        super().setup()
        self.server.connection_opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the connection was reset on purpose (a fault) or by the client
        finally:
            self.server.connection_closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # The default writes request lines with query strings (key=..., code=...) to
        # stderr; keep quiet, the request log is in the engine.
        return

    def do_GET(self) -> None:  # noqa: N802 - the base class dispatches on this name
        self._run()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET  # noqa: N815

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length < 0 or length > _MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _environ(self, body: bytes) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        if "://" in path:  # absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            CONTROL_KEY: {},
            STATS_KEY: self.server.stats,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _run(self) -> None:
        self.server.request_served()
        body = self._read_body()
        if body is None:
            self._send(400, [("Content-Type", "text/plain")], b"Bad request body")
            self.close_connection = True
            return
        environ = self._environ(body)
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info=None):
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers
            return lambda data: None

        result = self.server.app(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        control = environ[CONTROL_KEY]
        fault, delay = control.get("fault"), float(control.get("delay") or 0.0)
        if fault == "connect_error":
            self._abort(reset=True)
            return
        if delay and self.server.stopping.wait(delay):
            self._abort(reset=True)  # the server is stopping: do not answer late
            return
        if fault == "drop_connection":
            self._abort(reset=False)
            return
        headers = [
            (k, v) for k, v in captured["headers"] if k.lower() != "content-length"
        ]
        self._send(
            captured["status"], headers, b"" if self.command == "HEAD" else content
        )

    def _send(
        self, status: int, headers: list[tuple[str, str]], content: bytes
    ) -> None:
        try:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            # Every answer carries its length, so the connection can be kept alive.
            self.send_header("Content-Length", str(len(content)))
            if self.close_connection:
                self.send_header("Connection", "close")
            # Head and body in one write: no small-segment stall (Nagle, delayed ACK).
            # _headers_buffer is the base class's private buffer, unknown to typeshed.
            self._headers_buffer.append(b"\r\n" + content)  # type: ignore[attr-defined]
            self.flush_headers()
        except OSError:
            self.close_connection = True  # the client went away (it timed out)

    def _abort(self, *, reset: bool) -> None:
        self.close_connection = True
        if reset:
            # SO_LINGER 0: close() sends RST instead of FIN, like a refused/reset peer.
            try:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
            except OSError:
                pass
        # Otherwise finish() closes the socket normally: the client reads EOF only.


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver listens with a backlog of 5: a burst of new connections (hundreds
    # of concurrent requests, each thread with its own vendor connection) would
    # overflow it, and the kernel drops SYNs that clients retry only a second later:
    # connect delays a real vendor would not cause. The kernel caps it at somaxconn.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: Any, idle_timeout: float) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self.idle_timeout = idle_timeout
        self.stopping = threading.Event()
        self._counter_lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.connections_opened = 0
        self.requests_served = 0
        super().__init__(address, _Handler)

    def connection_opened(self, sock: socket.socket) -> None:
        with self._counter_lock:
            self.connections_opened += 1
            self._open.add(sock)

    def connection_closed(self, sock: socket.socket) -> None:
        with self._counter_lock:
            self._open.discard(sock)

    def request_served(self) -> None:
        with self._counter_lock:
            self.requests_served += 1

    def stats(self) -> dict[str, int]:
        with self._counter_lock:
            return {
                "connections_opened": self.connections_opened,
                "connections_open": len(self._open),
                "requests_served": self.requests_served,
            }

    def close_open_connections(self) -> None:
        with self._counter_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Connection resets and similar are normal here; anything else goes to the log
        # (without the request line, which may carry secrets in its query string).
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        logger.exception("VerifyNow sandbox server error")


class SandboxServer:
    """Serve a :class:`SandboxEngine` over real HTTP/1.1 on a background thread.

    ``port=0`` picks a free port; read :attr:`url` after :meth:`start`. Also a context
    manager (starts on enter, stops on exit).
    """

    def __init__(
        self,
        engine: SandboxEngine | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        idle_timeout: float = 60.0,
    ) -> None:
        self.engine = engine if engine is not None else SandboxEngine()
        self.app = make_wsgi_app(self.engine)
        self._address = (host, port)
        self._idle_timeout = idle_timeout
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _bind(self) -> _HTTPServer:
        if self._httpd is None:
            self._httpd = _HTTPServer(self._address, self.app, self._idle_timeout)
        return self._httpd

    def start(self) -> SandboxServer:
        """Bind and serve on a daemon thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("This SandboxServer is already running.")
        httpd = self._bind()
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="verifynow-sandbox-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Bind and serve on the calling thread until :meth:`stop` (or Ctrl-C)."""
        httpd = self._bind()
        try:
            httpd.serve_forever(poll_interval=0.2)
        finally:
            self._close()

    def stop(self) -> None:
        """Stop serving, interrupt delayed answers and close every connection."""
        httpd = self._httpd
        if httpd is None:
            return
        httpd.stopping.set()
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._close()

    def _close(self) -> None:
        httpd = self._httpd
        if httpd is None:
            return
        httpd.stopping.set()
        httpd.close_open_connections()
        httpd.server_close()
        self._httpd = None

    @property
    def host(self) -> str:
        """The bound host."""
        return str(self._bind().server_address[0])

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        return int(self._bind().server_address[1])

    @property
    def url(self) -> str:
        """Base URL to use as ``VERIFYNOW["BASE_URL"]``, e.g. ``http://127.0.0.1:8765``."""
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def stats(self) -> dict[str, int]:
        """Server counters: connections opened and open, requests served."""
        return self._bind().stats()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
