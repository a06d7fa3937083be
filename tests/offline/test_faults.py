"""The one fault plan both loopback servers take: which fault wins, what is used up, and how the receiver serves each."""

from __future__ import annotations

import http.client
import ssl
import time
from urllib.parse import urlsplit

import pytest

from offline.call_log import Call, CallLog
from offline.faults import Fault, FaultPlan
from offline.receiver import ResponseReceiver


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_faults_win_in_one_order_and_are_used_up() -> None:
    plan = FaultPlan(Clock())
    plan.slow_next(1, 0.5)
    plan.throttle_next(1)
    plan.fail_next(1, 500)
    plan.stall_next(1, 2.0)
    taken = [plan.take_fault("Any") for _ in range(5)]
    assert taken == [Fault("drop", 2.0), Fault("fail", 0.0, 500), Fault("throttle"), Fault("slow", 0.5), None]


def test_latency_adds_to_the_chosen_actions_only() -> None:
    plan = FaultPlan(Clock())
    plan.set_latency(0.3, {"Authorize"})
    plan.drop_next(1)
    assert plan.take_fault("Describe") == Fault("drop", 0.0)
    assert plan.take_fault("Describe") is None
    assert plan.take_fault("Authorize") == Fault("slow", 0.3)
    plan.clear_faults()
    assert plan.take_fault("Authorize") is None


def test_the_rate_limit_refills_with_the_clock() -> None:
    clock = Clock()
    plan = FaultPlan(clock)
    plan.set_rate_limit(2)
    assert [plan.take_fault("A") for _ in range(3)] == [None, None, Fault("throttle")]
    clock.now += 0.5
    assert [plan.take_fault("A") for _ in range(2)] == [None, Fault("throttle")]
    plan.set_rate_limit(None)
    assert plan.take_fault("A") is None


def put(receiver: ResponseReceiver, url: str) -> int:
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=receiver.cafile)
    connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=5, context=context)
    try:
        connection.request("PUT", f"{parts.path}?{parts.query}", body=b'{"Status": "SUCCESS"}')
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize(("arm", "status"), [("throttle", 503), ("fail", 403)])
def test_the_receiver_refuses_a_put_as_armed(receiver: ResponseReceiver, arm: str, status: int) -> None:
    if arm == "throttle":
        receiver.throttle_next(1)
    else:
        receiver.fail_next(1, 403)
    url = receiver.new_url()
    assert [put(receiver, url), put(receiver, url)] == [status, 200]
    assert (receiver.attempts(url), len(receiver.puts(url))) == (2, 1)


def test_the_receiver_hangs_up_on_a_dropped_put(receiver: ResponseReceiver) -> None:
    receiver.drop_next(1)
    url = receiver.new_url()
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        put(receiver, url)
    assert (receiver.attempts(url), receiver.puts(url)) == (1, [])


def test_the_receiver_accepts_a_slow_put_late(receiver: ResponseReceiver) -> None:
    receiver.set_latency(0.2)
    url = receiver.new_url()
    started = time.monotonic()
    assert put(receiver, url) == 200
    assert receiver.puts(url)[0].at - started >= 0.2


def test_a_drop_for_one_action_passes_the_others_by() -> None:
    plan = FaultPlan(Clock())
    plan.drop_next(1, action="Authorize")
    assert plan.take_fault("Describe") is None
    assert plan.take_fault("Authorize") == Fault("drop", 0.0)
    assert plan.take_fault("Authorize") is None


def test_a_call_that_arrived_before_the_log_was_cleared_is_not_the_next_tests() -> None:
    """A call an earlier test stalled is answered during the next one: it must not count as the next one's."""
    clock = Clock()
    log = CallLog(clock)
    clock.now = 1.0
    stalled_arrival = clock.now
    clock.now = 2.0
    log.clear()  # the next test starts
    clock.now = 3.0
    log.record(Call("AuthorizeSecurityGroupIngress", {}, 200, None, stalled_arrival, clock.now))
    log.record(Call("DescribeSecurityGroupRules", {}, 200, None, 2.5, clock.now))
    assert [c.action for c in log.calls()] == ["DescribeSecurityGroupRules"]
