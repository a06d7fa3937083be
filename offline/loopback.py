"""An HTTP(S) server on 127.0.0.1 in a background thread: what the stand-in and the receiver share."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
