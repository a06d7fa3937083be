"""The send gate's hold on botocore, urllib3 and http.client: each test fails if an upgrade moves what it relies on.

No server: a connection's socket is one end of a socket pair, and the test reads
the other end to see what was written, and when.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from cache_ingress import aws_api, connect, response_delivery, send_gate
from cache_ingress.errors import OutOfTime
from cache_ingress.send_gate import GatedHTTPConnection, GatedHTTPSConnection, gated

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
def wire() -> Iterator[tuple[GatedHTTPConnection, socket.socket]]:
    """A gated connection, connected to a peer socket the test reads."""
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    connection = GatedHTTPConnection("ec2.example.test", 80, timeout=5.0)
    connection.sock = ours
    yield connection, peer
    connection.close()
    peer.close()


def written(peer: socket.socket) -> bytes:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


@pytest.mark.parametrize("service", ["ec2", "elasticache", "memorydb", "dynamodb"])
def test_every_client_make_client_makes_opens_gated_connections(service: str) -> None:
    """Whatever the service: the pool botocore's session sends a request through makes gated connections."""
    client = aws_api.make_client(service)
    manager = client._endpoint.http_session._manager
    for url in (client.meta.endpoint_url, "https://example.test", "http://example.test"):
        pool = manager.connection_from_url(url)
        assert pool.ConnectionCls in (GatedHTTPConnection, GatedHTTPSConnection), url


def test_a_change_is_let_go_once_connected_just_before_its_first_byte(
    wire: tuple[GatedHTTPConnection, socket.socket],
) -> None:
    connection, peer = wire
    seen: list[tuple[bool, bytes]] = []

    def gate() -> float:
        seen.append((connection.sock is not None, written(peer)))
        return 3.0

    with gated(gate):
        connection.request("POST", "/", body=iter([b"Action=", b"AuthorizeSecurityGroupIngress"]), chunked=True)
    assert seen == [(True, b"")]  # asked once for the request, connected, nothing written yet
    assert written(peer).startswith(b"POST / HTTP/1.1")


def test_a_change_the_gate_refuses_writes_nothing(wire: tuple[GatedHTTPConnection, socket.socket]) -> None:
    connection, peer = wire

    def gate() -> float:
        raise OutOfTime("a change was not sent: the request has already been answered")

    with gated(gate), pytest.raises(OutOfTime):
        connection.request("POST", "/", body=b"Action=AuthorizeSecurityGroupIngress")
    assert written(peer) == b""


def test_a_lookup_passes_no_gate(wire: tuple[GatedHTTPConnection, socket.socket]) -> None:
    connection, peer = wire
    connection.request("POST", "/", body=b"Action=DescribeSecurityGroupRules")
    assert written(peer).startswith(b"POST / HTTP/1.1")


def test_the_read_of_a_changes_answer_is_cut_to_the_time_its_gate_gave(
    wire: tuple[GatedHTTPConnection, socket.socket],
) -> None:
    connection, peer = wire
    with gated(lambda: 0.3):
        connection.request("POST", "/", body=b"Action=RevokeSecurityGroupIngress")
    peer.sendall(ANSWER)
    response = connection.getresponse()
    assert response.status == 200
    assert connection.sock is not None
    timeout = connection.sock.gettimeout()
    assert timeout is not None
    assert 0 < timeout <= 0.3  # not the 5 s the connection was made with


def test_a_gated_connection_opens_its_socket_within_the_connect_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3 connects through ``_new_conn``: the gated one resolves and connects within the one timeout."""
    ours, peer = socket.socketpair()
    calls: list[tuple[Any, ...]] = []

    def create_connection(address: tuple[str, int], timeout: float | None, **_: Any) -> socket.socket:
        calls.append((address, timeout))
        return ours

    monkeypatch.setattr(send_gate, "create_connection", create_connection)
    connection = GatedHTTPConnection("ec2.example.test", 8080, timeout=0.5)
    try:
        connection.connect()
        assert calls == [(("ec2.example.test", 8080), 0.5)]
        assert connection.sock is ours
    finally:
        connection.close()
        peer.close()


def test_the_answers_put_opens_its_socket_within_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """http.client connects through the connection's ``_create_connection``: the PUT's resolves within the timeout."""
    connection = response_delivery._Connection("cfn.example.test", 443, timeout=1.0)
    assert connection._create_connection is connect.create_connection

    class Called(Exception):
        pass

    def create_connection(*_: Any) -> socket.socket:
        raise Called

    monkeypatch.setattr(connection, "_create_connection", create_connection)
    with pytest.raises(Called):
        connection.connect()
    assert isinstance(connection, http.client.HTTPSConnection)


def test_an_address_is_not_resolved_in_a_thread_of_its_own() -> None:
    assert connect.resolve("127.0.0.1", 443, 0.5)[0][4] == ("127.0.0.1", 443)
