"""VPC-mode stack operations as CloudFormation runs them, against moto's EC2 and replication groups.

The world is the examples' (``offline.harness.build_vpc_example``): the
replication group ``app-cache`` on 6379, guarded by ``app-cache`` and
``shared-clients``; ``app-servers`` (and ``batch``) to let in; a
serverless cache ``sessions`` behind the same two groups, on 6379 and 6380;
and a MemoryDB cluster ``store`` behind them too, on 6379.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import app as handler
from offline.harness import build_vpc_example
from offline.moto_backend import MotoBackend
from offline.receiver import ResponseReceiver
from offline.standin import Cache, ElastiCacheStandIn
from tests.lifecycle.simulator import CloudFormation
from tests.support import Servers, ledger_view
from tests.vpc_world import app_rules_described

ACCOUNT = "123456789012"
MISSING = "sg-0ffffffffffffffff"


@dataclass
class Vpc:
    cfn: CloudFormation
    moto: MotoBackend
    app: str
    batch: str
    cache: str
    shared: str
    ec2_calls: list[str]

    def rules(self) -> set[tuple[str, str, int]]:
        """(source name, target name, port) of every rule into the cache's groups."""
        names = {self.app: "app", self.batch: "batch", self.cache: "cache", self.shared: "shared"}
        return {
            (names[source], names[target], port)
            for target in (self.cache, self.shared)
            for source, owner, port, _ in self.moto.ingress(target)
            if owner == ACCOUNT
        }

    def described(self) -> set[tuple[str, int, str]]:
        """(target group id, port, description) of every rule from app-servers."""
        return app_rules_described(self.moto, {"app": self.app, "cache": self.cache, "shared": self.shared})

    def access(self, source: str | None = None, **extra: Any) -> dict[str, Any]:
        return {"ReplicationGroupId": "app-cache", "SourceSecurityGroupId": source or self.app, **extra}

    def sessions(self, **extra: Any) -> dict[str, Any]:
        return {"ServerlessCacheName": "sessions", "SourceSecurityGroupId": self.app, **extra}

    def store(self, **extra: Any) -> dict[str, Any]:
        return {"MemoryDBClusterName": "store", "SourceSecurityGroupId": self.app, **extra}

    def holders(self, source: str = "") -> dict[tuple[str, int], set[str]]:
        """(target name, port) of every rule from app-servers (or ``source``, as the id spells it) that EC2 holds
        -> who holds it in the ledger, as a person reads them."""
        names = {self.cache: "cache", self.shared: "shared"}
        ledger = ledger_view(self.moto)
        spelt = source or f"{self.app}@{ACCOUNT}"
        return {
            (names[target], port): set(ledger.get(f"vpc|{target}|tcp|{port}|{spelt}", {}).get("held_by", []))
            for target in (self.cache, self.shared)
            for held, _, port, _ in self.moto.ingress(target)
            if held == (source or self.app)
        }

    def by_hand(self, target: str, port: int = 6379, description: str = "opened by the on-call") -> None:
        pair = {"GroupId": self.app, "UserId": ACCOUNT, "Description": description}
        permission = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [pair]}
        self.moto.client("ec2").authorize_security_group_ingress(GroupId=target, IpPermissions=[permission])

    def let_in(self, **source: Any) -> dict[str, Any]:
        """The replication group's access for another kind of source: SourceCidrIp=..., and so on."""
        return {"ReplicationGroupId": "app-cache", **source}

    def from_source(self, source: str) -> set[tuple[str, int, str]]:
        """(target name, port, description) of every rule from ``source``: a CIDR or a prefix list id."""
        names = {self.cache: "cache", self.shared: "shared"}
        return {
            (names[target], port, description)
            for target in (self.cache, self.shared)
            for held, _, port, description in self.moto.ingress(target)
            if held == source
        }

    def by_hand_from(self, target: str, description: str = "opened by the on-call", **source: str) -> None:
        """An operator's rule on 6379 from a CIDR: ``CidrIp=...`` or ``CidrIpv6=...``."""
        ranges = "Ipv6Ranges" if "CidrIpv6" in source else "IpRanges"
        entry = {**source, "Description": description}
        permission = {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, ranges: [entry]}
        self.moto.client("ec2").authorize_security_group_ingress(GroupId=target, IpPermissions=[permission])

    def writes(self) -> list[str]:
        """The EC2 calls the handler made that change something."""
        return [c for c in self.ec2_calls if not c.startswith("Describe")]


@pytest.fixture
def world(moto: MotoBackend, standin: ElastiCacheStandIn, receiver: ResponseReceiver) -> Iterator[Vpc]:
    ids = build_vpc_example(moto, standin)
    (batch,) = moto.security_groups("batch").values()
    app, cache, shared = ids.values()
    standin.add_serverless_cache(Cache("sessions", (cache, shared), port=6379, reader_port=6380))
    moto.client("memorydb").create_cluster(
        ClusterName="store", NodeType="db.t4g.small", ACLName="open-access", SecurityGroupIds=[cache, shared]
    )
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = handler.ec2().client.meta.events
    events.register("before-call.ec2", record)
    yield Vpc(CloudFormation(receiver, standin), moto, app, batch, cache, shared, calls)
    events.unregister("before-call.ec2", record)


BOTH = {("app", "cache", 6379), ("app", "shared", 6379)}
BOTH_PORTS = BOTH | {("app", "cache", 6380), ("app", "shared", 6380)}


# -- one stack ------------------------------------------------------------------------


def test_create_narrow_widen_and_delete(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.sessions(Port="6379")})
    assert stack.status == "CREATE_COMPLETE"
    assert world.rules() == BOTH

    world.cfn.update_stack(stack, {"Access": world.sessions(Port="6379", TargetSecurityGroupIds=[world.cache])})
    assert stack.status == "UPDATE_COMPLETE"
    assert world.rules() == {("app", "cache", 6379)}

    world.cfn.update_stack(stack, {"Access": world.sessions()})
    assert stack.status == "UPDATE_COMPLETE"
    assert world.rules() == BOTH_PORTS

    world.cfn.delete_stack(stack)
    assert (stack.status, world.rules()) == ("DELETE_COMPLETE", set())


def test_a_narrowing_replacement_and_its_cleanup_need_no_cloudformation_lookup(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    world.cfn.update_stack(stack, {"Access": world.access(TargetSecurityGroupIds=[world.cache])})
    # The cleanup Delete of the old id ran: the rule the new id also holds stays, the other went.
    assert [i.event["RequestType"] for i in world.cfn.log] == ["Create", "Update", "Delete"]
    assert (stack.status, world.rules()) == ("UPDATE_COMPLETE", {("app", "cache", 6379)})
    assert not hasattr(handler, "stacks")


def test_a_description_change_keeps_the_id_and_the_rules(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    first = stack.resources["Access"].physical_id
    world.cfn.update_stack(stack, {"Access": world.access(Description="sessions")})
    assert (stack.status, stack.resources["Access"].physical_id) == ("UPDATE_COMPLETE", first)
    assert world.described() == {(world.cache, 6379, "sessions"), (world.shared, 6379, "sessions")}


def test_another_resource_failing_after_a_narrowing_replacement_restores_every_rule(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    world.cfn.update_stack(
        stack, {"Access": world.access(TargetSecurityGroupIds=[world.cache])}, another_resource_fails=True
    )
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert world.rules() == BOTH


def test_another_resource_failing_after_a_widening_replacement_takes_back_the_new_port(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.sessions(Port="6379")})
    world.cfn.update_stack(stack, {"Access": world.sessions()}, another_resource_fails=True)
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert world.rules() == BOTH


def test_a_replacement_refused_for_a_port_the_cache_lacks_rolls_back_to_exactly_the_old_rules(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    sent: list[int] = []

    def count(event: dict[str, Any]) -> None:
        sent.append(len(world.ec2_calls))

    world.cfn.before_each = count
    world.cfn.update_stack(stack, {"Access": world.access(Port="22")})
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert "Port 22 is not an endpoint port of ReplicationGroupId 'app-cache'" in world.cfn.log[1].answer.reason  # type: ignore[union-attr]
    assert world.ec2_calls[sent[0] : sent[1]] == []  # the refused Update made no EC2 call at all
    assert world.rules() == BOTH


def test_a_create_naming_groups_the_cache_is_not_in_fails_before_any_ec2_write(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access(TargetSecurityGroupIds=[world.cache, MISSING])})
    assert stack.status == "ROLLBACK_COMPLETE"
    assert f"TargetSecurityGroupIds {MISSING} are not attached" in world.cfn.log[0].answer.reason  # type: ignore[union-attr]
    assert (world.writes(), world.rules()) == ([], set())


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


def test_a_replacement_whose_answer_is_lost_is_taken_back_by_the_rollback_update(
    world: Vpc, receiver: ResponseReceiver
) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.sessions(Port="6379")})
    receiver.fail_next(5)  # the Update goes through, but CloudFormation never hears of its new id
    world.cfn.update_stack(stack, {"Access": world.sessions()})
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert world.rules() == BOTH


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


def test_a_memorydb_cluster_named_alone_is_opened_narrowed_and_closed_with_its_holds(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.store()})
    assert (stack.status, world.rules()) == ("CREATE_COMPLETE", BOTH)
    assert set(world.holders()) == {("cache", 6379), ("shared", 6379)}
    assert all(held == {"stack app, resource Access"} for held in world.holders().values())

    world.cfn.update_stack(stack, {"Access": world.store(TargetSecurityGroupIds=[world.cache])})
    assert (stack.status, world.rules()) == ("UPDATE_COMPLETE", {("app", "cache", 6379)})

    world.cfn.delete_stack(stack)
    assert (stack.status, world.rules(), world.holders()) == ("DELETE_COMPLETE", set(), {})


def test_a_stack_whose_memorydb_cluster_was_deleted_by_hand_still_deletes_and_takes_its_rules_back(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.store()})
    world.moto.client("memorydb").delete_cluster(ClusterName="store")
    world.cfn.delete_stack(stack)
    assert (stack.status, world.rules()) == ("DELETE_COMPLETE", set())


def test_respelling_the_case_of_a_gone_memorydb_clusters_name_keeps_the_rules_and_never_sticks_a_rollback(
    world: Vpc,
) -> None:
    """MemoryDB keeps names in lower case: ``Store`` and ``store`` are one cluster, so one request.

    With the cluster deleted by hand, an Update that only respells the name
    cannot look it up; like a Description-only Update it asks for exactly the
    rules the held id names, so it keeps them. Taken for a different request,
    it failed, and its rollback Update (the same two names, swapped) failed
    too: UPDATE_ROLLBACK_FAILED.
    """
    stack = world.cfn.create_stack("app", {"Access": world.store(MemoryDBClusterName="Store")})
    held = stack.resources["Access"].physical_id
    world.moto.client("memorydb").delete_cluster(ClusterName="store")
    world.cfn.update_stack(stack, {"Access": world.store(MemoryDBClusterName="store")}, another_resource_fails=True)
    assert (stack.status, stack.resources["Access"].physical_id, world.rules()) == (
        "UPDATE_ROLLBACK_COMPLETE",
        held,
        BOTH,
    )
    world.cfn.update_stack(stack, {"Access": world.store(MemoryDBClusterName="store")})
    assert (stack.status, stack.resources["Access"].physical_id, world.rules()) == ("UPDATE_COMPLETE", held, BOTH)
    world.cfn.delete_stack(stack)
    assert world.rules() == set()


@pytest.mark.xfail(
    strict=True,
    reason="docs/limits.md: an Update that spells out the held port or groups while the cache is gone cannot roll back",
)
def test_spelling_out_the_held_port_of_a_gone_cache_rolls_back(world: Vpc) -> None:
    """The cluster is gone and an Update adds ``Port: "6379"``, the port the held id already names.

    It cannot be looked up, so it fails (rightly: the cache is gone). Its
    rollback Update, back to no Port, cannot look it up either, and it is
    indistinguishable from a forward Update that drops Port: that one asks
    for every port the cache has, perhaps more than the held id names, so it
    must not keep the held id; the rollback fails with it.
    """
    stack = world.cfn.create_stack("app", {"Access": world.store()})
    world.moto.client("memorydb").delete_cluster(ClusterName="store")
    world.cfn.update_stack(stack, {"Access": world.store(Port="6379")})
    assert (stack.status, world.rules()) == ("UPDATE_ROLLBACK_COMPLETE", BOTH)


def test_a_create_for_a_missing_memorydb_cluster_rolls_back_cleanly(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.store(MemoryDBClusterName="gone")})
    assert (stack.status, world.rules(), world.writes()) == ("ROLLBACK_COMPLETE", set(), [])
    assert "MemoryDBClusterName 'gone' not found" in world.cfn.log[0].answer.reason  # type: ignore[union-attr]


def test_a_repeated_create_that_went_through_after_the_first_failed_its_lookup_is_taken_back_by_the_rollback(
    world: Vpc, servers: Servers
) -> None:
    """The same Create delivered twice: the first's MemoryDB lookup hangs past the deadline, so it fails before any
    change, with the id the function makes for that case; the second goes through and holds its rules, under the
    same id, since both have the same RequestId. CloudFormation acts on the first answer: its rollback Delete of
    that id must look the cluster up and let go of the holds, though the Create it answered changed nothing."""
    servers.memorydb.stall_next(1, 3.0)
    world.cfn.budget = 3.0  # the deadline is 2.25 s
    world.cfn.duplicate_deliveries = True
    stack = world.cfn.create_stack("app", {"Access": world.store()})
    first, again, rollback, *_repeated = world.cfn.log
    assert first.answer is not None
    assert again.answer is not None
    assert (first.answer.status, again.answer.status) == ("FAILED", "SUCCESS")
    assert rollback.event["PhysicalResourceId"] == first.answer.physical_id
    assert (stack.status, world.rules()) == ("ROLLBACK_COMPLETE", set())


@pytest.mark.xfail(
    strict=True,
    reason="docs/limits.md: the rollback Delete of a Create that failed in its lookup must make that lookup again",
)
@pytest.mark.parametrize("fault", ["no-endpoint", "throttled"])
def test_a_create_whose_memorydb_lookup_never_succeeds_rolls_back_without_looking_again(
    world: Vpc, servers: Servers, fault: str
) -> None:
    """MemoryDB never answers the lookup: a region without MemoryDB (its endpoint takes no connection), or
    throttling that outlasts the deadline. The Create fails before its first change, with the id the function
    makes for that case; its rollback Delete must make the same lookup (a repeated delivery of the Create may
    have gone through under that id: the test above), so it fails the same way and the stack is ROLLBACK_FAILED."""
    if fault == "no-endpoint":
        servers.memorydb.drop_next(10_000)
    else:
        servers.memorydb.throttle_for(60.0)
    world.cfn.budget = 3.0  # the deadline is 2.25 s
    try:
        stack = world.cfn.create_stack("app", {"Access": world.store()})
        lookups = len(servers.memorydb.calls())
    finally:
        servers.memorydb.clear_faults()
    create, rollback = world.cfn.log
    assert create.answer is not None
    assert create.answer.status == "FAILED"
    assert "DescribeClusters failed with" in create.answer.reason
    assert rollback.event["PhysicalResourceId"] == create.answer.physical_id
    assert (stack.status, world.rules(), world.writes()) == ("ROLLBACK_COMPLETE", set(), [])
    assert len(servers.memorydb.calls()) == lookups  # the rollback looked nothing up


def test_moving_from_a_replication_group_to_a_memorydb_cluster_keeps_the_rules_both_name(world: Vpc) -> None:
    """Same source, groups and port: the id is the same rules, so the Update keeps the id and revokes nothing."""
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    first = stack.resources["Access"].physical_id
    world.cfn.update_stack(stack, {"Access": world.store()})
    assert (stack.status, stack.resources["Access"].physical_id, world.rules()) == ("UPDATE_COMPLETE", first, BOTH)
    assert "RevokeSecurityGroupIngress" not in world.writes()  # the access never went away
    world.cfn.delete_stack(stack)
    assert world.rules() == set()


# -- several stacks, and people --------------------------------------------------------


def test_a_memorydb_stack_and_a_replication_group_stack_sharing_rules_each_hold_them(world: Vpc) -> None:
    x = world.cfn.create_stack("x", {"Access": world.access()})
    y = world.cfn.create_stack("y", {"Access": world.store()})
    assert all(held == {"stack x, resource Access", "stack y, resource Access"} for held in world.holders().values())
    world.cfn.delete_stack(x)
    assert world.rules() == BOTH  # y's MemoryDB cluster still needs them
    world.cfn.delete_stack(y)
    assert world.rules() == set()


def test_two_stacks_sharing_a_rule_each_keep_it_until_both_are_deleted(world: Vpc) -> None:
    x = world.cfn.create_stack("x", {"Access": world.access()})
    y = world.cfn.create_stack("y", {"Access": world.access(TargetSecurityGroupIds=[world.cache])})
    world.cfn.delete_stack(x)
    assert world.rules() == {("app", "cache", 6379)}  # Y still declares it
    world.cfn.delete_stack(y)
    assert world.rules() == set()


def test_deleting_the_later_of_two_sharing_stacks_leaves_the_first_its_access(world: Vpc) -> None:
    x = world.cfn.create_stack("x", {"Access": world.access()})
    y = world.cfn.create_stack("y", {"Access": world.access()})
    world.cfn.delete_stack(y)
    assert world.rules() == BOTH
    world.cfn.delete_stack(x)
    assert world.rules() == set()


def test_two_resources_of_one_stack_sharing_a_rule_each_hold_it(world: Vpc) -> None:
    stack = world.cfn.create_stack(
        "app", {"Access": world.access(), "Again": world.access(TargetSecurityGroupIds=[world.cache])}
    )
    world.cfn.update_stack(stack, {"Again": world.access(TargetSecurityGroupIds=[world.cache])})  # Access removed
    assert world.rules() == {("app", "cache", 6379)}
    world.cfn.delete_stack(stack)
    assert world.rules() == set()


def test_a_failed_create_in_another_stack_leaves_the_first_stacks_rule(world: Vpc) -> None:
    x = world.cfn.create_stack("x", {"Access": world.access()})
    y = world.cfn.create_stack("y", {"Access": world.access(TargetSecurityGroupIds=[MISSING, world.cache])})
    assert (x.status, y.status) == ("CREATE_COMPLETE", "ROLLBACK_COMPLETE")
    assert world.rules() == BOTH


def test_a_create_failing_in_discovery_rolls_back_without_touching_another_stacks_rule(
    world: Vpc, standin: ElastiCacheStandIn
) -> None:
    x = world.cfn.create_stack("x", {"Access": world.access()})

    def throttled_create(event: dict[str, Any]) -> float | None:
        """Y's Create meets throttling past its whole 3 s; its rollback Delete, after the storm, rediscovers."""
        if event["RequestType"] != "Create":
            return None
        standin.throttle_for(4.0)
        return 3.0

    world.cfn.before_each = throttled_create
    y = world.cfn.create_stack("y", {"Access": world.access()})
    assert (x.status, y.status) == ("CREATE_COMPLETE", "ROLLBACK_COMPLETE")
    assert world.cfn.log[-1].event["RequestType"] == "Delete"  # the rollback rediscovered the same rules
    assert world.rules() == BOTH


def test_a_rule_made_by_hand_survives_a_create_and_delete_with_its_description(world: Vpc) -> None:
    world.by_hand(world.cache)
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    assert world.rules() == BOTH
    world.cfn.delete_stack(stack)
    assert world.described() == {(world.cache, 6379, "opened by the on-call")}


def test_a_delete_with_a_crafted_id_revokes_nothing_it_does_not_hold(world: Vpc) -> None:
    x = world.cfn.create_stack("x", {"Access": world.access()})
    world.by_hand(world.shared, 6380)
    crafted = f"cache-vpc-ingress:{world.app}@{ACCOUNT}:6379,6380:{','.join(sorted((world.cache, world.shared)))}"
    intruder = world.cfn.create_stack("intruder", {})
    answer = world.cfn._send("Delete", intruder, "Access", world.access(), physical_id=crafted)
    assert answer is not None
    assert answer.status == "SUCCESS"
    assert world.rules() == BOTH | {("app", "shared", 6380)}
    assert x.status == "CREATE_COMPLETE"


# -- sources other than a security group ------------------------------------------------

OFFICE = "10.20.0.0/16"
VPN = "2001:db8:ab::/48"
INTO_BOTH = {"cache", "shared"}


def targets_of(rules: set[tuple[str, int, str]]) -> set[str]:
    return {target for target, port, _ in rules if port == 6379}


@pytest.mark.parametrize(
    ("given", "held", "id_part"),
    [
        ({"SourceCidrIp": OFFICE}, OFFICE, OFFICE),
        ({"SourceCidrIpv6": "2001:DB8:AB:0::/48"}, VPN, f"[{VPN}]"),  # any spelling; EC2 is sent the canonical one
    ],
)
def test_a_cidr_is_let_in_on_each_of_the_caches_groups_and_taken_back_on_delete(
    world: Vpc, given: dict[str, str], held: str, id_part: str
) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.let_in(**given)})
    answer = world.cfn.log[0].answer
    assert answer is not None
    assert answer.physical_id == f"cache-vpc-ingress:{id_part}:6379:{','.join(sorted((world.cache, world.shared)))}"
    assert (answer.data["Source"], answer.data[next(iter(given))]) == (held, held)
    assert targets_of(world.from_source(held)) == INTO_BOTH
    world.cfn.delete_stack(stack)
    assert world.from_source(held) == set()


def test_respelling_a_cidr_is_no_replacement_and_changes_no_rule(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.let_in(SourceCidrIpv6=VPN)})
    first = stack.resources["Access"].physical_id
    world.cfn.update_stack(stack, {"Access": world.let_in(SourceCidrIpv6="2001:0db8:00ab::/48")})
    assert (stack.status, stack.resources["Access"].physical_id) == ("UPDATE_COMPLETE", first)
    assert [i.event["RequestType"] for i in world.cfn.log] == ["Create", "Update"]  # no cleanup Delete
    assert targets_of(world.from_source(VPN)) == INTO_BOTH


def test_a_prefix_list_is_let_in_held_and_taken_back(world: Vpc) -> None:
    agents = world.moto.prefix_list("build-agents", ["10.8.0.0/16", "10.9.0.0/16"])
    stack = world.cfn.create_stack("app", {"Access": world.let_in(SourcePrefixListId=agents.upper())})
    assert stack.status == "CREATE_COMPLETE"
    assert stack.resources["Access"].physical_id.startswith(f"cache-vpc-ingress:{agents}:6379:")
    assert targets_of(world.from_source(agents)) == INTO_BOTH
    assert world.holders(agents) == {
        ("cache", 6379): {"stack app, resource Access"},
        ("shared", 6379): {"stack app, resource Access"},
    }
    world.cfn.delete_stack(stack)
    assert world.from_source(agents) == set()


def test_a_prefix_list_that_does_not_exist_fails_naming_it_and_rolls_back_cleanly(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.let_in(SourcePrefixListId="pl-0123456789abcdef0")})
    assert stack.status == "ROLLBACK_COMPLETE"
    reason = world.cfn.log[0].answer.reason  # type: ignore[union-attr]
    assert "SourcePrefixListId pl-0123456789abcdef0 does not exist in this account and region" in reason
    assert world.from_source("pl-0123456789abcdef0") == set()


def test_the_whole_internet_is_refused_before_any_call_unless_the_stack_says_so(world: Vpc) -> None:
    refused = world.cfn.create_stack("app", {"Access": world.let_in(SourceCidrIp="0.0.0.0/0")})
    assert refused.status == "ROLLBACK_COMPLETE"
    assert "SourceCidrIp 0.0.0.0/0 lets in every address on the internet" in world.cfn.log[0].answer.reason  # type: ignore[union-attr]
    assert world.ec2_calls == []
    meant = world.cfn.create_stack(
        "public", {"Access": world.let_in(SourceCidrIp="0.0.0.0/0", AllowAnyIpAddress="true")}
    )
    assert meant.status == "CREATE_COMPLETE"
    assert targets_of(world.from_source("0.0.0.0/0")) == INTO_BOTH


def test_two_stacks_letting_in_the_same_cidr_each_keep_it_until_both_are_deleted(world: Vpc) -> None:
    x = world.cfn.create_stack("x", {"Access": world.let_in(SourceCidrIp=OFFICE)})
    y = world.cfn.create_stack("y", {"Access": world.let_in(SourceCidrIp=OFFICE, TargetSecurityGroupIds=[world.cache])})
    world.cfn.delete_stack(x)
    assert targets_of(world.from_source(OFFICE)) == {"cache"}
    world.cfn.delete_stack(y)
    assert world.from_source(OFFICE) == set()


def test_a_cidr_rule_made_by_hand_survives_a_create_and_delete_with_its_description(world: Vpc) -> None:
    world.by_hand_from(world.cache, CidrIpv6=VPN)
    stack = world.cfn.create_stack("app", {"Access": world.let_in(SourceCidrIpv6=VPN)})
    assert targets_of(world.from_source(VPN)) == INTO_BOTH
    world.cfn.delete_stack(stack)
    assert world.from_source(VPN) == {("cache", 6379, "opened by the on-call")}


def test_changing_the_kind_of_source_replaces_the_rules_and_a_rollback_restores_them(world: Vpc) -> None:
    stack = world.cfn.create_stack("app", {"Access": world.access()})
    world.cfn.update_stack(stack, {"Access": world.let_in(SourceCidrIp=OFFICE)}, another_resource_fails=True)
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert (world.rules(), world.from_source(OFFICE)) == (BOTH, set())
    world.cfn.update_stack(stack, {"Access": world.let_in(SourceCidrIp=OFFICE)})
    assert stack.status == "UPDATE_COMPLETE"
    assert (world.rules(), targets_of(world.from_source(OFFICE))) == (set(), INTO_BOTH)


@pytest.mark.parametrize(
    ("by_hand", "declared", "held"),
    [
        ({"CidrIpv6": "2001:DB8:AB::/48"}, {"SourceCidrIpv6": VPN}, VPN),
        ({"CidrIp": "10.20.0.9/16"}, {"SourceCidrIp": OFFICE}, OFFICE),
    ],
)
def test_a_rule_made_by_hand_from_the_same_range_spelt_otherwise_is_that_rule_and_outlives_the_delete(
    world: Vpc, by_hand: dict[str, str], declared: dict[str, str], held: str
) -> None:
    """EC2 keeps one rule per range, however it was spelt (masked, lower case): the Create finds it, and the
    ledger records it as there before any holder."""
    world.by_hand_from(world.cache, **by_hand)
    stack = world.cfn.create_stack("app", {"Access": world.let_in(**declared)})
    spelt = f"[{held}]" if ":" in held else held
    assert ledger_view(world.moto)[f"vpc|{world.cache}|tcp|6379|{spelt}"]["origin"] == "pre-existing"
    world.cfn.delete_stack(stack)
    assert world.from_source(held) == {("cache", 6379, "opened by the on-call")}


def test_a_cidr_rule_made_by_hand_with_the_resources_own_description_is_still_not_taken_for_its_own(
    world: Vpc,
) -> None:
    """Only group rules can come from the release before the ledger; any other rule it has no entry for is
    someone else's."""
    copied = "cache-sg-ingress: stack app, resource Access"
    world.by_hand_from(world.cache, description=copied, CidrIp=OFFICE)
    stack = world.cfn.create_stack("app", {"Access": world.let_in(SourceCidrIp=OFFICE)})
    world.cfn.delete_stack(stack)
    assert world.from_source(OFFICE) == {("cache", 6379, copied)}


def test_an_ipv6_range_is_refused_for_a_cache_reached_over_ipv4_only_before_any_ec2_call(world: Vpc) -> None:
    """The serverless cache reports no NetworkType: it is ipv4, so a rule from an IPv6 range would let nothing in."""
    stack = world.cfn.create_stack("app", {"Access": {"ServerlessCacheName": "sessions", "SourceCidrIpv6": VPN}})
    assert stack.status == "ROLLBACK_COMPLETE"
    reason = world.cfn.log[0].answer.reason  # type: ignore[union-attr]
    assert f"SourceCidrIpv6 {VPN} cannot reach ServerlessCacheName 'sessions': its NetworkType is ipv4" in reason
    assert world.ec2_calls == []
    assert world.from_source(VPN) == set()


# -- each target group's quota of inbound rules ----------------------------------------


def fill(world: Vpc, target: str, count: int) -> None:
    """``count`` rules into ``target`` from IPv4 ranges on port 22, made by hand."""
    ranges = [{"CidrIp": f"10.{i}.0.0/16"} for i in range(count)]
    permission = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": ranges}
    world.moto.client("ec2").authorize_security_group_ingress(GroupId=target, IpPermissions=[permission])


def agents_of_twenty(world: Vpc) -> str:
    """A prefix list of two entries that may grow to 20: it counts as 20 rules wherever a rule references it."""
    made = world.moto.client("ec2").create_managed_prefix_list(
        PrefixListName="agents", MaxEntries=20, AddressFamily="IPv4", Entries=[{"Cidr": "10.8.0.0/16"}]
    )
    prefix_list_id: str = made["PrefixList"]["PrefixListId"]
    return prefix_list_id


def test_a_prefix_list_on_a_two_port_serverless_cache_past_a_groups_quota_fails_before_any_write(world: Vpc) -> None:
    """21 rules in the cache's group, and 20 entries on each of two ports: 61, past the quota of 60 (moto's
    Service Quotas). Neither group gets a rule, the shared one included, though it has room."""
    fill(world, world.cache, 21)
    agents = agents_of_twenty(world)
    stack = world.cfn.create_stack("app", {"Access": {"ServerlessCacheName": "sessions", "SourcePrefixListId": agents}})
    assert stack.status == "ROLLBACK_COMPLETE"
    reason = world.cfn.log[0].answer.reason  # type: ignore[union-attr]
    assert f"Security group {world.cache} would hold 61 inbound IPv4 rules (40 of them added by this resource)" in (
        reason
    )
    assert "past its quota of 60; nothing was changed" in reason
    assert world.writes() == []
    assert world.from_source(agents) == set()


def test_rules_that_exist_already_weigh_nothing_against_a_full_group(world: Vpc) -> None:
    """The cache's group is full (20 rules and the list's two, 20 each): the grant only claims those two."""
    fill(world, world.cache, 20)
    agents = agents_of_twenty(world)
    for port in (6379, 6380):
        entry = {"PrefixListId": agents, "Description": "opened by the on-call"}
        permission = {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "PrefixListIds": [entry]}
        world.moto.client("ec2").authorize_security_group_ingress(GroupId=world.cache, IpPermissions=[permission])
    stack = world.cfn.create_stack("app", {"Access": {"ServerlessCacheName": "sessions", "SourcePrefixListId": agents}})
    assert stack.status == "CREATE_COMPLETE"
    assert {(t, p) for t, p, _ in world.from_source(agents)} == {(t, p) for t in INTO_BOTH for p in (6379, 6380)}
    world.cfn.delete_stack(stack)
    assert world.from_source(agents) == {("cache", p, "opened by the on-call") for p in (6379, 6380)}
