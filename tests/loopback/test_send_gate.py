"""A change reaches AWS before the answer or never, whatever holds it on its way: name resolution, a connect.

The promise is made on the request reaching AWS, not on the call starting
(:class:`cache_ingress.timing.Deadline`). Each scenario holds a call where no
guard before the call can see it: the endpoint's name resolution (the test
process's ``socket.getaddrinfo``, held for one made-up host name that resolves,
when let go, to 127.0.0.1), or a TCP connect to loopback listeners whose accept
queue is full, so that they answer no SYN. Then, as a user would notice it:
when the answer arrived and what it said, and, from the EC2 front's call log
and moto, that no write reached EC2 after it, even once the resolver is let go.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import app
from cache_ingress import aws_api, retry, send_gate
from cache_ingress.aws_api import Ec2Api
from cache_ingress.errors import OutOfTime
from cache_ingress.timing import Deadline
from tests.support import LambdaContext, Servers, assert_failed, handle, load_event
from tests.vpc_world import app_rules

#: The longest a held name resolution waits to be let go: past every invocation below, so that code which waits
#: for it (the unchanged code did) is seen to, but bounded, so that no test hangs.
HOLD_LIMIT_S = 10.0
#: How long a test waits for something it polls for before failing.
POLL_LIMIT_S = 15.0


def poll(condition: Callable[[], bool], limit: float = POLL_LIMIT_S) -> None:
    """Wait until ``condition()``, failing after ``limit`` seconds."""
    ends = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < ends, "the condition was not met in time"
        time.sleep(0.05)


class HeldResolver:
    """``socket.getaddrinfo`` for one host name, held until :attr:`release` is set, then 127.0.0.1's.

    With ``changes_only``, only a resolution made on a change's way is held (a lookup's, such as the rule
    quota's read before the Authorize, answers at once). ``addresses``, when set, are the (127.0.0.1, port) pairs the name resolves to instead, as DNS answers
    several A records for one endpoint; they are given at once, not held.
    """

    def __init__(self, host: str, real: Callable[..., Any], *, changes_only: bool = False) -> None:
        self.host = host
        self.changes_only = changes_only
        self.release = threading.Event()
        self.addresses: list[int] = []
        self._real = real
        self._lock = threading.Lock()
        self.asked = self.answered = 0

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != self.host:
            return self._real(host, port, *args, **kwargs)
        if self.changes_only and send_gate._gate.get() is None:
            return self._real("127.0.0.1", port, *args, **kwargs)
        if self.addresses:
            return [info for p in self.addresses for info in self._real("127.0.0.1", p, socket.AF_INET, *args[1:])]
        with self._lock:
            self.asked += 1
        try:
            self.release.wait(HOLD_LIMIT_S)
            return self._real("127.0.0.1", port, *args, **kwargs)
        finally:
            with self._lock:
                self.answered += 1

    def let_go(self) -> None:
        """Let every held resolution answer, and wait until each has."""
        self.release.set()
        poll(lambda: self.answered == self.asked)


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldResolver]:
    """Name resolution of ``ec2.held.test`` held; let go at the end in any case."""
    held = HeldResolver("ec2.held.test", socket.getaddrinfo, changes_only=True)
    monkeypatch.setattr(socket, "getaddrinfo", held.getaddrinfo)
    yield held
    held.let_go()


@pytest.fixture
def held_ec2(servers: Servers, resolver: HeldResolver, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldResolver]:
    """The function's EC2 endpoint named ``ec2.held.test`` (the EC2 front's port): its client made anew."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", f"http://{resolver.host}:{urlsplit(servers.ec2.url).port}")
    app.ec2.cache_clear()
    app.modes.cache_clear()
    yield resolver
    app.ec2.cache_clear()  # the next test's client is made with the front's own address again
    app.modes.cache_clear()


@pytest.fixture
def let_go_after_the_answer(servers: Servers, resolver: HeldResolver) -> Iterator[None]:
    """Let the resolver go once an answer has reached the receiver (or after the poll's bound)."""
    servers.receiver.reset()

    def watch() -> None:
        with contextlib.suppress(AssertionError):
            poll(lambda: bool(servers.receiver.puts()))
        resolver.release.set()

    watcher = threading.Thread(target=watch, name="let-go-after-the-answer", daemon=True)
    watcher.start()
    yield
    watcher.join(POLL_LIMIT_S + 1)


def test_an_authorize_held_in_name_resolution_past_the_answer_never_reaches_ec2(
    servers: Servers, vpc: dict[str, str], held_ec2: HeldResolver, let_go_after_the_answer: None
) -> None:
    """EC2's name does not resolve until after the answer (the offline world saw 10 s): the Authorize's first
    attempt loses its connection (the reads before it had opened one), and every attempt after gives up on the
    name within its connect timeout; the handler answers FAILED in time naming the call, and once the resolver
    answers, still no Authorize reaches EC2."""
    servers.ec2.drop_next(1, action="AuthorizeSecurityGroupIngress")
    delivery = handle(load_event("vpc-create.json", vpc), seconds=4.0)  # deadline 3 s, backstop 3.65 s
    answer = delivery.answer()
    assert_failed(answer, "ran out of time")
    (put,) = delivery.puts
    assert put.at - delivery.started < 4.0
    held_ec2.let_go()
    assert held_ec2.asked >= 1  # the Authorize was held there
    assert [(c.action, c.error) for c in servers.ec2.writes()] == [("AuthorizeSecurityGroupIngress", "dropped")]
    assert app_rules(servers.moto, vpc) == set()
    assert "AuthorizeSecurityGroupIngress" in answer["Reason"]  # the handler answered, knowing which call


@pytest.fixture
def stuck_listeners() -> Iterator[list[int]]:
    """Ports of loopback listeners that answer no SYN: their accept queue is full and nothing accepts."""
    listeners: list[socket.socket] = []
    fillers: list[socket.socket] = []
    try:
        for _ in range(10):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            listeners.append(listener)
            while True:  # connect until one connect is not answered: the queue is full
                filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                fillers.append(filler)
                filler.settimeout(0.2)
                try:
                    filler.connect(listener.getsockname())
                except TimeoutError:
                    break
                assert len(fillers) < 100, "the accept queue never filled"
        yield [listener.getsockname()[1] for listener in listeners]
    finally:
        for sock in fillers + listeners:
            sock.close()


def test_an_authorize_whose_connect_never_completes_never_reaches_ec2_after_the_answer(
    servers: Servers, vpc: dict[str, str], held_ec2: HeldResolver, stuck_listeners: list[int]
) -> None:
    """EC2's name resolves to ten addresses that answer no SYN, then to the front's: a connect timeout per address
    would reach the front after the answer. The connect timeout bounds them all together: the handler answers
    FAILED in time, naming the call, and no Authorize reaches EC2. (The Authorize's first attempt loses the
    connection the reads before it had opened, so that its next one connects anew.)"""
    servers.ec2.drop_next(1, action="AuthorizeSecurityGroupIngress")
    held_ec2.addresses = [*stuck_listeners, int(urlsplit(servers.ec2.url).port or 0)]
    delivery = handle(load_event("vpc-create.json", vpc), seconds=4.0)  # deadline 3 s, backstop 3.65 s
    answer = delivery.answer()
    assert_failed(answer, "ran out of time")
    (put,) = delivery.puts
    assert put.at - delivery.started < 4.0
    assert delivery.returned - delivery.started < 4.0  # the handler was not held past the Lambda's end
    assert [c.action for c in servers.ec2.writes() if c.arrived > put.at] == []
    assert [(c.action, c.error) for c in servers.ec2.writes()] == [("AuthorizeSecurityGroupIngress", "dropped")]
    assert app_rules(servers.moto, vpc) == set()
    assert "AuthorizeSecurityGroupIngress" in answer["Reason"]


def test_a_change_whose_name_resolution_outlasts_the_answer_is_not_sent(
    servers: Servers, vpc: dict[str, str], resolver: HeldResolver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate itself: the invocation answers (the backstop, say) while a change's endpoint is being resolved.
    The change is refused as it is about to be written, and nothing reaches EC2; a lookup is not held to it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", f"http://{resolver.host}:{urlsplit(servers.ec2.url).port}")
    ec2 = Ec2Api(aws_api.make_client("ec2"))
    source, cache, _shared = vpc.values()
    deadline = Deadline(5.0)
    real = resolver.getaddrinfo

    def answered_meanwhile(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == resolver.host:
            deadline.answered()  # no change in flight: it returns at once
            resolver.release.set()
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", answered_meanwhile)
    permissions = [{"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [{"GroupId": source}]}]
    started = time.monotonic()
    with pytest.raises(OutOfTime, match="a change was not sent: the request has already been answered"):
        retry.change(lambda: ec2.authorize(cache, permissions, {"cache-ingress:claim:test": "gate"}), deadline)
    assert time.monotonic() - started < 1.0  # refused, not retried nor waited for
    assert servers.ec2.calls() == []
    assert ec2.rules(cache) is not None  # a lookup made outside retry: not a change, never gated
    assert [c.action for c in servers.ec2.calls()] == ["DescribeSecurityGroupRules"]
    assert app_rules(servers.moto, vpc) == set()


def test_the_answers_put_to_a_host_that_does_not_resolve_ends_before_the_lambda_does(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ResponseURL's host does not resolve until long after the Lambda's end: the PUT gives up within the time
    the answer has, and the handler returns before the Lambda would be stopped."""
    held = HeldResolver("cfn-response.held.test", socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", held.getaddrinfo)
    servers.receiver.reset()
    event = load_event("create-bad-input.json")
    path = urlsplit(servers.receiver.new_url())
    event["ResponseURL"] = f"https://{held.host}:{path.port}{path.path}?{path.query}"
    started = time.monotonic()
    try:
        app.lambda_handler(event, LambdaContext(3.0))
        returned = time.monotonic()
    finally:
        held.let_go()
    assert held.asked >= 1  # the PUT was held there
    assert returned - started < 3.0
    assert servers.receiver.puts() == []
