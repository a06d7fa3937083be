"""Where a change is let go to AWS: at the last moment before its request is written to the socket.

The promise is :class:`~cache_ingress.timing.Deadline`'s (no change reaches
AWS after the answer or the deadline); this module is where it is kept.
:mod:`cache_ingress.retry` checks the deadline before each attempt, but a
call can still be held after that and before a byte of it leaves: resolving
the endpoint's name, the TCP and TLS connect. So each attempt at a change runs
under a gate (:func:`gated`), and the connections of every client
:func:`cache_ingress.aws_api.make_client` makes ask it, connected and about to
write the request's first bytes; the gate (the deadline's
:meth:`~cache_ingress.timing.Deadline.send_change`) either lets the change go,
counted as in flight, or raises: then nothing was written, and the caller gets
that error back. Lookups pass no gate. The connections also bound name
resolution by their connect timeout (:mod:`cache_ingress.connect`), and cut
the read of a change's answer to the time the gate gave it.

botocore offers no hook at that moment: its ``before-send`` event fires
before the connection is taken from its pool, so before name resolution and
connect. urllib3 makes each connection of a pool from the pool's
``ConnectionCls``, and botocore's session (``URLLib3Session``) picks the pool
classes from a map of its own; :func:`install` puts the gated ones in the map
of one client's session, leaving botocore's classes, and every other client,
as they were. tests/unit/test_send_gate.py fails if an upgrade of botocore or
urllib3 moves what this relies on.
"""

from __future__ import annotations

import contextvars
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
)
from urllib3.connection import HTTPConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .connect import create_connection

#: Asked as a change's request is about to leave: raises to keep it from leaving, else returns how long its
#: answer may be read. None for a call that is not a change.
Gate = Callable[[], float]

_gate: contextvars.ContextVar[Gate | None] = contextvars.ContextVar("change_gate", default=None)


@contextmanager
def gated(gate: Gate) -> Iterator[None]:
    """Requests made inside are a change's: each leaves only if ``gate()``, asked at the last moment, lets it."""
    token = _gate.set(gate)
    try:
        yield
    finally:
        _gate.reset(token)


def install(client: Any) -> None:
    """Make the connections of ``client`` (a botocore client) gated: each new pool it opens uses them."""
    pools: dict[str, type] = client._endpoint.http_session._pool_classes_by_scheme
    pools.update(http=GatedHTTPConnectionPool, https=GatedHTTPSConnectionPool)


class _Gated(HTTPConnection):
    """What the gated connections add to botocore's: the gate before the first write, bounded name resolution.

    A request starts with ``putrequest``, which takes the gate of the call
    being made (if any); the first ``send`` connects if the connection is not
    yet (http.client would, in that same ``send``), then asks the gate.
    """

    _pending: Gate | None = None
    _read_until: float | None = None

    def putrequest(self, method: str, url: str, skip_host: bool = False, skip_accept_encoding: bool = False) -> None:
        self._pending, self._read_until = _gate.get(), None
        super().putrequest(method, url, skip_host=skip_host, skip_accept_encoding=skip_accept_encoding)

    def send(self, data: Any) -> None:
        gate, self._pending = self._pending, None
        if gate is not None:
            if self.sock is None:
                self.connect()
            self._read_until = time.monotonic() + gate()
        super().send(data)

    def getresponse(self) -> Any:
        """A change's read ends when the gate said: its read timeout was set as the call started, before
        whatever held it on its way, and reading on would leave a change in flight the answer no longer waits for."""
        if self._read_until is not None:
            left = max(0.01, self._read_until - time.monotonic())
            self.timeout = min(self.timeout, left) if isinstance(self.timeout, int | float) else left
            if self.sock is not None:
                self.sock.settimeout(self.timeout)
        return super().getresponse()

    def _new_conn(self) -> socket.socket:
        """urllib3's, with name resolution inside the connect timeout (:mod:`cache_ingress.connect`)."""
        timeout = self.timeout if isinstance(self.timeout, int | float) else socket.getdefaulttimeout()
        try:
            sock = create_connection(
                (self._dns_host, self.port),
                timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as err:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from err
        except OSError as err:
            raise NewConnectionError(self, f"Failed to establish a new connection: {err}") from err
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class GatedHTTPConnection(_Gated, AWSHTTPConnection):  # type: ignore[misc]  # botocore is untyped
    pass


class GatedHTTPSConnection(_Gated, AWSHTTPSConnection):  # type: ignore[misc]
    pass


class GatedHTTPConnectionPool(AWSHTTPConnectionPool):  # type: ignore[misc]
    ConnectionCls = GatedHTTPConnection


class GatedHTTPSConnectionPool(AWSHTTPSConnectionPool):  # type: ignore[misc]
    ConnectionCls = GatedHTTPSConnection
