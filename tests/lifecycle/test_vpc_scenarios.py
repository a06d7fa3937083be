"""VPC-mode stack operations as CloudFormation runs them, against moto's EC2 and replication groups.

The world is the examples' (``offline.harness.build_vpc_example``): the
replication group ``app-cache`` on 6379, guarded by ``app-cache`` and
``shared-clients``; ``app-servers`` (and ``batch``) to let in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from offline.cloudformation import StackRecordsStandIn
from offline.harness import build_vpc_example
from offline.moto_backend import MotoBackend
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.lifecycle.simulator import CloudFormation

ACCOUNT = "123456789012"


@dataclass
class Vpc:
    cfn: CloudFormation
    moto: MotoBackend
    app: str
    batch: str
    cache: str
    shared: str

    def rules(self) -> set[tuple[str, str, int]]:
        """(source name, target name, port) of every rule into the cache's groups."""
        names = {self.app: "app", self.batch: "batch", self.cache: "cache", self.shared: "shared"}
        return {
            (names[source], names[target], port)
            for target in (self.cache, self.shared)
            for source, owner, port, _ in self.moto.ingress(target)
            if owner == ACCOUNT
        }

    def access(self, source: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"ReplicationGroupId": "app-cache", "SourceSecurityGroupId": source or self.app, **extra}


@pytest.fixture
def world(
    moto: MotoBackend,
    standin: ElastiCacheStandIn,
    records: StackRecordsStandIn,
    receiver: ResponseReceiver,
) -> Vpc:
    ids = build_vpc_example(moto, standin)
    (batch,) = moto.security_groups("batch").values()
    app, cache, shared = ids.values()
    return Vpc(CloudFormation(receiver, standin, records=records), moto, app, batch, cache, shared)


BOTH = {("app", "cache", 6379), ("app", "shared", 6379)}


def test_create_narrow_widen_and_delete(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    assert stack.status == "CREATE_COMPLETE"
    assert world.rules() == BOTH

    world.cfn.update_stack(stack, {"Access": world.access(TargetSecurityGroupIds=[world.cache])})
    assert stack.status == "UPDATE_COMPLETE"
    assert world.rules() == {("app", "cache", 6379)}

    world.cfn.update_stack(stack, {"Access": world.access(Port="6380")})
    assert stack.status == "UPDATE_COMPLETE"
    assert world.rules() == {("app", "cache", 6380), ("app", "shared", 6380)}

    world.cfn.delete_stack(stack)
    assert (stack.status, world.rules()) == ("DELETE_COMPLETE", set())


def test_a_description_change_keeps_the_id_and_the_rules(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    first = stack.resources["Access"].physical_id
    world.cfn.update_stack(stack, {"Access": world.access(Description="sessions")})
    assert (stack.status, stack.resources["Access"].physical_id) == ("UPDATE_COMPLETE", first)
    assert world.rules() == BOTH
    assert all(d == "sessions" for g in (world.cache, world.shared) for *_, d in world.moto.ingress(g))


def test_another_resource_failing_after_a_narrowing_replacement_restores_every_rule(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    world.cfn.update_stack(
        stack, {"Access": world.access(TargetSecurityGroupIds=[world.cache])}, another_resource_fails=True
    )
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert world.rules() == BOTH


def test_another_resource_failing_after_a_widening_replacement_takes_back_the_new_port(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    world.cfn.update_stack(stack, {"Access": world.access(Port="6380")}, another_resource_fails=True)
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert world.rules() == BOTH


def test_a_failing_replacement_rolls_back_to_exactly_the_old_rules(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    bad_targets = [world.cache, "sg-fffffffffffffffff"]
    world.cfn.update_stack(stack, {"Access": world.access(Port="7000", TargetSecurityGroupIds=bad_targets)})
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert world.rules() == BOTH


def test_a_create_for_a_missing_cache_rolls_back_cleanly(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": {**world.access(), "ReplicationGroupId": "gone"}})
    assert stack.status == "ROLLBACK_COMPLETE"
    assert world.rules() == set()
    assert "ReplicationGroupId 'gone' not found" in world.cfn.log[0].answer.reason  # type: ignore[union-attr]


def test_a_create_whose_answer_is_lost_is_taken_back_by_the_invented_id_delete(
    world: Vpc, receiver: ResponseReceiver
) -> None:
    receiver.fail_next(5)  # every try of the Create's answer fails: CloudFormation stops waiting
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    assert stack.status == "ROLLBACK_COMPLETE"
    assert world.cfn.log[1].event["PhysicalResourceId"].startswith("app-Access-")  # the id CloudFormation made up
    assert world.rules() == set()


def test_two_resources_sharing_a_rule_each_own_it_until_deleted(world: Vpc) -> None:
    """One rule, one owner (see Limits): deleting either resource revokes the shared rule."""
    stack = world.cfn.create_stack(
        "app",
        {"Access": world.access(), "Batch": world.access(world.batch, TargetSecurityGroupIds=[world.cache])},
    )
    assert world.rules() == BOTH | {("batch", "cache", 6379)}
    world.cfn.update_stack(stack, {"Access": world.access()})
    assert world.rules() == BOTH
    world.cfn.delete_stack(stack)
    assert world.rules() == set()


def test_moving_from_a_cache_security_group_to_vpc_mode_replaces_the_resource(
    world: Vpc, standin: ElastiCacheStandIn
) -> None:
    standin.add_group("app-cache-sg")
    classic = {"CacheSecurityGroupName": "app-cache-sg", "EC2SecurityGroupName": "app-servers"}
    stack = world.cfn.create_stack("app", {"Access": classic})
    assert standin.authorized() == {("app-cache-sg", "app-servers", ACCOUNT)}
    world.cfn.update_stack(stack, {"Access": world.access()})
    assert stack.status == "UPDATE_COMPLETE"
    assert (standin.authorized(), world.rules()) == (set(), BOTH)


def test_a_replacement_whose_answer_is_lost_is_taken_back_by_the_rollback_update(
    world: Vpc, receiver: ResponseReceiver
) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    receiver.fail_next(5)  # the Update goes through, but CloudFormation never hears of its new id
    world.cfn.update_stack(stack, {"Access": world.access(Port="6380")})
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert world.rules() == BOTH


def test_a_move_to_vpc_mode_whose_answer_is_lost_is_taken_back_by_the_rollback(
    world: Vpc, standin: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
    standin.add_group("app-cache-sg")
    classic = {"CacheSecurityGroupName": "app-cache-sg", "EC2SecurityGroupName": "app-servers"}
    stack = world.cfn.create_stack("app", {"Access": classic})
    receiver.fail_next(5)  # the VPC rules go in, but CloudFormation never hears of them
    world.cfn.update_stack(stack, {"Access": world.access()})
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert (standin.authorized(), world.rules()) == ({("app-cache-sg", "app-servers", ACCOUNT)}, set())
