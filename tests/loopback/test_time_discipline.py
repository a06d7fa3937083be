"""Time discipline, as CloudFormation and AWS would notice it: work stops when CloudFormation stops waiting.

Every scenario runs the real handler over loopback with faults injected into
the stand-ins (the ElastiCache stand-in, and the EC2 and MemoryDB fronts before moto), and
checks what a user would notice: when the answer arrived and what it said,
and, from the stand-ins' call logs, that no change arrived after it. Each
waits a while after the answer for a late write to show up.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import app
from offline.ec2_front import Ec2Front
from offline.standin import ElastiCacheStandIn
from tests.support import Delivery, Servers, assert_failed, assert_success, handle, invoke, load_event
from tests.vpc_world import app_rules

ACCOUNT = "123456789012"
CLASSIC_WRITES = {"AuthorizeCacheSecurityGroupIngress", "RevokeCacheSecurityGroupIngress"}


@pytest.fixture
def aws(standin: ElastiCacheStandIn) -> ElastiCacheStandIn:
    standin.add_group("app-cache-sg")
    return standin


def answered_at(delivery: Delivery) -> float:
    (put,) = delivery.puts
    return put.at


def classic_writes_after(standin: ElastiCacheStandIn, moment: float) -> list[str]:
    return [c.action for c in standin.calls() if c.action in CLASSIC_WRITES and c.arrived > moment]


def ec2_writes_after(front: Ec2Front, moment: float) -> list[str]:
    return [c.action for c in front.writes() if c.arrived > moment]


def test_a_describe_hanging_past_the_deadline_leaves_no_rule_behind(
    servers: Servers, vpc: dict[str, str], standin: ElastiCacheStandIn
) -> None:
    """The cache's Describe hangs past the deadline: FAILED in time, and no Authorize ever, even once it answers."""
    standin.set_latency(4.5, {"DescribeCacheClusters"})
    delivery = handle(load_event("vpc-create.json", vpc), seconds=4.0)  # deadline 3 s
    answer = delivery.answer()
    assert_failed(answer, "ran out of time")
    assert answered_at(delivery) - delivery.started < 3.5
    time.sleep(max(0.0, delivery.started + 5.5 - time.monotonic()))  # the Describe has long answered by now
    assert servers.ec2.writes() == []
    assert app_rules(servers.moto, vpc) == set()


def test_a_throttling_storm_past_the_deadline_changes_nothing_after_the_answer(aws: ElastiCacheStandIn) -> None:
    aws.throttle_for(4.0)
    delivery = handle(load_event("create.json"), seconds=4.0)
    assert_failed(delivery.answer(), "ran out of time")
    time.sleep(max(0.0, delivery.started + 5.0 - time.monotonic()))  # the storm is over: a late retry would land
    assert classic_writes_after(aws, answered_at(delivery)) == []
    assert aws.authorized() == set()


def test_an_ec2_throttling_storm_past_the_deadline_changes_nothing_after_the_answer(
    servers: Servers, vpc: dict[str, str]
) -> None:
    servers.ec2.throttle_for(4.0)
    delivery = handle(load_event("vpc-create.json", vpc), seconds=4.0)
    answer = delivery.answer()
    assert_failed(answer, "ran out of time")
    time.sleep(max(0.0, delivery.started + 5.0 - time.monotonic()))
    assert ec2_writes_after(servers.ec2, answered_at(delivery)) == []
    assert app_rules(servers.moto, vpc) == set()


def test_a_change_the_answer_waits_for_is_taken_back_by_the_rollback_delete(
    servers: Servers, vpc: dict[str, str]
) -> None:
    """An Authorize in flight at the deadline, answered within the reserve: the answer comes after it, naming it."""
    started = time.monotonic()

    def answer_at_4_1_s(**_: Any) -> None:
        # deadline 3.75 s; a change in flight may read on until 4.4 s: EC2 answers this one at 4.1 s, however
        # long discovery took on a busy machine (and within one read timeout of the call)
        servers.ec2.slow_next(1, max(0.0, started + 4.1 - time.monotonic()))

    events = app.ec2().client.meta.events
    events.register_first("before-call.ec2.AuthorizeSecurityGroupIngress", answer_at_4_1_s)
    try:
        delivery = handle(load_event("vpc-create.json", vpc), seconds=5.0)
    finally:
        events.unregister("before-call.ec2.AuthorizeSecurityGroupIngress", answer_at_4_1_s)
    answer = delivery.answer()
    assert_failed(answer, "ran out of time")  # the second target group's Authorize never started
    (authorize,) = servers.ec2.calls("AuthorizeSecurityGroupIngress")
    assert authorize.answered < answered_at(delivery)  # what it did had happened when CloudFormation heard
    assert len(app_rules(servers.moto, vpc)) == 1
    rollback = load_event("vpc-delete.json", vpc, PhysicalResourceId=answer["PhysicalResourceId"])
    assert_success(invoke(rollback))
    assert app_rules(servers.moto, vpc) == set()


def test_a_change_the_service_applies_after_the_answer_is_named_by_the_answers_id(aws: ElastiCacheStandIn) -> None:
    """Slower still: ElastiCache applies the Authorize after the answer. The id the answer carried names it."""
    aws.set_latency(3.0, {"AuthorizeCacheSecurityGroupIngress"})
    delivery = handle(load_event("create.json"), seconds=2.0)
    answer = delivery.answer()
    assert answered_at(delivery) - delivery.started < 2.0
    assert_failed(answer, "ran out of time")
    assert classic_writes_after(aws, answered_at(delivery)) == []
    while not aws.calls("AuthorizeCacheSecurityGroupIngress"):  # it lands at 3 s
        time.sleep(0.1)
    assert aws.authorized() == {("app-cache-sg", "app-servers", ACCOUNT)}
    aws.set_latency(0.0)
    # CloudFormation's rollback Delete for the id the answer carried.
    assert_success(invoke(load_event("delete.json", PhysicalResourceId=answer["PhysicalResourceId"])))
    assert aws.ingress_table() == []


def test_service_timeout_bounds_the_work_and_the_answer(servers: Servers, vpc: dict[str, str]) -> None:
    """CloudFormation stops waiting at ServiceTimeout: the answer comes before it, and nothing is written after it."""
    servers.ec2.throttle_for(8.0)
    event = load_event("vpc-create.json", vpc)
    event["ResourceProperties"]["ServiceTimeout"] = "5"
    delivery = handle(event, seconds=30.0)
    answer = delivery.answer()
    assert answered_at(delivery) - delivery.started < 5.0
    assert_failed(answer, "ServiceTimeout")
    assert ec2_writes_after(servers.ec2, delivery.started + 5.0) == []


def test_a_throttled_memorydb_lookup_is_retried_and_the_create_succeeds(servers: Servers, vpc: dict[str, str]) -> None:
    """MemoryDB throttles the DescribeClusters that finds the cluster, three times: the one retry policy waits it out."""
    servers.memorydb.throttle_next(3)
    assert_success(invoke(load_event("vpc-memorydb-create.json", vpc)))
    assert [c.error for c in servers.memorydb.calls("DescribeClusters")] == [*["ThrottlingException"] * 3, None]
    _app, _cache, shared = vpc.values()
    assert app_rules(servers.moto, vpc) == {(shared, 6379)}  # app-store is guarded by shared-clients alone


def test_a_memorydb_lookup_stalling_past_service_timeout_is_answered_failed_before_cloudformation_stops_waiting(
    servers: Servers, vpc: dict[str, str]
) -> None:
    """DescribeClusters hangs past ServiceTimeout, then is dropped: FAILED before CloudFormation gives up, no rule ever."""
    servers.memorydb.stall_next(1, 5.0)
    event = load_event("vpc-memorydb-create.json", vpc)
    event["ResourceProperties"]["ServiceTimeout"] = "4"  # CloudFormation waits 4 s; the function's deadline is 3 s
    delivery = handle(event, seconds=30.0)
    answer = delivery.answer()
    assert answered_at(delivery) - delivery.started < 4.0
    assert_failed(answer, "the deadline set by the resource's ServiceTimeout")
    time.sleep(max(0.0, delivery.started + 5.5 - time.monotonic()))  # the stalled call has been dropped by now
    assert [c.error for c in servers.memorydb.calls()] == ["dropped"]  # the one lookup, never answered nor retried
    assert servers.ec2.writes() == []
    assert app_rules(servers.moto, vpc) == set()


def test_a_memorydb_lookup_slower_than_the_deadline_is_answered_by_the_handler_naming_the_lookup(
    servers: Servers, vpc: dict[str, str]
) -> None:
    """DescribeClusters answers only after the deadline: its read ends at the deadline, and the answer says which
    call ran out of time, not only that the time ran out (the backstop's reason). No rule is made, even later."""
    servers.memorydb.slow_next(1, 3.5)
    delivery = handle(load_event("vpc-memorydb-create.json", vpc), seconds=4.0)  # deadline 3 s
    answer = delivery.answer()
    assert answered_at(delivery) - delivery.started < 4.0
    assert_failed(answer, "DescribeClusters failed with ReadTimeoutError")
    assert "ran out of time (the deadline set by the function's Timeout)" in answer["Reason"]
    time.sleep(max(0.0, delivery.started + 4.0 - time.monotonic()))  # the slow lookup has been answered by now
    assert servers.ec2.writes() == []
    assert app_rules(servers.moto, vpc) == set()


def test_a_rollback_whose_cleanup_lookup_hangs_until_the_deadline_still_succeeds(
    servers: Servers, vpc: dict[str, str]
) -> None:
    """An Update onto the MemoryDB cluster failed, or went through unheard; its rollback Update restores the held
    id's rules, then looks the attempt's cluster up to take back what it may have added. That lookup is cleanup: it
    hangs until the deadline, and the rollback must still answer SUCCESS (FAILED would leave the stack
    UPDATE_ROLLBACK_FAILED), once, in time, with nothing changed after the answer."""
    created = invoke(load_event("vpc-create.json", vpc))
    assert_success(created)
    held = created["PhysicalResourceId"]
    restored = app_rules(servers.moto, vpc)
    attempted = load_event("vpc-memorydb-create.json", vpc)["ResourceProperties"]
    rollback = load_event("vpc-update.json", vpc, PhysicalResourceId=held, OldResourceProperties=attempted)
    rollback["ResourceProperties"] = load_event("vpc-create.json", vpc)["ResourceProperties"]
    servers.ec2.reset()
    servers.memorydb.stall_next(1, 5.0)
    delivery = handle(rollback, seconds=4.0)  # deadline 3 s
    answer = delivery.answer()
    assert_success(answer)
    assert answer["PhysicalResourceId"] == held
    assert answered_at(delivery) - delivery.started < 4.0
    while not servers.memorydb.calls() and time.monotonic() < delivery.started + 15.0:
        time.sleep(0.1)  # the stalled lookup is logged once it is dropped, 5 s after it arrived
    assert [c.error for c in servers.memorydb.calls()] == ["dropped"]  # the one lookup, never retried
    assert ec2_writes_after(servers.ec2, answered_at(delivery)) == []
    assert app_rules(servers.moto, vpc) == restored


def test_a_rollback_whose_cleanup_revoke_is_in_flight_at_the_deadline_still_succeeds(
    servers: Servers, vpc: dict[str, str]
) -> None:
    """As above, but the cleanup gets as far as its Revoke of the failed attempt's rule, and EC2 holds that call
    past the deadline: the answer waits for it (cut at the deadline plus half the answer's reserve), and is the
    handler's, SUCCESS, not the backstop's FAILED, since the rollback itself was done."""
    _app, cache, shared = vpc.values()
    held_properties = {**load_event("vpc-create.json", vpc)["ResourceProperties"], "TargetSecurityGroupIds": [cache]}
    held = invoke({**load_event("vpc-create.json", vpc), "ResourceProperties": held_properties})["PhysicalResourceId"]
    attempted = load_event("vpc-memorydb-create.json", vpc)["ResourceProperties"]  # into shared-clients
    replacement = load_event("vpc-update.json", vpc, PhysicalResourceId=held, OldResourceProperties=held_properties)
    assert invoke({**replacement, "ResourceProperties": attempted})["PhysicalResourceId"] != held  # its answer lost
    assert app_rules(servers.moto, vpc) == {(cache, 6379), (shared, 6379)}
    rollback = load_event("vpc-update.json", vpc, PhysicalResourceId=held, OldResourceProperties=attempted)
    servers.ec2.reset()
    servers.ec2.set_latency(5.0, {"RevokeSecurityGroupIngress"})
    delivery = handle({**rollback, "ResourceProperties": held_properties}, seconds=4.0)  # deadline 3 s
    answer = delivery.answer()
    assert_success(answer)
    assert answer["PhysicalResourceId"] == held
    assert answered_at(delivery) - delivery.started < 4.0
    while not servers.ec2.calls("RevokeSecurityGroupIngress") and time.monotonic() < delivery.started + 15.0:
        time.sleep(0.1)  # the held Revoke is logged once EC2 answers it, 5 s after it arrived
    (revoke,) = servers.ec2.calls("RevokeSecurityGroupIngress")
    assert revoke.arrived < answered_at(delivery)
    assert ec2_writes_after(servers.ec2, answered_at(delivery)) == []
    assert app_rules(servers.moto, vpc) == {(cache, 6379)}  # EC2 applied it late: the attempt's rule, no other


def _create(event: dict[str, Any]) -> str:
    answer = invoke(event)
    assert_success(answer)
    return str(answer["Status"])


def test_a_warm_sandbox_under_sustained_errors_keeps_retrying_classic(aws: ElastiCacheStandIn) -> None:
    """botocore's retry quota drained after ~33 such Creates in one sandbox; the resource's own policy has none."""
    statuses = []
    for i in range(40):
        aws.fail_next(1, 500)
        aws.throttle_next(3)
        event = load_event("create.json")
        event["ResourceProperties"] = {**event["ResourceProperties"], "EC2SecurityGroupName": f"web-{i}"}
        statuses.append(_create(event))
    assert statuses == ["SUCCESS"] * 40
    assert len(aws.authorized()) == 40


def test_a_warm_sandbox_under_sustained_errors_keeps_retrying_vpc(servers: Servers, vpc: dict[str, str]) -> None:
    statuses = []
    target = list(vpc.values())[1]
    sources = list(servers.moto.security_groups(*(f"source-{i}" for i in range(40))).values())
    for source in sources:
        servers.ec2.fail_next(1, 500)
        servers.ec2.throttle_next(3)
        event = load_event("vpc-create.json", vpc)
        event["ResourceProperties"] = {
            **event["ResourceProperties"],
            "SourceSecurityGroupId": source,
            "TargetSecurityGroupIds": [target],
        }
        statuses.append(_create(event))
    assert statuses == ["SUCCESS"] * 40
    assert {s for s, _owner, _port, _d in servers.moto.ingress(target)} >= set(sources)
