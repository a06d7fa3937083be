"""VPC mode over loopback: the real lambda_handler over real HTTP to moto's EC2 and replication groups.

The world is the one the ``events/vpc-*.json`` examples assume (see
``offline.harness.build_vpc_example``): the replication group ``app-cache``
on port 6379, guarded by security groups ``app-cache`` and ``shared-clients``,
and ``app-servers`` to let in. CloudFormation's side is the https receiver (read
through ``tests.support.invoke``).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest

import app
from offline.harness import EXAMPLE_GROUPS, ROOT, build_vpc_example
from offline.ledger_table import LEDGER_TABLE
from offline.moto_backend import MotoBackend
from offline.standin import Cache, ElastiCacheStandIn
from tests.support import assert_failed, assert_success, invoke, known_gap, ledger_view, load_event, run_module

ACCOUNT = "123456789012"
DEFAULT_DESCRIPTION = "cache-sg-ingress: stack cache-access, resource AppCacheAccess"
MISSING_GROUP = "sg-fffffffffffffffff"  # sorts after every id moto makes


@dataclass
class World:
    moto: MotoBackend
    standin: ElastiCacheStandIn
    ids: dict[str, str]

    @property
    def app(self) -> str:
        return self.ids["sg-0a1b2c3d4e5f60718"]

    @property
    def cache(self) -> str:
        return self.ids["sg-0c0c0c0c0c0c0c0c1"]

    @property
    def shared(self) -> str:
        return self.ids["sg-0d0d0d0d0d0d0d0d2"]

    def rule_set_id(self, *targets: str, ports: str = "6379") -> str:
        return f"cache-vpc-ingress:{self.app}@{ACCOUNT}:{ports}:{','.join(sorted(targets))}"

    def event(self, name: str, properties: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
        """A sample event in this world's ids; ``properties`` are merged into its ResourceProperties."""
        event = load_event(name, self.ids, **changes)
        if properties is not None:
            event["ResourceProperties"] = {**event["ResourceProperties"], **properties}
        return event

    def create_for(self, **cache: Any) -> dict[str, Any]:
        """A Create naming the cache as ``cache`` says, letting app-servers in."""
        event = self.event("vpc-create.json")
        event["ResourceProperties"] = {
            "ServiceToken": event["ServiceToken"],
            "SourceSecurityGroupId": self.app,
            **cache,
        }
        return event

    def send(self, event: dict[str, Any]) -> dict[str, Any]:
        return invoke(event)

    def rules(self) -> set[tuple[str, int, str]]:
        """Every rule from app-servers, as (target group name, port, description)."""
        names = {self.ids[example]: name for example, name in EXAMPLE_GROUPS.items()}
        return {
            (names[group], port, description)
            for group in (self.cache, self.shared)
            for source, owner, port, description in self.moto.ingress(group)
            if (source, owner) == (self.app, ACCOUNT)
        }

    def holders(self) -> dict[str, list[str]]:
        """Each rule from app-servers into the cache's groups (by its id) -> who holds it in the ledger."""
        ec2 = self.moto.client("ec2")
        ledger = ledger_view(self.moto)
        found = {}
        for group in (self.cache, self.shared):
            for rule in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])[
                "SecurityGroupRules"
            ]:
                if (rule.get("ReferencedGroupInfo") or {}).get("GroupId") == self.app:
                    key = f"vpc|{group}|tcp|{rule['FromPort']}|{self.app}@{ACCOUNT}"
                    found[rule["SecurityGroupRuleId"]] = ledger.get(key, {}).get("held_by", [])
        return found

    def by_hand(self, verb: str, group: str, description: str | None = None) -> None:
        """What an operator does in the console: authorize or revoke app-servers on 6379 into ``group``."""
        pair = {"GroupId": self.app, "UserId": ACCOUNT, **({"Description": description} if description else {})}
        permission = {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [pair]}
        getattr(self.moto.client("ec2"), f"{verb}_security_group_ingress")(GroupId=group, IpPermissions=[permission])


@pytest.fixture
def world(moto: MotoBackend, standin: ElastiCacheStandIn) -> World:
    return World(moto, standin, build_vpc_example(moto, standin))


def assert_another_stack_creates_the_same_rules(world: World) -> None:
    """Another stack, with time, creates the rules a failed Delete left: that Delete's fault must not fail it."""
    other = world.event(
        "vpc-create.json",
        properties={"ServiceTimeout": "8"},
        StackId="arn:aws:cloudformation:us-east-1:123456789012:stack/other-stack/0f0f0f0f-0c1d-11ef-9a0b-0a1b2c3d4e5f",
    )
    assert_success(world.send(other))


def test_a_cache_named_alone_gets_its_port_opened_on_each_of_its_groups(world: World) -> None:
    answer = world.send(world.event("vpc-create.json"))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", world.rule_set_id(world.cache, world.shared))
    rule_ids = answer["Data"].pop("SecurityGroupRuleIds").split(",")
    assert answer["Data"] == {
        "Source": world.app,
        "SourceSecurityGroupId": world.app,
        "SourceSecurityGroupOwnerId": ACCOUNT,
        "Port": "6379",
        "Ports": "6379",
        "TargetSecurityGroupIds": ",".join(sorted((world.cache, world.shared))),
        "Description": DEFAULT_DESCRIPTION,
    }
    assert world.rules() == {("app-cache", 6379, DEFAULT_DESCRIPTION), ("shared-clients", 6379, DEFAULT_DESCRIPTION)}
    assert sorted(rule_ids) == sorted(world.holders())
    assert [c.action for c in world.standin.calls()] == ["DescribeReplicationGroups", "DescribeCacheClusters"]


def test_the_ledger_lists_which_stacks_and_resources_hold_each_rule_and_the_rule_says_where_to_look(
    world: World,
) -> None:
    world.send(world.event("vpc-create.json"))
    other = world.event("vpc-create.json", LogicalResourceId="OtherAccess")
    world.send(other)
    holders = world.holders()
    assert len(holders) == 2
    for held in holders.values():
        assert held == ["stack cache-access, resource AppCacheAccess", "stack cache-access, resource OtherAccess"]
    for group in (world.cache, world.shared):
        (made,) = world.moto.client("ec2").describe_security_group_rules(
            Filters=[{"Name": "group-id", "Values": [group]}]
        )["SecurityGroupRules"][-1:]
        assert {t["Key"]: t["Value"] for t in made["Tags"]} == {
            "cache-ingress:managed-by": f"Custom::CacheIngress; holders in DynamoDB table {LEDGER_TABLE}",
            "cache-ingress:made-by": "stack cache-access, resource AppCacheAccess",
        }


def test_full_lifecycle_with_a_narrowing_replacement_leaves_the_shared_rule_to_the_new_resource(world: World) -> None:
    old_id, new_id = world.rule_set_id(world.cache, world.shared), world.rule_set_id(world.cache)
    assert world.send(world.event("vpc-create.json"))["PhysicalResourceId"] == old_id

    kept = world.send(world.event("vpc-update.json"))
    assert (kept["Status"], kept["PhysicalResourceId"]) == ("SUCCESS", old_id)
    described = "app servers: sessions cache"
    assert world.rules() == {("app-cache", 6379, described), ("shared-clients", 6379, described)}

    replaced = world.send(world.event("vpc-update-replace.json"))
    assert (replaced["Status"], replaced["PhysicalResourceId"]) == ("SUCCESS", new_id)
    assert world.rules() == {("app-cache", 6379, described), ("shared-clients", 6379, described)}

    # CloudFormation now holds the new id, and deletes the old one.
    cleanup = world.send(world.event("vpc-delete.json"))
    assert (cleanup["Status"], cleanup["PhysicalResourceId"]) == ("SUCCESS", old_id)
    assert world.rules() == {("app-cache", 6379, described)}

    gone = world.event("vpc-delete.json", PhysicalResourceId=new_id)
    assert world.send(gone)["Status"] == "SUCCESS"
    assert world.rules() == set()
    again = world.send(gone)
    assert (again["Status"], again["PhysicalResourceId"]) == ("SUCCESS", new_id)


def test_rolling_back_a_replacement_keeps_the_old_rules_and_takes_back_only_the_new(world: World) -> None:
    old_id = world.rule_set_id(world.cache, world.shared)
    world.send(world.event("vpc-create.json"))
    narrowed = {"TargetSecurityGroupIds": [world.cache]}
    replaced = world.send(world.event("vpc-update.json", properties=narrowed))
    new_id = world.rule_set_id(world.cache)
    assert replaced["PhysicalResourceId"] == new_id
    # Another resource fails: CloudFormation updates back to the old properties, then deletes the new id.
    back = world.event("vpc-update.json", PhysicalResourceId=new_id)
    back["ResourceProperties"], back["OldResourceProperties"] = (
        back["OldResourceProperties"],
        back["ResourceProperties"],
    )
    back["OldResourceProperties"].update(narrowed)
    assert world.send(back)["PhysicalResourceId"] == old_id
    cleanup = world.send(world.event("vpc-delete.json", PhysicalResourceId=new_id))
    assert cleanup["Status"] == "SUCCESS"
    assert {(group, port) for group, port, _ in world.rules()} == {("app-cache", 6379), ("shared-clients", 6379)}


def test_an_update_with_the_same_rules_repairs_a_rule_revoked_by_hand(world: World) -> None:
    world.send(world.event("vpc-create.json"))
    world.by_hand("revoke", world.shared)
    answer = world.send(world.event("vpc-update.json"))
    assert answer["Status"] == "SUCCESS"
    assert {(group, port) for group, port, _ in world.rules()} == {("app-cache", 6379), ("shared-clients", 6379)}


def test_a_rule_made_by_hand_is_held_but_keeps_its_description_and_outlives_the_delete(world: World) -> None:
    world.by_hand("authorize", world.cache, description="by hand")
    answer = world.send(world.event("vpc-create.json"))
    assert answer["Status"] == "SUCCESS"
    assert world.rules() == {("app-cache", 6379, "by hand"), ("shared-clients", 6379, DEFAULT_DESCRIPTION)}
    assert_success(world.send(world.event("vpc-delete.json")))
    assert world.rules() == {("app-cache", 6379, "by hand")}


def test_a_rule_the_release_before_the_ledger_made_is_taken_back_by_its_delete(world: World) -> None:
    """Upgrade: a rule the ledger has no entry for, with this resource's own description, is the held id's."""
    world.by_hand("authorize", world.cache, description=DEFAULT_DESCRIPTION)
    world.by_hand("authorize", world.shared, description="by hand")
    assert_success(world.send(world.event("vpc-delete.json")))
    assert world.rules() == {("shared-clients", 6379, "by hand")}


def test_an_update_after_the_upgrade_records_the_holds_the_earlier_release_left_implicit(world: World) -> None:
    world.by_hand("authorize", world.cache, description=DEFAULT_DESCRIPTION)
    world.by_hand("authorize", world.shared, description=DEFAULT_DESCRIPTION)
    narrowed = world.event("vpc-update.json", properties={"TargetSecurityGroupIds": [world.cache]})
    narrowed["OldResourceProperties"].pop("Description", None)
    narrowed["ResourceProperties"].pop("Description", None)
    assert_success(world.send(narrowed))
    # The new id holds the cache's rule in the ledger, made by this resource: the cleanup leaves it, and
    # takes back the rule only the old id names.
    assert_success(world.send(world.event("vpc-delete.json")))
    assert {(group, port) for group, port, _ in world.rules()} == {("app-cache", 6379)}


def test_delete_when_the_rules_or_a_whole_group_are_already_gone_is_success(world: World) -> None:
    world.send(world.event("vpc-create.json"))
    world.by_hand("revoke", world.cache)
    ec2 = world.moto.client("ec2")
    ec2.delete_security_group(GroupId=world.shared)
    answer = world.send(world.event("vpc-delete.json"))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", world.rule_set_id(world.cache, world.shared))


def test_delete_takes_back_the_rules_the_id_names_even_after_the_cache_is_gone(world: World) -> None:
    world.send(world.event("vpc-create.json"))
    world.moto.client("elasticache").delete_replication_group(ReplicationGroupId="app-cache")
    assert world.send(world.event("vpc-delete.json"))["Status"] == "SUCCESS"
    assert world.rules() == set()


def test_a_missing_cache_fails_with_a_reason_and_the_follow_up_delete_succeeds(world: World) -> None:
    event = world.event("vpc-create.json", properties={"ReplicationGroupId": "no-such-cache"})
    answer = world.send(event)
    assert_failed(answer, "ReplicationGroupId 'no-such-cache' not found")
    assert world.rules() == set()
    delete = {**event, "RequestType": "Delete", "PhysicalResourceId": answer["PhysicalResourceId"]}
    assert world.send(delete)["Status"] == "SUCCESS"


def test_mixed_properties_fail_before_any_call(world: World) -> None:
    calls = len(world.standin.calls())
    event = world.event("vpc-create.json", properties={"CacheSecurityGroupName": "app-cache-sg"})
    answer = world.send(event)
    assert_failed(answer, "cannot be mixed")
    assert len(world.standin.calls()) == calls
    assert world.rules() == set()


def test_a_replacement_that_fails_halfway_takes_back_what_it_added(world: World) -> None:
    # A cache that lists a group EC2 no longer has: the second group's Authorize fails.
    world.standin.add_cache_cluster(Cache("half", (world.cache, MISSING_GROUP), port=6379))
    (batch,) = world.moto.security_groups("batch").values()
    created = world.send(world.create_for(CacheClusterId="half", TargetSecurityGroupIds=[world.cache]))
    before = world.moto.ingress(world.cache)
    failing = {
        **created,
        "RequestType": "Update",
        "PhysicalResourceId": created["PhysicalResourceId"],
    }
    event = world.create_for(CacheClusterId="half", TargetSecurityGroupIds=[world.cache])
    update = {
        **event,
        "RequestType": "Update",
        "PhysicalResourceId": failing["PhysicalResourceId"],
        "OldResourceProperties": event["ResourceProperties"],
        "ResourceProperties": {**event["ResourceProperties"], "SourceSecurityGroupId": batch},
    }
    update["ResourceProperties"].pop("TargetSecurityGroupIds")
    answer = world.send(update)
    assert_failed(answer, MISSING_GROUP)
    assert "does not exist" in answer["Reason"]
    assert world.moto.ingress(world.cache) == before  # batch went into app-cache, then back out


def test_throttled_describes_are_retried(world: World) -> None:
    world.standin.throttle_next(3)
    assert world.send(world.event("vpc-create.json"))["Status"] == "SUCCESS"


def test_make_invoke_runs_a_vpc_event_in_the_example_world_and_shows_the_ids_it_swapped() -> None:
    result = run_module("offline.invoke", "events/vpc-update.json")
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert answer["Data"]["Description"] == "app servers: sessions cache"
    swapped = dict(re.findall(r"^  (sg-[0-9a-f]+) -> (sg-[0-9a-f]+)  \(", result.stderr, re.MULTILINE))
    assert sorted(swapped) == sorted(EXAMPLE_GROUPS)
    # "Same rules, same id" can be read off the output: the id names the swapped-in groups.
    source, targets = (
        swapped["sg-0a1b2c3d4e5f60718"],
        sorted(swapped[example] for example in ("sg-0c0c0c0c0c0c0c0c1", "sg-0d0d0d0d0d0d0d0d2")),
    )
    assert answer["PhysicalResourceId"] == f"cache-vpc-ingress:{source}@123456789012:6379:{','.join(targets)}"


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "events").glob("vpc-*.json")))
def test_every_vpc_sample_event_succeeds_in_the_example_world(world: World, name: str) -> None:
    answer = world.send(world.event(name))
    assert_success(answer)
    assert answer["PhysicalResourceId"].startswith("cache-vpc-ingress:")


def test_a_serverless_cache_gets_its_endpoint_and_reader_ports_opened(world: World) -> None:
    world.standin.add_serverless_cache(Cache("sessions", (world.cache,), port=6379, reader_port=6380))
    event = world.create_for(ServerlessCacheName="sessions")
    answer = world.send(event)
    assert (answer["Status"], answer["Data"]["Ports"]) == ("SUCCESS", "6379,6380")
    assert {(group, port) for group, port, _ in world.rules()} == {("app-cache", 6379), ("app-cache", 6380)}
    delete = {**event, "RequestType": "Delete", "PhysicalResourceId": answer["PhysicalResourceId"]}
    assert world.send(delete)["Status"] == "SUCCESS"
    assert world.moto.ingress(world.cache) == set()


def test_a_cache_cluster_of_its_own_is_found_by_id(world: World) -> None:
    world.standin.add_cache_cluster(Cache("memo", (world.shared,), port=11211))
    answer = world.send(world.create_for(CacheClusterId="memo"))
    assert answer["PhysicalResourceId"] == world.rule_set_id(world.shared, ports="11211")
    assert {(port, source) for source, _, port, _ in world.moto.ingress(world.shared)} == {(11211, world.app)}


def test_a_memorydb_cluster_is_found_in_memorydb_and_its_grant_made_held_and_taken_back(
    world: World,
) -> None:
    """The example world's MemoryDB cluster app-store (moto's MemoryDB), guarded by shared-clients on 6379."""
    store_default = "cache-sg-ingress: stack cache-access, resource AppStoreAccess"
    answer = world.send(world.event("vpc-memorydb-create.json"))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", world.rule_set_id(world.shared))
    assert (answer["Data"]["Ports"], answer["Data"]["TargetSecurityGroupIds"]) == ("6379", world.shared)
    assert world.rules() == {("shared-clients", 6379, store_default)}
    assert list(world.holders().values()) == [["stack cache-access, resource AppStoreAccess"]]
    assert world.standin.calls() == []  # nothing was asked of ElastiCache
    assert_success(world.send(world.event("vpc-memorydb-delete.json")))
    assert world.rules() == set()


def test_a_memorydb_grant_sharing_a_rule_with_a_replication_group_grant_leaves_it_to_that_one(world: World) -> None:
    """Both let app-servers into shared-clients on 6379: two holders of one rule, whatever kind of cache named it."""
    assert_success(world.send(world.event("vpc-create.json")))
    assert_success(world.send(world.event("vpc-memorydb-create.json")))
    shared_rule = [held for held in world.holders().values() if len(held) == 2]
    assert shared_rule == [
        ["stack cache-access, resource AppCacheAccess", "stack cache-access, resource AppStoreAccess"]
    ]
    assert_success(world.send(world.event("vpc-memorydb-delete.json")))
    assert {(group, port) for group, port, _ in world.rules()} == {("app-cache", 6379), ("shared-clients", 6379)}
    assert sorted(world.holders().values()) == [["stack cache-access, resource AppCacheAccess"]] * 2


def test_delete_takes_back_the_rules_after_the_memorydb_cluster_is_deleted(world: World) -> None:
    assert_success(world.send(world.event("vpc-memorydb-create.json")))
    world.moto.client("memorydb").delete_cluster(ClusterName="app-store")
    assert_success(world.send(world.event("vpc-memorydb-delete.json")))
    assert world.rules() == set()


def test_a_missing_cache_cluster_serverless_cache_or_memorydb_cluster_is_named_in_the_reason(world: World) -> None:
    for name in ("CacheClusterId", "ServerlessCacheName", "MemoryDBClusterName"):
        event = world.create_for(**{name: "nope"})
        answer = world.send(event)
        assert answer["Status"] == "FAILED"
        assert answer["Reason"].startswith(f"{name} 'nope' not found")
        # CloudFormation's rollback Delete of the failed Create, whose id is not one of ours.
        rollback = {**event, "RequestType": "Delete", "PhysicalResourceId": answer["PhysicalResourceId"]}
        assert_success(world.send(rollback))
    assert world.rules() == set()


@known_gap(
    "docs/limits.md: an earlier-release rule with a custom Description that the first Update changes is kept, never revoked",
)
def test_upgrade_an_earlier_release_resource_with_a_custom_description_whose_first_update_changes_it(
    world: World,
) -> None:
    """docs/operating.md: "A resource made by the earlier release with a custom Description is recognised at its next
    Update". Its rules carry the *old* Description (OldResourceProperties), but the Update looks for the
    new one: the rules are taken for made by hand (pre-existing), keep the old description, and outlive
    the stack's Delete.
    """
    world.by_hand("authorize", world.cache, description="app servers v1")
    world.by_hand("authorize", world.shared, description="app servers v1")
    update = world.event("vpc-update.json")
    update["OldResourceProperties"]["Description"] = "app servers v1"
    assert_success(world.send(update))
    described = "app servers: sessions cache"
    assert world.rules() == {("app-cache", 6379, described), ("shared-clients", 6379, described)}
    assert_success(world.send(world.event("vpc-delete.json")))
    assert world.rules() == set()


def test_upgrade_rolling_back_a_narrowing_replacement_does_not_mark_the_old_rules_pre_existing(world: World) -> None:
    """Both rules from the release before the ledger (default description). A narrowing Update holds the rule
    both ids name under the new id; another resource fails, so CloudFormation updates back to the old
    properties with the new id and deletes the new id. The rollback must hold the rule only the old id names
    as made by this resource, not as pre-existing, or the stack's final Delete would leave it for ever.
    """
    world.by_hand("authorize", world.cache, description=DEFAULT_DESCRIPTION)
    world.by_hand("authorize", world.shared, description=DEFAULT_DESCRIPTION)
    old_id, new_id = world.rule_set_id(world.cache, world.shared), world.rule_set_id(world.cache)
    narrowed = world.event("vpc-update.json", properties={"TargetSecurityGroupIds": [world.cache]})
    narrowed["OldResourceProperties"].pop("Description", None)
    narrowed["ResourceProperties"].pop("Description", None)
    assert world.send(narrowed)["PhysicalResourceId"] == new_id
    back = world.event("vpc-update.json", PhysicalResourceId=new_id)
    back["ResourceProperties"] = dict(narrowed["OldResourceProperties"])
    back["OldResourceProperties"] = dict(narrowed["ResourceProperties"])
    assert world.send(back)["PhysicalResourceId"] == old_id
    assert_success(world.send(world.event("vpc-delete.json", PhysicalResourceId=new_id)))
    assert {(group, port) for group, port, _ in world.rules()} == {("app-cache", 6379), ("shared-clients", 6379)}
    assert_success(world.send(world.event("vpc-delete.json", PhysicalResourceId=old_id)))
    assert world.rules() == set(), "a rule the earlier release made for this resource outlived the stack"


@known_gap(
    "docs/limits.md: an earlier-release rule with a custom Description that a replacement drops is kept, never revoked",
)
def test_upgrade_a_narrowing_replacement_of_a_custom_description_resource_takes_back_the_rule_it_drops(
    world: World,
) -> None:
    """The earlier release made both rules with the resource's custom Description, which the Update keeps.

    The narrowing Update is the resource's "next Update", at which docs/operating.md says such a resource is
    recognised. The rule both ids name is held by the new id; the rule only the old id names has no ledger
    entry, and the cleanup Delete of the old id recognises only the default description, so it leaves that
    rule for ever, declared by no resource.
    """
    described = "app servers: sessions cache"
    world.by_hand("authorize", world.cache, description=described)
    world.by_hand("authorize", world.shared, description=described)
    old_id, new_id = world.rule_set_id(world.cache, world.shared), world.rule_set_id(world.cache)
    narrowed = world.event("vpc-update.json", properties={"TargetSecurityGroupIds": [world.cache]})
    narrowed["OldResourceProperties"]["Description"] = described
    assert world.send(narrowed)["PhysicalResourceId"] == new_id
    assert_success(world.send(world.event("vpc-delete.json", PhysicalResourceId=old_id)))
    assert world.rules() == {("app-cache", 6379, described)}, "the rule the replacement dropped was left behind"


def test_a_delete_whose_revoke_is_refused_does_not_keep_a_lease_that_fails_another_stacks_create(
    world: World,
) -> None:
    """Stack X's Delete leases its rule for the revoke, then EC2 refuses the Revoke (an SCP, say): X's Delete
    fails and the rule stays. Stack Y's Create of the same rule must hold it, not wait out a lease that
    stands for a Revoke nobody will make (it would otherwise last X's whole deadline plus 20 s)."""
    from botocore.awsrequest import AWSResponse

    assert_success(world.send(world.event("vpc-create.json")))

    def refuse(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        error = {"Code": "UnauthorizedOperation", "Message": "explicit deny in a service control policy"}
        return AWSResponse("https://ec2", 403, {}, None), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}

    events = app.ec2().client.meta.events
    events.register_first("before-call.ec2.RevokeSecurityGroupIngress", refuse)
    try:
        assert_failed(world.send(world.event("vpc-delete.json")), "UnauthorizedOperation")
    finally:
        events.unregister("before-call.ec2.RevokeSecurityGroupIngress", refuse)
    assert len(world.rules()) == 2  # nothing revoked
    assert_another_stack_creates_the_same_rules(world)


@known_gap(
    "docs/limits.md: a Delete cut short at its Revoke keeps its lease until it expires",
)
def test_a_delete_cut_short_by_its_deadline_at_the_revoke_does_not_fail_another_stacks_create(world: World) -> None:
    """Stack X's Delete leases its rules for the revoke, then EC2 throttles every Revoke until X's deadline: X
    fails in time (a fault with no time left) and its rules stay. Stack Y, with time, then creates the same
    rules: a throttling storm that is over must not fail it, yet it waits on X's lease (X's deadline plus
    20 s) past its own ServiceTimeout."""
    from tests.support import handle, servers

    assert_success(world.send(world.event("vpc-create.json")))

    def storm(**_: Any) -> None:
        if not servers().ec2.calls("RevokeSecurityGroupIngress"):
            servers().ec2.throttle_for(5.0)

    events = app.ec2().client.meta.events
    events.register_first("before-call.ec2.RevokeSecurityGroupIngress", storm)
    try:
        assert_failed(handle(world.event("vpc-delete.json"), seconds=4.0).answer(), "ran out of time")
    finally:
        events.unregister("before-call.ec2.RevokeSecurityGroupIngress", storm)
    time.sleep(2.5)  # the storm is over
    assert len(world.rules()) == 2  # nothing revoked
    assert_another_stack_creates_the_same_rules(world)
