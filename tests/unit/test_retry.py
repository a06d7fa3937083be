"""The one retry policy and the deadline's guard, on real botocore clients answered by the Stubber (no network)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.stub import Stubber

from cache_ingress import aws_api, retry
from cache_ingress.aws_api import ApiError, Ec2Api
from cache_ingress.errors import OutOfTime
from cache_ingress.timing import BACKSTOP_GRACE_S, MIN_ATTEMPT_S, Deadline

GROUP = "sg-0000000000000000a"
TAGS = {"cache-ingress:made-by": "stack s, resource R"}
PERMISSIONS = [{"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [{"GroupId": GROUP}]}]
PARAMS = {
    "GroupId": GROUP,
    "IpPermissions": PERMISSIONS,
    "TagSpecifications": [
        {"ResourceType": "security-group-rule", "Tags": [{"Key": k, "Value": v} for k, v in TAGS.items()]}
    ],
}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def ec2() -> Iterator[tuple[Ec2Api, Stubber]]:
    client = aws_api.make_client("ec2")
    with Stubber(client) as stubber:
        yield Ec2Api(client), stubber


def fail(stubber: Stubber, code: str, status: int) -> None:
    stubber.add_client_error("authorize_security_group_ingress", code, code, status, expected_params=PARAMS)


def succeed(stubber: Stubber) -> None:
    stubber.add_response("authorize_security_group_ingress", {"Return": True}, PARAMS)


def test_throttling_server_errors_and_5xx_are_retried_with_growing_jittered_waits(
    ec2: tuple[Ec2Api, Stubber],
) -> None:
    api, stubber = ec2
    for code, status in [("RequestLimitExceeded", 503), ("InternalError", 500), ("Unavailable", 503), ("X", 502)]:
        fail(stubber, code, status)
    succeed(stubber)
    clock, waits = Clock(), []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.sleep(seconds)

    retry.change(lambda: api.authorize(GROUP, PERMISSIONS, TAGS), Deadline(60, clock), sleep)
    stubber.assert_no_pending_responses()
    assert len(waits) == 4
    assert all(0 <= wait <= retry.FIRST_BACKOFF_S * 2**n for n, wait in enumerate(waits))


def test_a_refusal_is_raised_at_once_for_the_rules_to_read(ec2: tuple[Ec2Api, Stubber]) -> None:
    api, stubber = ec2
    fail(stubber, "InvalidPermission.Duplicate", 400)
    with pytest.raises(ApiError) as caught:
        retry.change(lambda: api.authorize(GROUP, PERMISSIONS, TAGS), Deadline(60), lambda _: pytest.fail("retried"))
    assert (caught.value.code, caught.value.status) == ("InvalidPermission.Duplicate", 400)


def test_no_quota_drains_however_many_calls_meet_errors(ec2: tuple[Ec2Api, Stubber]) -> None:
    """botocore's standard mode would stop retrying after ~100 retried calls on one client: this never does."""
    api, stubber = ec2
    clock = Clock()
    for _ in range(300):
        fail(stubber, "InternalError", 500)
        fail(stubber, "RequestLimitExceeded", 503)
        succeed(stubber)
        retry.change(lambda: api.authorize(GROUP, PERMISSIONS, TAGS), Deadline(60, clock), clock.sleep)
    stubber.assert_no_pending_responses()


def test_retrying_stops_at_the_deadline_with_a_reason_saying_so(ec2: tuple[Ec2Api, Stubber]) -> None:
    api, stubber = ec2
    clock = Clock()
    for _ in range(200):
        fail(stubber, "RequestLimitExceeded", 503)
    with pytest.raises(OutOfTime, match=r"RequestLimitExceeded.*ran out of time"):
        retry.change(lambda: api.authorize(GROUP, PERMISSIONS, TAGS), Deadline(5, clock), clock.sleep)
    assert 5 - MIN_ATTEMPT_S - 0.1 <= clock.now - 100.0 <= 5  # the last attempt started just in time


def test_nothing_starts_once_the_invocation_has_answered(ec2: tuple[Ec2Api, Stubber]) -> None:
    api, stubber = ec2
    succeed(stubber)
    deadline = Deadline(60)
    deadline.answered()
    with pytest.raises(OutOfTime, match="already been answered"):
        retry.change(lambda: api.authorize(GROUP, PERMISSIONS, TAGS), deadline)
    with pytest.raises(OutOfTime):
        retry.read(lambda: api.authorize(GROUP, PERMISSIONS, TAGS), deadline)
    with pytest.raises(AssertionError):
        stubber.assert_no_pending_responses()  # the queued answer was never asked for


def test_nothing_starts_without_time_for_a_connect_and_a_read(ec2: tuple[Ec2Api, Stubber]) -> None:
    api, stubber = ec2
    succeed(stubber)
    with pytest.raises(OutOfTime, match="ran out of time"):
        retry.change(lambda: api.authorize(GROUP, PERMISSIONS, TAGS), Deadline(MIN_ATTEMPT_S / 2))
    with pytest.raises(AssertionError):
        stubber.assert_no_pending_responses()


def test_the_clients_leave_retrying_to_the_policy() -> None:
    config = aws_api.make_client("elasticache").meta.config
    assert config.retries["total_max_attempts"] == 1
    assert config.connect_timeout <= MIN_ATTEMPT_S


def test_the_deadline_is_the_earliest_of_the_lambdas_and_service_timeouts() -> None:
    clock = Clock()
    lambda_bound = Deadline.for_invocation(20.0, None, clock)
    assert (lambda_bound.remaining(), lambda_bound.limit) == (15.0, "the function's Timeout")
    assert lambda_bound.answer_time_left() == pytest.approx(19.8)
    service_bound = Deadline.for_invocation(300.0, 5.0, clock)
    assert (service_bound.remaining(), service_bound.limit) == (3.75, "the resource's ServiceTimeout")
    assert service_bound.answer_time_left() < 5.0
    assert service_bound.remaining() < service_bound.change_time_left() < service_bound.answer_time_left()
    assert Deadline.for_invocation(20.0, 3600.0, clock).limit == "the function's Timeout"


def test_the_backstop_answers_only_once_every_call_has_been_cut_and_leaves_the_answer_time() -> None:
    """A lookup's read is cut at the deadline, a change's when its time runs out: until a moment after that the
    handler, not the backstop, answers what they ended in; and the backstop's answer still has time to travel."""
    clock = Clock()
    for deadline in (Deadline.for_invocation(20.0, None, clock), Deadline.for_invocation(300.0, 3.0, clock)):
        assert deadline.remaining() < deadline.change_time_left() < deadline.backstop_time_left()
        assert deadline.backstop_time_left() <= deadline.change_time_left() + BACKSTOP_GRACE_S
        answer_time = deadline.answer_time_left() - deadline.change_time_left()
        assert deadline.answer_time_left() - deadline.backstop_time_left() >= answer_time / 2
    assert Deadline(2.0, clock).backstop_time_left() == 2.0  # nothing kept for the answer: nothing to wait for
