"""An HTTP(S) server on 127.0.0.1 in a background thread: what the stand-ins and the receiver share."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackHandler(BaseHTTPRequestHandler):
    """HTTP/1.1, quiet, answering without Nagle's delay; :meth:`drop` hangs up unanswered."""

    # Headers and body leave in separate writes: without TCP_NODELAY, Nagle and
    # delayed ACKs add 40 ms to every exchange on loopback.
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def drop(self) -> None:
        """Close the connection without an answer, as a network fault or a dead server would."""
        self.close_connection = True
        self.connection.close()

    def reply(self, status: int, body: str | None, content_type: str) -> None:
        """Answer ``status`` with ``body``; no body (``None``) hangs up unanswered, as :meth:`drop`."""
        if body is None:
            self.drop()
            return
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: URLs may hold (test) signatures, and tests read each server's record of calls instead."""


class LoopbackServer:
    def __init__(
        self, handler: type[BaseHTTPRequestHandler], name: str, port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        """Serve ``handler`` at once, on ``port`` (a free one if 0), wrapped in ``tls`` if given."""
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, name=name, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class LoopbackService:
    """What the stand-ins share: a subclass's ``start`` sets ``_server``; then ``url``, ``stop``, ``with``."""

    scheme = "http"
    _server: LoopbackServer | None = None

    def start(self) -> str:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"{self.scheme}://127.0.0.1:{self._server.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
