"""What each request does in VPC mode: find the cache, then claim EC2 ingress rules, or let go of them.

EC2 rule changes take effect at once (unlike cache security groups), so there
is nothing to wait for but transient failures, which :mod:`cache_ingress.retry`
retries until the deadline (every EC2 change goes through
:func:`cache_ingress.retry.change`), and another resource's Delete in flight
on a shared rule. Who holds a rule is written on the rule itself
(:mod:`cache_ingress.claims`): a Create or Update puts this instance's claim
on each rule, making the rules that are missing; a Delete, a rollback or an
undo takes this instance's claim off and revokes only the rules left with no
claim and no pre-existing mark.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import retry, rule_quota
from . import vpc_rules as vpc
from .aws_api import ApiError, Ec2Api, ElastiCacheApi, MemoryDbApi
from .claims import (
    PRE_EXISTING_KEY,
    REVOKING_KEY,
    Claim,
    HeldRule,
    claim_tags,
    held_rule,
    held_rules,
    revoking_tags,
)
from .errors import (
    AccessRefused,
    CacheNotFound,
    CacheUnusable,
    InvalidProperties,
    ResourceError,
    ResourceFailure,
    RuleQuotaExceeded,
)
from .protocol import Change, Instance, Result
from .quota_check import RuleQuota, check_room
from .timing import Deadline, Sleep, pause, polls
from .vpc_rules import CacheKind, CacheNetwork, RuleSet, VpcRequest

#: How long a revoking mark outlives the Delete that wrote it, past that Delete's own deadline. The
#: deadline stops new calls, not one already sent: a Revoke in flight may land until the Lambda
#: ends, up to the answer reserve (timing.MAX_ANSWER_RESERVE_S, 10 s) later. So the mark lasts
#: past that, with room for the clocks of two sandboxes to differ.
REVOKING_MARK_GRACE_S = 20.0


class VpcMode:
    """:class:`~cache_ingress.protocol.Mode` for caches in a VPC: the request resolves into EC2 ingress rules."""

    def __init__(
        self,
        elasticache: ElastiCacheApi,
        ec2: Ec2Api,
        memorydb: MemoryDbApi,
        sleep: Sleep = time.sleep,
        quota: RuleQuota | None = None,
    ) -> None:
        self.caches = CacheApis(elasticache, memorydb)
        self.ec2 = ec2
        self.sleep = sleep
        self.quota = quota or RuleQuota(None)

    def parse_properties(self, properties: Mapping[str, Any], *, stack_id: str, logical_id: str) -> VpcRequest:
        return vpc.parse_properties(properties, stack_id, logical_id)

    def parse_physical_id(self, physical_id: str) -> RuleSet | None:
        return vpc.parse_physical_id(physical_id)

    def resolve(self, request: VpcRequest, *, deadline: Deadline) -> RuleSet:
        return discover(self.caches, request, deadline, self.sleep)

    def grant(
        self, granted: RuleSet, *, request: VpcRequest, instance: Instance, deadline: Deadline, undo_on_failure: bool
    ) -> Result:
        """Claim every rule, making those that are missing.

        First, each target group is counted against its rule quota
        (:mod:`cache_ingress.quota_check`): a grant that would not fit fails before any write.

        With ``undo_on_failure`` (a replacing Update), a failure first lets go
        of this claim: a failed Update keeps its old id, so no Delete would
        ever come for the new one.
        """
        check_room(self.ec2, self.quota, granted.source, granted.ports, granted.targets, deadline, self.sleep)
        work = _Ec2Work(self.ec2, deadline, self.sleep)
        claim = Claim(instance.stack_id, instance.logical_id, granted.physical_id)
        earlier = _EarlierRelease.of(instance, granted, request.description)
        try:
            rule_ids, created = claim_rules(work, granted, claim, request.description, earlier)
        except ResourceError:
            if undo_on_failure:
                _let_go_quietly(work, granted, claim)
            raise
        data = {
            **granted.attributes(),
            "Description": request.description,
            "SecurityGroupRuleIds": ",".join(rule_ids),
        }
        return Result(Change.AUTHORIZED if created else Change.ALREADY_PRESENT, data)

    def revoke(self, granted: RuleSet, *, instance: Instance, deadline: Deadline) -> Result:
        """Let go of this instance's claim; rules made by the release before claims count as it, for its own id."""
        work = _Ec2Work(self.ec2, deadline, self.sleep)
        claim = Claim(instance.stack_id, instance.logical_id, granted.physical_id)
        own_id = granted.physical_id == instance.physical_id and granted.source.predates_claims
        earlier = vpc.default_description(instance.stack_id, instance.logical_id) if own_id else None
        revoked = release_rules(work, granted, claim, earlier)
        return Result(Change.REVOKED if revoked else Change.ALREADY_ABSENT)

    def left_by_failed_update(
        self, attempted: VpcRequest, *, request: VpcRequest | None, physical_id: str, deadline: Deadline
    ) -> RuleSet | None:
        return unrecorded_by_failed_update(self.caches, attempted, request, physical_id, deadline, self.sleep)

    def could_name(self, request: VpcRequest, granted: RuleSet) -> bool:
        return vpc.could_resolve_to(request, granted)

    def same_asked(self, one: VpcRequest, other: VpcRequest) -> bool:
        return vpc.same_rules_asked(one, other)


@dataclass(frozen=True)
class CacheApis:
    """Where a cache named by the properties is looked up: ElastiCache, or MemoryDB for a MemoryDB cluster."""

    elasticache: ElastiCacheApi
    memorydb: MemoryDbApi


def discover(caches: CacheApis, request: VpcRequest, deadline: Deadline, sleep: Sleep = time.sleep) -> RuleSet:
    """The rules the request means, reading from ElastiCache or MemoryDB what the properties leave out."""
    return vpc.resolve(request, _network(caches, request, deadline, sleep))


def _network(caches: CacheApis, request: VpcRequest, deadline: Deadline, sleep: Sleep) -> CacheNetwork:
    api = caches.elasticache
    cache = request.cache

    def refusal(err: ApiError) -> ResourceError:
        """What a lookup's error answer means for the request."""
        if err.code in vpc.CACHE_NOT_FOUND_CODES:
            return CacheNotFound(
                f"{cache} not found: no such cache in this account and region ({err.message}). "
                "Check the name, or that the cache is in the function's own account and region"
            )
        if err.code in vpc.ACCESS_DENIED_CODES:
            return AccessRefused(f"{err}: the function's role may not look up {cache}")
        return ResourceFailure(str(err))

    def describe(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            found: dict[str, Any] = retry.read(call, deadline, sleep)
        except ApiError as err:
            raise refusal(err) from err
        return found

    if cache.kind is CacheKind.MEMORYDB:
        return vpc.network_of_memorydb_cluster(describe(lambda: caches.memorydb.cluster(cache.lookup_name)))
    if cache.kind is CacheKind.SERVERLESS:
        return vpc.network_of_serverless_cache(describe(lambda: api.serverless_cache(cache.name)))
    if cache.kind is CacheKind.CACHE_CLUSTER:
        return vpc.network_of_cache_cluster(describe(lambda: api.cache_cluster(cache.name)))
    group = describe(lambda: api.replication_group(cache.name))
    member = None
    # Every member carries the group's security groups; the first one still there tells them.
    for cluster_id in group.get("MemberClusters") or []:
        try:
            member = retry.read(partial(api.cache_cluster, cluster_id), deadline, sleep)
            break
        except ApiError as err:
            if err.code != "CacheClusterNotFound":  # that member is gone: the next one tells
                raise refusal(err) from err
    return vpc.network_of_replication_group(group, member)


@dataclass(frozen=True)
class _Ec2Work:
    """The EC2 side of one request: the client, the deadline every wait respects, and how to wait."""

    ec2: Ec2Api
    deadline: Deadline
    sleep: Sleep

    def look(self, call: Callable[[], Any]) -> Any:
        """A read, under the one retry policy."""
        return retry.read(call, self.deadline, self.sleep)

    def change(self, call: Callable[[], Any]) -> Any:
        """A write, under the one retry policy and the guard: none starts once the invocation has answered."""
        return retry.change(call, self.deadline, self.sleep)

    def done_unless_gone(self, call: Callable[[], Any]) -> bool:
        """Make a change to one rule: True once made, False if the rule (or its group) is gone."""
        try:
            self.change(call)
        except ApiError as err:
            if err.code in vpc.RULE_GONE_CODES:
                return False
            if err.code in vpc.TAG_LIMIT_CODES:
                raise ResourceFailure(
                    f"{err.operation} failed: a rule already carries EC2's limit of 50 tags, one claim per "
                    "resource that shares it (and any tags of your own), so no further resource can hold it. "
                    "Let these stacks reach the cache through fewer resources: declare this access once, in a "
                    "shared stack, or let a shared security group in instead"
                ) from err
            raise ResourceFailure(str(err)) from err
        return True

    def held(self, rule_set: RuleSet, target: str) -> dict[int, HeldRule]:
        """The rule set's rules into ``target`` as EC2 holds them now; none if the group is gone."""
        try:
            answer = self.look(partial(self.ec2.rules, target))
        except ApiError as err:
            if err.code in vpc.RULE_GONE_CODES:
                return {}
            raise ResourceFailure(f"{err} (target security group {target})") from err
        return held_rules(answer, rule_set.source, rule_set.ports)

    def read(self, rule_set: RuleSet, rule_id: str) -> HeldRule | None:
        """One rule as EC2 holds it now, None once it is gone."""
        try:
            item = self.look(partial(self.ec2.rule, rule_id))
        except ApiError as err:
            raise ResourceFailure(str(err)) from err
        return None if item is None else held_rule(item, rule_set.source)


@dataclass(frozen=True)
class _EarlierRelease:
    """Rules the release before claims made for the id CloudFormation holds now: untagged, with our description."""

    claim: Claim
    rules: frozenset[tuple[str, int]]
    descriptions: frozenset[str]

    @classmethod
    def of(cls, instance: Instance, granted: RuleSet, description: str) -> _EarlierRelease | None:
        held = vpc.parse_physical_id(instance.physical_id)
        if held is None or held.source != granted.source or not held.source.predates_claims:
            return None
        default = vpc.default_description(instance.stack_id, instance.logical_id)
        claim = Claim(instance.stack_id, instance.logical_id, instance.physical_id)
        return cls(claim, held.rules(), frozenset({description, default}))

    def made(self, found: HeldRule) -> Claim | None:
        """The claim that stands for the earlier release, if it made ``found``."""
        made_here = (found.group_id, found.port) in self.rules
        by_us = any(found.made_by_earlier_release(d) for d in self.descriptions)
        return self.claim if made_here and by_us else None


def claim_rules(
    work: _Ec2Work, rule_set: RuleSet, claim: Claim, description: str, earlier: _EarlierRelease | None
) -> tuple[list[str], bool]:
    """The ids of the rules, now claimed, and whether any had to be made.

    One call per target group in the usual case: the rules are made with the
    claim on them. EC2 refuses the whole call if one rule exists, and then
    each port is claimed on its own.
    """
    rule_ids: list[str] = []
    created = False
    for target in rule_set.targets:
        made = _authorize(work, rule_set, target, rule_set.ports, description, claim)
        if made is not None:
            rule_ids += made
            created = True
            continue
        held = work.held(rule_set, target)
        for port in rule_set.ports:
            rule_id, made_now = _claim_rule(work, rule_set, target, port, held.get(port), claim, description, earlier)
            rule_ids.append(rule_id)
            created |= made_now
    return rule_ids, created


def _claim_rule(
    work: _Ec2Work,
    rule_set: RuleSet,
    target: str,
    port: int,
    found: HeldRule | None,
    claim: Claim,
    description: str,
    earlier: _EarlierRelease | None,
) -> tuple[str, bool]:
    """Claim the one rule into ``target`` on ``port``, making it if it is missing: its id, and whether it was made.

    ``found`` is the rule as the group's rules were last read.
    """
    waits = polls()
    while True:
        if found is None:
            made = _authorize(work, rule_set, target, (port,), description, claim)
            if made:
                return made[0], True
        elif _claimed(work, rule_set, found, claim, description, earlier):
            return found.rule_id, False
        # Made or revoked by someone else meanwhile, or a Delete is revoking it: look again.
        pause(
            waits,
            work.deadline,
            work.sleep,
            f"the rule into {target} on port {port} kept changing under another resource's operation "
            "until the function's deadline. Retry the stack operation",
        )
        found = work.held(rule_set, target).get(port)


def _claimed(
    work: _Ec2Work,
    rule_set: RuleSet,
    found: HeldRule,
    claim: Claim,
    description: str,
    earlier: _EarlierRelease | None,
) -> bool:
    """Put the claim on a rule that exists; False when it went or is being revoked, to be looked at again.

    The claim is written before the rule is read again; a Delete writes its
    revoking mark before it reads the claims. So either that Delete sees
    this claim and leaves the rule, or this reading sees its mark.
    """
    if found.revoking(time.time()):
        return False
    own = rule_set.source.predates_claims and found.made_by_earlier_release(
        vpc.default_description(claim.stack_id, claim.logical_id)
    )
    made_earlier = earlier.made(found) if earlier else None
    added = {} if found.claimed_by(claim) else claim_tags(claim, found, made_earlier, own)
    if added and not work.done_unless_gone(partial(work.ec2.tag, found.rule_id, added)):
        return False
    now = work.read(rule_set, found.rule_id)
    if now is None:
        return False
    if now.revoking(time.time()):
        # It was being revoked, not made by hand: the pre-existing mark we just put on it would be wrong.
        if PRE_EXISTING_KEY in added:
            work.done_unless_gone(partial(work.ec2.untag, found.rule_id, [PRE_EXISTING_KEY]))
        return False
    others = now.claims - {claim.key} - ({earlier.claim.key} if earlier else set())
    if now.description != description and not now.pre_existing and not others:
        # Ours alone: the Description property is ours to set. A shared or pre-existing rule keeps its own.
        return work.done_unless_gone(partial(work.ec2.describe, now.group_id, now.rule_id, description))
    return True


def _authorize(
    work: _Ec2Work, rule_set: RuleSet, target: str, ports: tuple[int, ...], description: str, claim: Claim
) -> list[str] | None:
    """Make the rules, claimed: their ids, or None if one of them exists already (EC2 then makes none)."""
    permissions = vpc.ip_permissions(rule_set, ports, description)
    try:
        made = work.change(partial(work.ec2.authorize, target, permissions, claim.tags()))
    except ApiError as err:
        if err.code == "InvalidPermission.Duplicate":
            return None
        if err.code == "InvalidGroup.NotFound":
            raise ResourceFailure(
                f"{err.operation} failed: a security group does not exist ({err.message}). "
                "Check SourceSecurityGroupId, and TargetSecurityGroupIds or the cache's security groups"
            ) from err
        if err.code in rule_quota.LIMIT_CODES:
            raise RuleQuotaExceeded(rule_quota.limit_reason(target, err.message)) from err
        if err.code in vpc.PREFIX_LIST_NOT_FOUND_CODES:
            raise ResourceFailure(
                f"{err.operation} failed: {rule_set.source} does not exist in this account and region "
                f"({err.message}). Check SourcePrefixListId, and that a shared list is shared with this account"
            ) from err
        raise ResourceFailure(f"{err} (target security group {target})") from err
    return [str(rule.get("SecurityGroupRuleId", "")) for rule in made]


def release_rules(work: _Ec2Work, rule_set: RuleSet, claim: Claim, earlier_description: str | None) -> bool:
    """Take the claim off each rule; revoke those it was the last to hold. Whether anything was revoked.

    A rule without this claim is left alone (another resource's, made by hand,
    or never made), unless ``earlier_description`` says the release before
    claims made it for this very id. A rule or group already gone counts as
    let go, so a repeated Delete is harmless.
    """
    revoked = False
    for target in rule_set.targets:
        for found in work.held(rule_set, target).values():
            made_earlier = earlier_description is not None and found.made_by_earlier_release(earlier_description)
            if not (found.claimed_by(claim) or made_earlier):
                continue
            if not found.unclaimed_once(claim):
                # Others hold it too: take this claim off, then look again, since they may be letting go
                # at the same moment, each seeing the other's claim; whoever looks last finds none left.
                if not work.done_unless_gone(partial(work.ec2.untag, found.rule_id, [claim.key])):
                    continue
                now = work.read(rule_set, found.rule_id)
                if now is None:
                    continue
                if not now.unclaimed_once(claim):
                    _unmark_mistaken_pre_existing(work, found, now)
                    continue
                found = now
            revoked |= _revoke_unclaimed(work, rule_set, found, claim)
    return revoked


def _revoke_unclaimed(work: _Ec2Work, rule_set: RuleSet, found: HeldRule, claim: Claim) -> bool:
    """Mark the rule revoking, read it again, and revoke it if still nothing else holds it: whether it was revoked.

    The claim being let go stays on until the rule goes with it, so a
    Create that reads the rule meanwhile sees both it and the mark.
    """
    until = time.time() + max(work.deadline.remaining(), 0.0) + REVOKING_MARK_GRACE_S
    if not work.done_unless_gone(partial(work.ec2.tag, found.rule_id, revoking_tags(until))):
        return False
    now = work.read(rule_set, found.rule_id)
    if now is None:
        return False
    if not now.unclaimed_once(claim):
        # A Create claimed it meanwhile: it stays, without our mark or our claim.
        work.done_unless_gone(partial(work.ec2.untag, found.rule_id, [REVOKING_KEY, claim.key]))
        _unmark_mistaken_pre_existing(work, found, now)
        return False
    try:
        work.change(partial(work.ec2.revoke, now.group_id, [now.rule_id]))
    except ApiError as err:
        if err.code in vpc.RULE_GONE_CODES:
            return False
        # Refused outright (transient failures are retried, and end in OutOfTime instead): nothing was
        # revoked and nothing is in flight, so the mark stands for no Revoke. Left on, it would make every
        # Create of this rule wait out this Delete's whole deadline. The claim stays for the retried Delete.
        with contextlib.suppress(ApiError, ResourceError):
            work.change(partial(work.ec2.untag, now.rule_id, [REVOKING_KEY]))
        raise ResourceFailure(str(err)) from err
    return True


def _unmark_mistaken_pre_existing(work: _Ec2Work, before: HeldRule, now: HeldRule) -> None:
    """Take off a pre-existing mark a Create put on the rule while this Delete let go of it.

    ``before`` is the rule as this Delete first read it: claimed (or made by
    the release before claims), so not made by hand. A mark that appeared
    since on the same rule id can only come from a Create that read the rule
    in the moment it carried no claim (this Delete's own was already off, or
    never written down): left on, it would keep the rule for ever once that
    Create's resource is deleted too.
    """
    if now.pre_existing and not before.pre_existing:
        work.done_unless_gone(partial(work.ec2.untag, now.rule_id, [PRE_EXISTING_KEY]))


def _let_go_quietly(work: _Ec2Work, rule_set: RuleSet, claim: Claim) -> None:
    """Best effort: the failure being reported matters more than one that happens while cleaning up."""
    try:
        release_rules(work, rule_set, claim, None)
    except ResourceError:
        return


def unrecorded_by_failed_update(
    caches: CacheApis,
    attempted: VpcRequest,
    request: VpcRequest | None,
    physical_id: str,
    deadline: Deadline,
    sleep: Sleep = time.sleep,
) -> RuleSet | None:
    """The rules a failed Update may have added behind CloudFormation's back, if this Update is its rollback.

    As :func:`cache_ingress.classic_rules.unrecorded_by_failed_update`: a replacing
    Update whose answer was lost (or came too late) went through, but
    CloudFormation kept the old id and rolls back to it, with the failed
    properties as OldResourceProperties (``attempted``). In every other Update
    they resolve to the rules the id names, unless the cache's groups changed
    since; a request for the same rules as this one (``request``) is not even
    looked up, so most Updates pay nothing. What is taken back is only what
    that attempt's claim holds: rules the id CloudFormation kept also names
    carry that id's claim too, and stay.
    """
    if request is not None and vpc.same_rules_asked(attempted, request):
        return None
    try:
        rule_set = discover(caches, attempted, deadline, sleep)
    except (CacheNotFound, CacheUnusable, InvalidProperties):
        return None  # that attempt could not have authorized anything either
    return None if rule_set.physical_id == physical_id else rule_set
