"""The VPC world every tier shares: the examples' groups and caches, and the helpers to read what EC2 holds.

The world itself is :func:`offline.harness.build_vpc_example` (the demo's and
``make invoke``'s too): the replication group ``app-cache`` behind the groups
``app-cache`` and ``shared-clients``, the MemoryDB cluster ``app-store``, and
``app-servers`` to let in. The fixtures that hand it to a test are in the
tiers' conftest.py (``vpc`` in tests/loopback, ``world`` in tests/lifecycle);
what is here reads it (:func:`app_rules`) or runs stacks' operations in it
(:class:`Sandbox`, each with clients of its own, as a Lambda sandbox has).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cache_ingress import aws_api
from cache_ingress.protocol import Instance
from cache_ingress.timing import Deadline
from cache_ingress.vpc_lifecycle import VpcMode
from cache_ingress.vpc_rules import RuleSet
from offline.moto_backend import MotoBackend


def app_rules(moto: MotoBackend, ids: dict[str, str]) -> set[tuple[str, int]]:
    """(target group, port) of every rule from app-servers."""
    return {(target, port) for target, port, _description in app_rules_described(moto, ids)}


def app_rules_described(moto: MotoBackend, ids: dict[str, str]) -> set[tuple[str, int, str]]:
    """(target group, port, description) of every rule from app-servers into app-cache's two groups."""
    app, cache, shared = ids.values()
    return {
        (target, port, description)
        for target in (cache, shared)
        for source, _owner, port, description in moto.ingress(target)
        if source == app
    }


ACCOUNT = "123456789012"


def stack_id(name: str) -> str:
    return f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/{name}/00000000-0000-0000-0000-{name:0>12}"


@dataclass
class Sandbox:
    """One Lambda sandbox running one stack's resource ``Access``: its own clients, the real code."""

    stack: str
    mode: VpcMode
    properties: dict[str, Any]
    granted: RuleSet | None = None

    @classmethod
    def of(cls, stack: str, properties: dict[str, Any]) -> Sandbox:
        mode = VpcMode(
            aws_api.ElastiCacheApi(aws_api.make_client("elasticache")),
            aws_api.Ec2Api(aws_api.make_client("ec2")),
            aws_api.MemoryDbApi(aws_api.make_client("memorydb")),
            aws_api.LedgerApi(aws_api.make_client("dynamodb"), os.environ["LEDGER_TABLE"]),
        )
        return cls(stack, mode, properties)

    def instance(self, physical_id: str) -> Instance:
        return Instance(stack_id(self.stack), "Access", physical_id)

    def create(self) -> None:
        request = self.mode.parse_properties(self.properties, stack_id=stack_id(self.stack), logical_id="Access")
        granted = self.mode.resolve(request, deadline=Deadline(20.0))
        self.mode.grant(
            granted,
            request=request,
            instance=self.instance(""),
            deadline=Deadline(20.0),
            undo_on_failure=False,
            on_held=lambda: None,
        )
        self.granted = granted

    def delete(self, physical_id: str | None = None, seconds: float = 20.0) -> None:
        granted = self.granted
        if physical_id is not None:
            granted = self.mode.parse_physical_id(physical_id)
        assert granted is not None
        self.mode.release(granted, instance=self.instance(granted.physical_id), deadline=Deadline(seconds))

    def before(self, operation: str, run: Callable[[], None], nth: int = 1) -> None:
        """Run ``run`` once, just before this sandbox's ``nth`` EC2 or ledger call of ``operation``."""
        seen = [0]

        def hook(model: Any, **_: Any) -> None:
            if model.name != operation:
                return
            seen[0] += 1
            if seen[0] == nth:
                run()

        self.mode.ec2.client.meta.events.register("before-call.ec2", hook)
        self.mode.ledger.client.meta.events.register("before-call.dynamodb", hook)


@dataclass
class World:
    """One rule's world: app-servers on 6379 into the group app-cache, what moto holds there, and people's hands."""

    moto: MotoBackend
    app: str
    cache: str

    def access(self) -> dict[str, Any]:
        return {
            "ReplicationGroupId": "app-cache",
            "SourceSecurityGroupId": self.app,
            "TargetSecurityGroupIds": [self.cache],
        }

    def rules(self) -> set[tuple[str, int, str]]:
        return {(source, port, description) for source, _, port, description in self.moto.ingress(self.cache)}

    def by_hand(self, description: str) -> None:
        pair = {"GroupId": self.app, "UserId": ACCOUNT, "Description": description}
        permission = {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [pair]}
        self.moto.client("ec2").authorize_security_group_ingress(GroupId=self.cache, IpPermissions=[permission])


def meanwhile(run: Callable[[], None], threads: list[threading.Thread]) -> Callable[[], None]:
    """Start ``run`` in another sandbox's thread, and give it a moment: it may rightly wait for this one."""

    def start() -> None:
        thread = threading.Thread(target=run)
        threads.append(thread)
        thread.start()
        thread.join(timeout=1.0)

    return start


def at_once(*operations: object) -> None:
    """Run the operations in sandboxes of their own at the same moment, and wait for all of them."""
    start = threading.Barrier(len(operations))
    failures: list[BaseException] = []

    def run(operation: object) -> None:
        start.wait()
        try:
            operation()  # type: ignore[operator]
        except BaseException as err:  # reported below, in the test's own thread
            failures.append(err)

    threads = [threading.Thread(target=run, args=(op,)) for op in operations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
