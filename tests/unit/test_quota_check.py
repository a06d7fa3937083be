"""The quota the sandbox reads from Service Quotas: kept a few minutes, and EC2's default when it cannot be read."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.stub import Stubber

from cache_ingress import aws_api
from cache_ingress.aws_api import ApiError, Ec2Api, ServiceQuotasApi
from cache_ingress.errors import OutOfTime
from cache_ingress.quota_check import QUOTA_LOOKUP_S, QUOTA_TTL_S, RuleQuota
from cache_ingress.timing import Deadline


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Answers(ServiceQuotasApi):
    """Service Quotas answering each call with the next of ``answers`` (an exception is raised); the calls kept."""

    def __init__(self, *answers: Any) -> None:
        super().__init__(None)
        self.answers = list(answers)
        self.asked: list[tuple[str, str]] = []

    def quota(self, service_code: str, quota_code: str) -> Any:
        self.asked.append((service_code, quota_code))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_quota_read_is_kept_a_few_minutes_then_read_again() -> None:
    clock = Clock()
    api = Answers(100.0, 120.0)
    quota = RuleQuota(api, clock)
    assert quota.value(Deadline(60, clock), clock.sleep) == 100
    clock.now += QUOTA_TTL_S - 1
    assert quota.value(Deadline(60, clock), clock.sleep) == 100
    clock.now += 1
    assert quota.value(Deadline(60, clock), clock.sleep) == 120
    assert api.asked == [("vpc", "L-0EA8095F")] * 2


@pytest.mark.parametrize("code", ["AccessDeniedException", "NoSuchResourceException"])
def test_a_role_service_quotas_will_not_tell_goes_by_ec2s_default_and_does_not_ask_again_at_once(code: str) -> None:
    clock = Clock()
    api = Answers(ApiError("GetServiceQuota", code, "no", 400))
    quota = RuleQuota(api, clock)
    assert quota.value(Deadline(60, clock), clock.sleep) == 60
    assert quota.value(Deadline(60, clock), clock.sleep) == 60
    assert len(api.asked) == 1


def test_service_quotas_unreachable_costs_a_few_seconds_at_most_and_is_asked_again_next_time() -> None:
    clock = Clock()
    api = Answers(ApiError("GetServiceQuota", "ConnectTimeoutError", "no answer", connection=True))
    quota = RuleQuota(api, clock)
    started = clock.now
    assert quota.value(Deadline(60, clock), clock.sleep) == 60
    assert clock.now - started <= QUOTA_LOOKUP_S
    asked = len(api.asked)
    assert asked > 1  # retried within its budget
    assert quota.value(Deadline(60, clock), clock.sleep) == 60
    assert len(api.asked) > asked


def test_a_lookup_within_a_deadline_is_closed_by_the_invocations_answer() -> None:
    outer = Deadline(60)
    inner = outer.within(QUOTA_LOOKUP_S)
    assert 0 < inner.remaining() <= QUOTA_LOOKUP_S
    outer.answered()
    assert inner.closed
    with pytest.raises(OutOfTime, match="already been answered"):
        inner.check_open("a lookup")
    assert Deadline(1).within(QUOTA_LOOKUP_S).remaining() <= 1


def test_prefix_list_sizes_are_read_by_filter_page_by_page_leaving_out_lists_without_one() -> None:
    client = aws_api.make_client("ec2")
    wanted = {"Filters": [{"Name": "prefix-list-id", "Values": ["pl-0aaaaaaa", "pl-0bbbbbbb"]}], "MaxResults": 100}
    with Stubber(client) as stub:
        first = [{"PrefixListId": "pl-0AAAAAAA", "MaxEntries": 20}, {"PrefixListId": "pl-0ccccccc"}]
        stub.add_response("describe_managed_prefix_lists", {"PrefixLists": first, "NextToken": "t"}, wanted)
        later = [{"PrefixListId": "pl-0bbbbbbb", "MaxEntries": 5}]
        stub.add_response("describe_managed_prefix_lists", {"PrefixLists": later}, {**wanted, "NextToken": "t"})
        sizes = Ec2Api(client).prefix_list_sizes(["pl-0bbbbbbb", "pl-0aaaaaaa", "pl-0bbbbbbb"])
        stub.assert_no_pending_responses()
    assert sizes == {"pl-0aaaaaaa": 20, "pl-0bbbbbbb": 5}
