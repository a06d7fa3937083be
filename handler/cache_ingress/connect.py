"""Opening a TCP connection within one timeout, name resolution included.

``socket.create_connection`` (which http.client uses) and urllib3's copy of it
(which botocore uses) bound each connect by their timeout, but not the name
resolution before it: ``getaddrinfo`` is a blocking C call no socket timeout
reaches, and a resolver that does not answer holds it for as long as its own
retries last (5 s and more per attempt). Here the resolution runs in a thread
of its own and is given up on when the timeout runs out; that thread is left to
end by itself (a daemon, holding nothing but its own result).
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

AddressInfo = tuple[Any, ...]


def create_connection(
    address: tuple[str, int],
    timeout: float | None,
    source_address: tuple[str, int] | None = None,
    socket_options: Iterable[Sequence[Any]] | None = None,
) -> socket.socket:
    """A connected socket to ``address``, as ``socket.create_connection``, but within ``timeout`` in all.

    Name resolution and the TCP connects to the addresses it gives share the
    one ``timeout`` (None: no bound, as a blocking socket); ``TimeoutError``
    when it runs out. The socket is left with ``timeout`` itself, for what
    follows (urllib3's TLS handshake, http.client's send).
    """
    host, port = address
    ends_at = None if timeout is None else time.monotonic() + timeout
    addresses = resolve(host, port, timeout)
    if not addresses:
        raise socket.gaierror(f"no address found for {host}")
    last: OSError = TimeoutError(f"connecting to {host} timed out (timeout {timeout} s)")
    for family, kind, proto, _name, sockaddr in addresses:
        left = None if ends_at is None else ends_at - time.monotonic()
        if left is not None and left <= 0:
            break
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(left)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as err:
            last = err
            sock.close()
            continue
        sock.settimeout(timeout)
        return sock
    raise last


def resolve(host: str, port: int, within: float | None) -> list[AddressInfo]:
    """``getaddrinfo`` for a TCP connection to ``host``, given up on after ``within`` seconds (``TimeoutError``).

    An address literal needs no resolver and is answered at once, in the
    caller's thread; a name is resolved in a thread of its own, waited for at
    most ``within`` seconds.
    """
    host = host.strip("[]")  # an IPv6 literal as a URL writes it

    def lookup() -> list[AddressInfo]:
        return list(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))

    if within is None or _is_address(host):
        return lookup()
    done = threading.Event()
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(lookup())
        except Exception as err:  # handed to the caller, whatever it is
            outcome.append(err)
        finally:
            done.set()

    # In the caller's context: the resolution belongs to its call (a change's, say), for whoever looks.
    threading.Thread(target=contextvars.copy_context().run, args=(run,), name=f"resolve {host}", daemon=True).start()
    if not done.wait(max(0.0, within)):
        raise TimeoutError(f"resolving {host} took longer than {within:.2f} s")
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    found: list[AddressInfo] = outcome[0]
    return found


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True
