"""Rollbacks always finish: each rollback the issue found stuck, through the CloudFormation simulator.

A rollback that fails leaves the stack in ROLLBACK_FAILED or UPDATE_ROLLBACK_FAILED,
which its owner can neither update nor (without skipping resources) delete.
"""

from __future__ import annotations

from typing import Any

import pytest

from offline.harness import build_vpc_example
from offline.moto_backend import MotoBackend
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.lifecycle.simulator import CloudFormation, Resource, Stack
from tests.vpc_world import app_rules_described

ACCOUNT = "123456789012"
MISSING = "sg-fffffffffffffffff"


class World:
    def __init__(
        self, cfn: CloudFormation, moto: MotoBackend, standin: ElastiCacheStandIn, ids: dict[str, str]
    ) -> None:
        self.cfn, self.moto, self.standin = cfn, moto, standin
        self.ids = ids
        self.app, self.cache, self.shared = ids.values()

    def access(self, **extra: Any) -> dict[str, Any]:
        return {"ReplicationGroupId": "app-cache", "SourceSecurityGroupId": self.app, **extra}

    def rules(self) -> set[tuple[str, int, str]]:
        """(target, port, description) of every rule from app-servers."""
        return app_rules_described(self.moto, self.ids)


@pytest.fixture
def world(moto: MotoBackend, standin: ElastiCacheStandIn, receiver: ResponseReceiver) -> World:
    return World(CloudFormation(receiver, standin), moto, standin, build_vpc_example(moto, standin))


def test_a_description_update_after_the_cache_was_deleted_by_hand_and_its_rollback_finish(world: World) -> None:
    cluster = {"CacheClusterId": "app-cache-001", "SourceSecurityGroupId": world.app}
    stack = world.cfn.create_stack("app", {"Access": {**cluster, "Description": "sessions"}})
    assert stack.status == "CREATE_COMPLETE"
    world.standin.delete_cache("app-cache-001")
    # Another resource fails, so CloudFormation rolls this one back to the old description.
    world.cfn.update_stack(stack, {"Access": {**cluster, "Description": "sessions v2"}}, another_resource_fails=True)
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert world.rules() == {(world.cache, 6379, "sessions"), (world.shared, 6379, "sessions")}
    # And the update alone goes through: the held id's rules, with the new description.
    world.cfn.update_stack(stack, {"Access": {**cluster, "Description": "sessions v3"}})
    assert stack.status == "UPDATE_COMPLETE"
    assert world.rules() == {(world.cache, 6379, "sessions v3"), (world.shared, 6379, "sessions v3")}


def test_a_port_in_superscript_digits_fails_by_name_and_its_rollback_finishes(world: World) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    world.cfn.update_stack(stack, {"Access": world.access(Port="²")})
    failed = next(i.answer for i in world.cfn.log if i.event["ResourceProperties"].get("Port") == "²")
    assert failed is not None
    assert failed.status == "FAILED"
    assert failed.reason.startswith("Port must be a TCP port number")
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert {(t, p) for t, p, _ in world.rules()} == {(world.cache, 6379), (world.shared, 6379)}


def test_properties_that_no_longer_parse_roll_back_to_the_held_id(world: World) -> None:
    """A stack made when fullwidth digits still passed as a port: its rollback keeps the rules its id names."""
    held = f"cache-vpc-ingress:{world.app}@{ACCOUNT}:6379:{world.cache}"
    old = world.access(Port="６３７９", TargetSecurityGroupIds=[world.cache])  # noqa: RUF001 - what an old version took
    permission = {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379}
    world.moto.client("ec2").authorize_security_group_ingress(
        GroupId=world.cache, IpPermissions=[{**permission, "UserIdGroupPairs": [{"GroupId": world.app}]}]
    )
    stack = Stack("legacy", "arn:aws:cloudformation:us-east-1:123456789012:stack/legacy/1", status="CREATE_COMPLETE")
    stack.resources["Access"] = Resource(held, old)
    # The update fails (a target group the cache is not in); CloudFormation rolls back to the old properties.
    world.cfn.update_stack(stack, {"Access": world.access(Port="6379", TargetSecurityGroupIds=[world.cache, MISSING])})
    update, rollback = (i.answer for i in world.cfn.log[-2:])
    assert update is not None
    assert update.status == "FAILED"
    assert MISSING in update.reason
    assert rollback is not None
    assert (rollback.status, rollback.physical_id) == ("SUCCESS", held)
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert {(t, p) for t, p, _ in world.rules()} == {(world.cache, 6379)}
