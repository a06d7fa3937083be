"""Adversarial interleavings of VPC-mode operations of several stacks on one rule, against moto's EC2.

Each stack's operation runs in its own "sandbox": a :class:`VpcMode` with
clients of its own, so a ``before-call`` hook on one sandbox's EC2 client can
run another stack's whole operation at a precise point between two of its
calls, as a second Lambda sandbox would. The check is the principle of
claims: afterwards EC2 holds exactly what live resources declare plus what
people made by hand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from cache_ingress import aws_api, vpc_lifecycle
from cache_ingress.errors import ResourceFailure
from cache_ingress.protocol import Instance
from cache_ingress.timing import MAX_ANSWER_RESERVE_S, Deadline
from cache_ingress.vpc_lifecycle import VpcMode
from cache_ingress.vpc_rules import RuleSet, default_description
from offline.harness import build_vpc_example
from offline.moto_backend import MotoBackend
from offline.standin import ElastiCacheStandIn

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
        )
        return cls(stack, mode, properties)

    def instance(self, physical_id: str) -> Instance:
        return Instance(stack_id(self.stack), "Access", physical_id)

    def create(self) -> None:
        request = self.mode.parse_properties(self.properties, stack_id=stack_id(self.stack), logical_id="Access")
        granted = self.mode.resolve(request, deadline=Deadline(20.0))
        self.mode.grant(
            granted, request=request, instance=self.instance(""), deadline=Deadline(20.0), undo_on_failure=False
        )
        self.granted = granted

    def delete(self, physical_id: str | None = None, seconds: float = 20.0) -> None:
        granted = self.granted
        if physical_id is not None:
            granted = self.mode.parse_physical_id(physical_id)
        assert granted is not None
        self.mode.revoke(granted, instance=self.instance(granted.physical_id), deadline=Deadline(seconds))

    def before(self, operation: str, run: Callable[[], None], nth: int = 1) -> None:
        """Run ``run`` once, just before this sandbox's ``nth`` EC2 call of ``operation``."""
        seen = [0]

        def hook(model: Any, **_: Any) -> None:
            if model.name != operation:
                return
            seen[0] += 1
            if seen[0] == nth:
                run()

        self.mode.ec2.client.meta.events.register("before-call.ec2", hook)


@dataclass
class World:
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


@pytest.fixture
def world(moto: MotoBackend, standin: ElastiCacheStandIn) -> World:
    ids = build_vpc_example(moto, standin)
    app, cache, _shared = ids.values()
    return World(moto, app, cache)


def test_a_create_landing_while_two_sharing_deletes_let_go_does_not_leave_the_rule_behind_for_ever(
    world: World,
) -> None:
    """X and Y share the rule and are deleted at once; Z's Create lands in the moment the rule has no claim.

    Y read the rule while X's claim was still on it, so Y takes the "others hold it" path: it takes its own
    claim off first, then reads again. Between the two, the rule carries no claim at all, and Z's Create
    takes it for a rule made by hand: it writes the pre-existing mark. Z is live, so the rule must stay; but
    once Z is deleted too, nothing live declares the rule and nobody made it by hand, so it must go.
    """
    x, y, z = (Sandbox.of(name, world.access()) for name in ("x", "y", "z"))
    x.create()
    y.create()
    y.before("DeleteTags", x.delete)  # X lets go after Y read both claims, before Y takes its own off
    y.before("DescribeSecurityGroupRules", z.create, nth=2)  # Z claims between Y's untag and Y's read
    y.delete()
    assert {(s, p) for s, p, _ in world.rules()} == {(world.app, 6379)}  # Z still declares it
    z.delete()
    assert world.rules() == set(), "the rule outlived every resource that declared it, marked as made by hand"


def test_a_create_landing_while_a_delete_takes_back_an_earlier_release_rule_does_not_leave_it_for_ever(
    world: World,
) -> None:
    """Upgrade: X's rule was made by the release before claims (untagged, X's default description).

    X's Delete counts it as its own and marks it revoking; Z's Create reads it just before that mark, sees
    a rule with no claim and no mark, and takes it for one made by hand (pre-existing). X sees Z's claim
    and backs off, rightly. But once Z is deleted the rule must go: nobody made it by hand.
    """
    world.by_hand(default_description(stack_id("x"), "Access"))  # what the release before claims left
    x, z = Sandbox.of("x", world.access()), Sandbox.of("z", world.access())
    held_id = f"cache-vpc-ingress:{world.app}@{ACCOUNT}:6379:{world.cache}"
    x.before("CreateTags", z.create)  # Z claims just before X's revoking mark
    x.delete(held_id)
    assert {(s, p) for s, p, _ in world.rules()} == {(world.app, 6379)}  # Z still declares it
    z.delete()
    assert world.rules() == set(), "the rule outlived every resource that declared it, marked as made by hand"


def test_a_revoking_mark_outlives_a_revoke_that_lands_before_the_lambda_is_killed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mark expires at the Delete's deadline plus REVOKING_MARK_GRACE_S (5 s). But the deadline only
    stops *waits*: a Revoke sent before it is one botocore call (10 attempts of backoff, 20 s read timeout),
    and the Lambda lives on until the answer reserve ends (up to MAX_ANSWER_RESERVE_S = 10 s past the
    deadline; the backstop answers FAILED, the call goes on). A Create that reads the rule after the mark
    expired claims it and answers SUCCESS, and then the Delete's Revoke lands: the live stack has no rule.
    """
    x, z = Sandbox.of("x", world.access()), Sandbox.of("z", world.access())
    x.create()
    deadline_s = 50.0  # a 60 s Lambda: custom_resource keeps min(10, 25 %) of it for the answer
    offset = [0.0]
    real_time = time.time
    monkeypatch.setattr(vpc_lifecycle, "time", SimpleNamespace(time=lambda: real_time() + offset[0], sleep=time.sleep))
    threads: list[threading.Thread] = []

    def revoke_lands_just_before_the_lambda_ends() -> None:
        offset[0] = deadline_s + MAX_ANSWER_RESERVE_S - 1.0  # the Revoke is still in botocore's retries
        thread = threading.Thread(target=z.create)  # another sandbox: Z's stack Create, meanwhile
        threads.append(thread)
        thread.start()
        thread.join(timeout=3.0)  # Z is done by now, unless it (rightly) waits for the rule to go

    x.before("RevokeSecurityGroupIngress", revoke_lands_just_before_the_lambda_ends)
    x.delete(seconds=deadline_s)
    for thread in threads:
        thread.join()
    assert z.granted is not None, "Z's Create failed"
    assert {(s, p) for s, p, _ in world.rules()} == {(world.app, 6379)}, "Z's stack answered SUCCESS, has no rule"


@pytest.mark.xfail(
    strict=True,
    reason="README, Limits: another stack cannot write the claim of an earlier-release rule's stack, so the rule is kept",
)
def test_upgrade_a_rule_the_earlier_release_made_for_one_stack_is_not_kept_for_ever_by_another_stacks_claim(
    world: World,
) -> None:
    """Stack X's rule was made by the release before claims (untagged, "cache-sg-ingress: stack x, resource
    Access"). Stack Y, on the new release, declares the same rule: its Create takes the rule for one made
    by hand and marks it pre-existing. X's Delete then finds another claim and leaves it (rightly, Y holds
    it), and Y's Delete finds the mark: the rule outlives both, declared by nothing and made by nobody.
    """
    world.by_hand(default_description(stack_id("x"), "Access"))  # what the release before claims left
    x, y = Sandbox.of("x", world.access()), Sandbox.of("y", world.access())
    y.create()
    x.delete(f"cache-vpc-ingress:{world.app}@{ACCOUNT}:6379:{world.cache}")
    assert {(s, p) for s, p, _ in world.rules()} == {(world.app, 6379)}  # Y still declares it
    y.delete()
    assert world.rules() == set(), "the earlier release's rule outlived both stacks that declared it"


#: EC2 allows 50 user tags on a resource, so a rule, and one claim is a tag (README, Limits).
EC2_TAGS_PER_RESOURCE = 50


def fifty_stacks_let_the_office_in(world: World) -> Sandbox:
    """Fifty stacks each let 10.20.0.0/16 into the cache's group; the 51st, not yet created, is returned."""
    office = {
        "ReplicationGroupId": "app-cache",
        "SourceCidrIp": "10.20.0.0/16",
        "TargetSecurityGroupIds": [world.cache],
    }
    sandbox = Sandbox.of("team0", office)
    for n in range(EC2_TAGS_PER_RESOURCE):
        Sandbox(f"team{n}", sandbox.mode, office).create()  # one sandbox's clients serve them all, in turn
    return Sandbox("latecomer", sandbox.mode, office)


@pytest.mark.xfail(
    strict=True,
    raises=ResourceFailure,
    reason="README, Limits: a rule holds at most 50 tags, one claim per resource, so at most 50 resources share it",
)
def test_any_number_of_stacks_can_let_the_same_office_range_into_one_cache(world: World) -> None:
    """A group source is usually one application's own; a CIDR or prefix list (the office VPN, the build
    agents) is what many stacks name alike, so many claims land on one rule. Its 51st resource's Create
    cannot write its claim: EC2 answers TagLimitExceeded, and that stack fails to create (cleanly: its
    rollback lets go of nothing, and the 50 others keep their access).
    """
    latest = fifty_stacks_let_the_office_in(world)
    latest.create()
    assert latest.granted is not None


def test_the_resource_past_ec2s_tag_limit_is_told_why_it_cannot_share_the_rule(world: World) -> None:
    with pytest.raises(ResourceFailure) as refused:
        fifty_stacks_let_the_office_in(world).create()
    assert "already carries EC2's limit of 50 tags, one claim per resource that shares it" in str(refused.value)
    assert "declare this access once" in str(refused.value)


@pytest.mark.parametrize(
    ("shared", "at", "nth"),
    [
        (False, "CreateTags", 1),  # before the first's revoking mark
        (False, "RevokeSecurityGroupIngress", 1),  # before its Revoke: the rule is gone by then
        (True, "DeleteTags", 1),  # before it takes its claim off
        (True, "DescribeSecurityGroupRules", 2),  # before it reads the rule again
    ],
    ids=["alone-mark", "alone-revoke", "shared-untag", "shared-reread"],
)
def test_one_delete_run_twice_at_once_on_a_cidr_rule_lets_go_once_and_keeps_what_another_holds(
    world: World, shared: bool, at: str, nth: int
) -> None:
    """The same Delete delivered twice, run by two sandboxes at once: the second runs whole just before one of
    the first's EC2 calls. Neither fails, the rule goes once nothing holds it, and another stack's claim on the
    office range (when it shares the rule) keeps it until that stack is deleted too."""
    office = {
        "ReplicationGroupId": "app-cache",
        "SourceCidrIp": "10.20.0.0/16",
        "TargetSecurityGroupIds": [world.cache],
    }
    first, again = Sandbox.of("x", office), Sandbox.of("x", office)
    first.create()
    again.granted = first.granted
    other = Sandbox.of("y", office)
    if shared:
        other.create()
    ran: list[bool] = []

    def delivered_again() -> None:
        ran.append(True)
        again.delete()

    first.before(at, delivered_again, nth=nth)
    first.delete()
    assert ran, f"the first Delete made no {at} call {nth}"
    assert {(s, p) for s, p, _ in world.rules()} == ({("10.20.0.0/16", 6379)} if shared else set())
    if shared:
        other.delete()
    assert world.rules() == set()
