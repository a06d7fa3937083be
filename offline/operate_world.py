"""A small world for ``cache-ingress`` (``make audit``, the README's figures, tests/loopback/test_operate.py).

The examples' world (``build_vpc_example``: the replication group
``app-cache`` behind groups ``app-cache`` and ``shared-clients``, and
``app-servers``), with real stacks in moto's CloudFormation, so every
holder's StackId is a stack CloudFormation knows, and resources granted
through the real handler. What happens next (a rule revoked by hand, a
stack deleted behind the resource's back, a group added to the cache) is
each a method, so a test stages the one it is about.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from offline.harness import STACK_ACCOUNT, build_vpc_example, load_event
from offline.moto_backend import MotoBackend
from offline.standin import Cache, ElastiCacheStandIn

#: A stack holding nothing CloudFormation must make: the holders' stacks exist, with ids, and can be deleted.
_STACK_TEMPLATE = json.dumps({"Resources": {"Notes": {"Type": "AWS::SNS::Topic"}}})
#: The source the ``reports`` stack lets in, and the one an operator adds by hand.
REPORTS_CIDR = "10.20.0.0/16"
BY_HAND_CIDR = "10.99.0.0/24"

Invoke = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class OperateWorld:
    moto: MotoBackend
    standin: ElastiCacheStandIn
    invoke: Invoke
    ids: dict[str, str] = field(default_factory=dict)
    stacks: dict[str, str] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def app(self) -> str:
        return self.ids["sg-0a1b2c3d4e5f60718"]

    @property
    def cache_group(self) -> str:
        return self.ids["sg-0c0c0c0c0c0c0c0c1"]

    @property
    def shared_group(self) -> str:
        return self.ids["sg-0d0d0d0d0d0d0d0d2"]

    def stack(self, name: str) -> str:
        """A stack in moto's CloudFormation: its id."""
        made: str = self.moto.client("cloudformation").create_stack(StackName=name, TemplateBody=_STACK_TEMPLATE)[
            "StackId"
        ]
        self.stacks[name] = made
        return made

    def grant(self, stack: str, logical_id: str, **properties: Any) -> dict[str, Any]:
        """A Create of the resource in ``stack`` (made if new), through the real handler; its answer."""
        stack_id = self.stacks.get(stack) or self.stack(stack)
        event = load_event("vpc-create.json", self.ids, StackId=stack_id, LogicalResourceId=logical_id)
        if properties:
            event["ResourceProperties"] = {
                "ServiceToken": event["ServiceToken"],
                "ReplicationGroupId": "app-cache",
                **properties,
            }
        answer = self.invoke(event)
        if answer.get("Status") != "SUCCESS":
            raise RuntimeError(f"the Create of {logical_id} in {stack} failed: {answer.get('Reason')}")
        self.answers[logical_id] = answer
        return answer

    def delete_stack(self, name: str) -> None:
        """The stack deleted behind the resource's back (DeletionPolicy: Retain, say): no Delete reaches it."""
        self.moto.client("cloudformation").delete_stack(StackName=self.stacks[name])

    def rule_id(self, logical_id: str, group: str) -> str:
        """The id of the rule the resource's Create reported for ``group`` (its ids follow its sorted targets)."""
        data = self.answers[logical_id]["Data"]
        targets = str(data["TargetSecurityGroupIds"]).split(",")
        return str(data["SecurityGroupRuleIds"]).split(",")[targets.index(group)]

    def revoke_by_hand(self, group: str, rule_id: str) -> None:
        self.moto.client("ec2").revoke_security_group_ingress(GroupId=group, SecurityGroupRuleIds=[rule_id])

    def authorize_by_hand(self, group: str, cidr: str, port: int = 6379) -> None:
        permission = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": cidr}]}
        self.moto.client("ec2").authorize_security_group_ingress(GroupId=group, IpPermissions=[permission])

    def add_group_to_cache(self, name: str) -> str:
        """The cache gains a security group (its member cluster shows it): the group's id."""
        group = self.moto.security_groups(name)[name]
        groups = (self.cache_group, self.shared_group, group)
        self.standin.add_cache_cluster(Cache("app-cache-001", groups, 6379, replication_group="app-cache"))
        return group

    def rules(self, group: str) -> set[tuple[str, int]]:
        """The TCP rules into ``group``: (source, port)."""
        return {(source, port) for source, _, port, _ in self.moto.ingress(group)}


def build(moto: MotoBackend, standin: ElastiCacheStandIn, invoke: Invoke) -> OperateWorld:
    """The examples' world with its cloudformation endpoint; nothing granted yet."""
    world = OperateWorld(moto, standin, invoke)
    world.ids = build_vpc_example(moto, standin)
    return world


def stage_everything(world: OperateWorld) -> None:
    """The README's small world: two stacks sharing app-servers' access, a third let in from a CIDR and then
    deleted behind the resource's back, a rule revoked by hand, a rule made by hand, and a security group the
    cache gained since."""
    world.grant("cache-access", "AppCacheAccess")
    world.grant(
        "batch-jobs", "BatchAccess", SourceSecurityGroupId=world.app, TargetSecurityGroupIds=[world.cache_group]
    )
    world.grant("reports", "ReportsAccess", SourceCidrIp=REPORTS_CIDR)
    world.delete_stack("reports")
    world.revoke_by_hand(world.shared_group, world.rule_id("AppCacheAccess", world.shared_group))
    world.authorize_by_hand(world.cache_group, BY_HAND_CIDR)
    world.add_group_to_cache("cache-monitoring")


__all__ = ["BY_HAND_CIDR", "REPORTS_CIDR", "STACK_ACCOUNT", "OperateWorld", "build", "stage_everything"]
