"""Issue 20's scenarios: ownership held by the ledger, on an EC2 as eventually consistent as the real one.

The EC2 front plays EC2's eventual consistency (:mod:`offline.ec2_front`):
reads that lag writes, and groups or rules NotFound a moment after they are
made. Operations of several stacks run in sandboxes of their own
(:class:`tests.vpc_world.Sandbox`: the real mode, clients
of its own, through the fronts), at once where the scenario says so; the
store's faults are the DynamoDB front's. The checks are what EC2 holds
afterwards, what the ledger holds, and what CloudFormation receives.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from cache_ingress.errors import ResourceFailure
from cache_ingress.timing import Deadline
from offline.ledger_table import LEDGER_TABLE
from offline.moto_backend import MotoBackend
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.lifecycle.simulator import CloudFormation
from tests.support import Servers, ledger_view
from tests.vpc_world import Sandbox, World, at_once, meanwhile

#: How far EC2's reads lag its writes here: longer than any of these operations takes.
LAG_S = 3.0


@pytest.fixture
def lagging(servers: Servers, world: World) -> Iterator[World]:
    """The adversary's world, with EC2's reads lagging its writes by LAG_S."""
    servers.ec2.set_read_lag(LAG_S)
    yield world
    servers.ec2.set_read_lag(0.0)


def rule_held(world: World) -> bool:
    return {(s, p) for s, p, _ in world.rules()} == {(world.app, 6379)}


@pytest.mark.parametrize("order", ["create-then-delete", "delete-then-create", "at-once"])
def test_a_create_of_stack_b_and_the_delete_of_stack_a_on_lagging_reads_leave_b_its_rule(
    lagging: World, order: str
) -> None:
    """Stack A holds the rule; stack B declares it too while A is deleted. Whatever the order, B keeps its access,
    and the rule goes with B. (On tags, a Delete reading before the Create's claim showed revoked it.)"""
    a, b = Sandbox.of("a", lagging.access()), Sandbox.of("b", lagging.access())
    a.create()
    if order == "create-then-delete":
        b.create()
        a.delete()
    elif order == "delete-then-create":
        a.delete()
        b.create()
    else:
        at_once(a.delete, b.create)
    assert rule_held(lagging), "stack B declares the rule and has no access"
    assert ledger_view(lagging.moto)[key(lagging)]["held_by"] == ["stack b, resource Access"]
    b.delete()
    assert lagging.rules() == set()


def key(world: World) -> str:
    return f"vpc|{world.cache}|tcp|6379|{world.app}@123456789012"


def test_two_last_holders_letting_go_at_once_on_lagging_reads_revoke_the_rule(lagging: World) -> None:
    a, b = Sandbox.of("a", lagging.access()), Sandbox.of("b", lagging.access())
    a.create()
    b.create()
    at_once(a.delete, b.delete)
    assert lagging.rules() == set(), "the rule outlived both stacks that declared it"
    assert key(lagging) not in ledger_view(lagging.moto)


def test_a_create_and_its_rollback_delete_while_it_authorizes_leave_nothing(lagging: World) -> None:
    """CloudFormation gave up on the Create and sends its rollback Delete while the Create is still at work (its
    Authorize just going out, 0.2 s after it started): the rule it makes is not left behind, nothing is held."""
    create, rollback = Sandbox.of("a", lagging.access()), Sandbox.of("a", lagging.access())
    threads: list[threading.Thread] = []
    request = create.mode.parse_properties(
        create.properties, stack_id=create.instance("").stack_id, logical_id="Access"
    )
    rollback.granted = create.mode.resolve(request, deadline=Deadline(5.0))  # the id the Create reported
    create.before("AuthorizeSecurityGroupIngress", meanwhile(rollback.delete, threads))
    with pytest.raises(ResourceFailure, match="Delete let go of the rule"):
        create.create()  # FAILED, to a CloudFormation that stopped waiting for it: its rollback took the rule back
    for thread in threads:
        thread.join()
    assert lagging.rules() == set(), "the rule of a rolled-back Create was left behind"
    assert all(not entry["held_by"] for entry in ledger_view(lagging.moto).values())


def test_a_notfound_on_the_first_revoke_of_a_rule_ec2_does_not_show_yet_is_asked_again(
    servers: Servers, world: World
) -> None:
    """The rule was made a moment ago and EC2 answers NotFound for it: the Delete does not take that for "gone"
    (which would leave the rule for ever), it asks again within its settle window and revokes it."""
    a = Sandbox.of("a", world.access())
    a.create()
    rule_id = str(ledger_view(world.moto)[key(world)]["rule_id"])
    servers.ec2.not_found_for(rule_id, 1.5)
    a.delete()
    assert world.rules() == set()
    first, *_retried = servers.ec2.calls("RevokeSecurityGroupIngress")
    assert first.error == "InvalidSecurityGroupRuleId.NotFound"


def test_a_source_group_ec2_does_not_show_yet_is_waited_for_and_the_create_succeeds(
    servers: Servers, world: World
) -> None:
    """A stack makes its application's group and the access to the cache together: EC2 answers NotFound for the
    new group for a few seconds, and the Create waits that out within its deadline."""
    servers.ec2.not_found_for(world.app, 2.0)
    a = Sandbox.of("a", world.access())
    a.create()
    assert rule_held(world)
    first, *_retried = servers.ec2.calls("AuthorizeSecurityGroupIngress")
    assert first.error == "InvalidGroup.NotFound"


# -- the store unreachable, through CloudFormation -----------------------------------------


@pytest.fixture
def cfn(moto: MotoBackend, standin: ElastiCacheStandIn, receiver: ResponseReceiver, world: World) -> CloudFormation:
    """CloudFormation with a 4 s Lambda budget (a 3 s deadline), in the adversary's world."""
    return CloudFormation(receiver, standin, budget=4.0)


def test_a_create_while_the_store_is_unreachable_fails_before_any_ec2_change_and_its_rollback_finishes(
    servers: Servers, world: World, cfn: CloudFormation
) -> None:
    """The ledger throttled throughout: the Create is FAILED naming the table, EC2 sees no change, and the rollback
    Delete of the id it reported (not one of ours: the hold was never recorded) succeeds while the store is
    still unreachable."""
    servers.dynamodb.throttle_for(60.0)
    try:
        stack = cfn.create_stack("app", {"Access": world.access()})
    finally:
        servers.dynamodb.clear_faults()
    create, rollback = cfn.log
    assert create.answer is not None
    assert create.answer.status == "FAILED"
    assert f"the ownership ledger, DynamoDB table {LEDGER_TABLE}" in create.answer.reason
    assert servers.ec2.writes() == []
    assert rollback.answer is not None
    assert (rollback.answer.status, stack.status) == ("SUCCESS", "ROLLBACK_COMPLETE")
    assert world.rules() == set()


def test_a_delete_while_the_store_is_unreachable_fails_revoking_nothing_and_its_retry_finishes(
    servers: Servers, world: World, cfn: CloudFormation
) -> None:
    stack = cfn.create_stack("app", {"Access": world.access()})
    assert stack.status == "CREATE_COMPLETE"
    writes = len(servers.ec2.writes())
    servers.dynamodb.fail_next(10_000, 503)
    try:
        cfn.delete_stack(stack)
    finally:
        servers.dynamodb.clear_faults()
    assert stack.status == "DELETE_FAILED"
    assert f"DynamoDB table {LEDGER_TABLE}" in cfn.log[-1].answer.reason  # type: ignore[union-attr]
    assert len(servers.ec2.writes()) == writes, "a Delete that could not read the ledger changed EC2"
    assert rule_held(world)
    cfn.delete_stack(stack)
    assert (stack.status, world.rules()) == ("DELETE_COMPLETE", set())
