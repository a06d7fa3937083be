"""Adversarial interleavings of VPC-mode operations of several stacks on one rule, against moto's EC2 and ledger.

Each stack's operation runs in its own "sandbox": a :class:`VpcMode` with
clients of its own, so a ``before-call`` hook on one sandbox's EC2 or DynamoDB
client can run another stack's whole operation at a precise point between two
of its calls, as a second Lambda sandbox would (in a thread of its own where
it must wait for the first). The check is the principle of the ledger:
afterwards EC2 holds exactly what live resources declare plus what people
made by hand.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from cache_ingress import ledger
from cache_ingress.timing import MAX_ANSWER_RESERVE_S
from cache_ingress.vpc_rules import default_description
from tests.vpc_world import ACCOUNT, Sandbox, World, meanwhile, stack_id


def test_two_last_holders_letting_go_at_once_one_of_them_revokes(world: World) -> None:
    """X and Y share the rule and are deleted at once: Y read two holders, then X let go before Y's write.

    Y's write is refused (the entry's version moved on), Y reads again, finds itself the last holder, and
    revokes: the rule does not outlive both.
    """
    x, y = (Sandbox.of(name, world.access()) for name in ("x", "y"))
    x.create()
    y.create()
    y.before("TransactWriteItems", x.delete)
    y.delete()
    assert world.rules() == set(), "the rule outlived both resources that declared it"


def test_a_create_landing_while_the_last_holder_revokes_waits_and_makes_the_rule_afresh(world: World) -> None:
    """Z's Create lands just before X's Revoke: it finds X's lease and waits for it, then makes the rule again."""
    x, z = Sandbox.of("x", world.access()), Sandbox.of("z", world.access())
    x.create()
    threads: list[threading.Thread] = []
    x.before("RevokeSecurityGroupIngress", meanwhile(z.create, threads))
    x.delete()
    for thread in threads:
        thread.join()
    assert z.granted is not None, "Z's Create failed"
    assert {(s, p) for s, p, _ in world.rules()} == {(world.app, 6379)}, "Z's stack answered SUCCESS, has no rule"
    z.delete()
    assert world.rules() == set()


def test_a_create_landing_while_a_delete_takes_back_an_earlier_release_rule_waits_for_it(world: World) -> None:
    """Upgrade: X's rule was made by the release before the ledger (X's default description, no entry).

    X's Delete counts it as its own and leases it like any other before revoking it; Z's Create, landing just
    before X's Revoke, finds that lease and waits, then makes the rule again: Z keeps its access, and once Z
    is deleted the rule goes.
    """
    world.by_hand(default_description(stack_id("x"), "Access"))  # what the release before the ledger left
    x, z = Sandbox.of("x", world.access()), Sandbox.of("z", world.access())
    held_id = f"cache-vpc-ingress:{world.app}@{ACCOUNT}:6379:{world.cache}"
    threads: list[threading.Thread] = []
    x.before("RevokeSecurityGroupIngress", meanwhile(z.create, threads))
    x.delete(held_id)
    for thread in threads:
        thread.join()
    assert z.granted is not None, "Z's Create failed"
    assert {(s, p) for s, p, _ in world.rules()} == {(world.app, 6379)}  # Z still declares it
    z.delete()
    assert world.rules() == set(), "the rule outlived every resource that declared it"


def test_a_lease_outlives_a_revoke_that_lands_before_the_lambda_is_killed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease lasts until the Delete's last change may land (its deadline plus half the answer's reserve)
    plus LEASE_GRACE_S. A Create whose clock reads a moment before the Lambda ends still finds it, and waits:
    it never answers SUCCESS for a rule the Delete's Revoke then takes away.
    """
    x, z = Sandbox.of("x", world.access()), Sandbox.of("z", world.access())
    x.create()
    deadline_s = 50.0  # a 60 s Lambda: custom_resource keeps min(10, 25 %) of it for the answer
    offset = [0.0]
    real_time = time.time
    monkeypatch.setattr(ledger, "time", SimpleNamespace(time=lambda: real_time() + offset[0], sleep=time.sleep))
    threads: list[threading.Thread] = []

    def revoke_lands_just_before_the_lambda_ends() -> None:
        offset[0] = deadline_s + MAX_ANSWER_RESERVE_S - 1.0  # the Revoke is still in flight
        meanwhile(z.create, threads)()

    x.before("RevokeSecurityGroupIngress", revoke_lands_just_before_the_lambda_ends)
    x.delete(seconds=deadline_s)
    for thread in threads:
        thread.join()
    assert z.granted is not None, "Z's Create failed"
    assert {(s, p) for s, p, _ in world.rules()} == {(world.app, 6379)}, "Z's stack answered SUCCESS, has no rule"


def test_upgrade_a_rule_the_earlier_release_made_for_one_stack_is_not_kept_for_ever_by_another_stacks_hold(
    world: World,
) -> None:
    """Stack X's rule was made by the release before the ledger (no entry, "cache-sg-ingress: stack x, resource
    Access"). Stack Y, on the new release, declares the same rule: its Create finds a rule no holder made and
    records it pre-existing. X's Delete finds it carries X's own description: X made it, so it is recorded made
    (and left to Y, who holds it), and Y's Delete, its last holder, revokes it.
    """
    world.by_hand(default_description(stack_id("x"), "Access"))  # what the release before the ledger left
    x, y = Sandbox.of("x", world.access()), Sandbox.of("y", world.access())
    y.create()
    x.delete(f"cache-vpc-ingress:{world.app}@{ACCOUNT}:6379:{world.cache}")
    assert {(s, p) for s, p, _ in world.rules()} == {(world.app, 6379)}  # Y still declares it
    y.delete()
    assert world.rules() == set(), "the earlier release's rule outlived both stacks that declared it"


OFFICE = {"ReplicationGroupId": "app-cache", "SourceCidrIp": "10.20.0.0/16"}


def test_sixty_stacks_share_the_office_range_and_it_goes_only_with_the_last(world: World) -> None:
    """A CIDR or prefix list (the office VPN, the build agents) is what many stacks name alike, so one rule
    has many holders: more than EC2's 50 tags on a rule, which the claims before the ledger were limited to."""
    office = {**OFFICE, "TargetSecurityGroupIds": [world.cache]}
    first = Sandbox.of("team0", office)
    stacks = [Sandbox(f"team{n}", first.mode, office) for n in range(60)]  # one sandbox's clients, in turn
    for stack in stacks:
        stack.create()
    assert {(s, p) for s, p, _ in world.rules()} == {("10.20.0.0/16", 6379)}
    for stack in stacks[:-1]:
        stack.delete()
    assert {(s, p) for s, p, _ in world.rules()} == {("10.20.0.0/16", 6379)}, "a holder is still live"
    stacks[-1].delete()
    assert world.rules() == set()


@pytest.mark.parametrize(
    ("shared", "at", "nth"),
    [
        (False, "TransactWriteItems", 1),  # before the first takes its lease
        (False, "RevokeSecurityGroupIngress", 1),  # before its Revoke
        (False, "DeleteItem", 1),  # before it deletes the entry
        (True, "TransactWriteItems", 1),  # before it lets go of a rule another holds
    ],
    ids=["alone-lease", "alone-revoke", "alone-forget", "shared-let-go"],
)
def test_one_delete_run_twice_at_once_on_a_cidr_rule_lets_go_once_and_keeps_what_another_holds(
    world: World, shared: bool, at: str, nth: int
) -> None:
    """The same Delete delivered twice, run by two sandboxes at once: the second runs whole just before one of
    the first's calls. Neither fails, the rule goes once nothing holds it, and another stack's hold on the
    office range (when it shares the rule) keeps it until that stack is deleted too."""
    office = {**OFFICE, "TargetSecurityGroupIds": [world.cache]}
    first, again = Sandbox.of("x", office), Sandbox.of("x", office)
    first.create()
    again.granted = first.granted
    other = Sandbox.of("y", office)
    if shared:
        other.create()
    ran: list[bool] = []
    threads: list[threading.Thread] = []

    def delivered_again() -> None:
        ran.append(True)
        meanwhile(again.delete, threads)()

    first.before(at, delivered_again, nth=nth)
    first.delete()
    for thread in threads:
        thread.join()
    assert ran, f"the first Delete made no {at} call {nth}"
    assert {(s, p) for s, p, _ in world.rules()} == ({("10.20.0.0/16", 6379)} if shared else set())
    if shared:
        other.delete()
    assert world.rules() == set()
