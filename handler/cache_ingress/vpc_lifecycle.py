"""What each request does in VPC mode: find the cache, then hold EC2 ingress rules, or let go of them.

Who holds a rule is recorded in the ownership ledger (:mod:`cache_ingress.ledger`);
EC2 only carries out its decisions (:mod:`cache_ingress.vpc_holds`). A Create or
Update holds each rule its id names, making those that are missing; a Delete,
a rollback or an undo lets go of them, and the last holder of a rule one of
them made revokes it. EC2 rule changes take effect at once (unlike cache
security groups), so there is nothing to wait for but transient failures,
which :mod:`cache_ingress.retry` retries until the deadline, EC2 showing what
was just made, and another resource's revoke of a shared rule in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import retry
from . import vpc_rules as vpc
from .aws_api import ApiError, Ec2Api, ElastiCacheApi, LedgerApi, MemoryDbApi
from .errors import AccessRefused, CacheNotFound, CacheUnusable, InvalidProperties, ResourceError, ResourceFailure
from .ledger import (
    TARGETS_DECLARED,
    TARGETS_OF_CACHE,
    Ensured,
    Holder,
    Ledger,
    grant_rule,
    reassert_rule,
    release_quietly,
    release_rule,
)
from .protocol import Change, Instance, Result
from .quota_check import RuleQuota, check_room
from .timing import Deadline, Sleep
from .vpc_holds import Ec2Side, Rule, rule_tags
from .vpc_rules import CacheKind, CacheNetwork, RuleSet, VpcRequest


class VpcMode:
    """:class:`~cache_ingress.protocol.Mode` for caches in a VPC: the request resolves into EC2 ingress rules."""

    def __init__(
        self,
        elasticache: ElastiCacheApi,
        ec2: Ec2Api,
        memorydb: MemoryDbApi,
        ledger: LedgerApi,
        sleep: Sleep = time.sleep,
        quota: RuleQuota | None = None,
    ) -> None:
        self.caches = CacheApis(elasticache, memorydb)
        self.ec2 = ec2
        self.ledger = ledger
        self.sleep = sleep
        self.quota = quota or RuleQuota(None)

    def parse_properties(self, properties: Mapping[str, Any], *, stack_id: str, logical_id: str) -> VpcRequest:
        return vpc.parse_properties(properties, stack_id, logical_id)

    def parse_physical_id(self, physical_id: str) -> RuleSet | None:
        return vpc.parse_physical_id(physical_id)

    def resolve(self, request: VpcRequest, *, deadline: Deadline) -> RuleSet:
        return resolve(self.caches, request, deadline, self.sleep)

    def grant(
        self,
        granted: RuleSet,
        *,
        request: VpcRequest,
        instance: Instance,
        deadline: Deadline,
        undo_on_failure: bool,
        on_held: Callable[[], None],
    ) -> Result:
        """Hold every rule, making those that are missing.

        First, each target group is counted against its rule quota
        (:mod:`cache_ingress.quota_check`): a grant that would not fit fails before any write.

        With ``undo_on_failure`` (a replacing Update), a failure first lets go
        of what this id holds: a failed Update keeps its old id, so no Delete
        would ever come for the new one.
        """
        check_room(self.ec2, self.quota, granted.source, granted.ports, granted.targets, deadline, self.sleep)
        ledger, holder, side = self._ledger_and_side(granted, instance, deadline)
        earlier = _earlier_release(instance, granted, request.description)
        ensured: list[Ensured] = []
        try:
            for rule in _rules(granted):
                ensured.append(
                    grant_rule(
                        ledger,
                        side,
                        rule,
                        holder,
                        description=request.description,
                        cache=str(request.cache),
                        targets=TARGETS_OF_CACHE if request.targets is None else TARGETS_DECLARED,
                        earlier=earlier.get(rule, ()),
                        on_held=on_held,
                    )
                )
        except ResourceError:
            if undo_on_failure:
                release_quietly(ledger, side, _rules(granted), holder)
            raise
        return _granted(granted, request, ensured)

    def reassert(self, granted: RuleSet, *, request: VpcRequest, instance: Instance, deadline: Deadline) -> Result:
        """Make sure EC2 has the rules this id already holds; hold nothing new."""
        ledger, holder, side = self._ledger_and_side(granted, instance, deadline)
        ensured = [
            found
            for rule in _rules(granted)
            if (found := reassert_rule(ledger, side, rule, holder, description=request.description)) is not None
        ]
        return _granted(granted, request, ensured)

    def release(self, granted: RuleSet, *, instance: Instance, deadline: Deadline) -> Result:
        """Let go of this id's holds; rules the release before the ledger made count as held, for its own id."""
        ledger, holder, side = self._ledger_and_side(granted, instance, deadline)
        own_id = granted.physical_id == instance.physical_id and granted.source.predates_ledger
        earlier = (vpc.default_description(instance.stack_id, instance.logical_id),) if own_id else ()
        revoked = False
        for rule in _rules(granted):
            revoked |= release_rule(ledger, side, rule, holder, earlier=earlier)
        return Result(Change.REVOKED if revoked else Change.ALREADY_ABSENT)

    def left_by_failed_update(
        self, attempted: VpcRequest, *, request: VpcRequest | None, physical_id: str, deadline: Deadline
    ) -> RuleSet | None:
        return left_by_failed_update(self.caches, attempted, request, physical_id, deadline, self.sleep)

    def could_name(self, request: VpcRequest, granted: RuleSet) -> bool:
        return vpc.could_name(request, granted)

    def same_asked(self, one: VpcRequest, other: VpcRequest) -> bool:
        return vpc.same_asked(one, other)

    def _ledger_and_side(
        self, granted: RuleSet, instance: Instance, deadline: Deadline
    ) -> tuple[Ledger, Holder, Ec2Side]:
        """The ledger, the holder (this instance, for the rules ``granted`` names) and EC2's side, for one request."""
        ledger = Ledger(self.ledger, deadline, self.sleep)
        holder = Holder(instance.stack_id, instance.logical_id, granted.physical_id)
        side = Ec2Side(self.ec2, granted, rule_tags(self.ledger.table, holder), deadline, self.sleep)
        return ledger, holder, side


def _rules(granted: RuleSet) -> list[Rule]:
    """One EC2 rule per target group and port, in the order the id names them."""
    return [(target, port) for target in granted.targets for port in granted.ports]


def _granted(granted: RuleSet, request: VpcRequest, ensured: list[Ensured]) -> Result:
    data = {
        **granted.attributes(),
        "Description": request.description,
        "SecurityGroupRuleIds": ",".join(e.rule_id for e in ensured),
    }
    return Result(Change.AUTHORIZED if any(e.made for e in ensured) else Change.ALREADY_PRESENT, data)


def _earlier_release(instance: Instance, granted: RuleSet, description: str) -> dict[Rule, tuple[str, ...]]:
    """The descriptions the release before the ledger (0.1.0) may have given each rule, had it made it for this
    resource: its default one, and for the rules the id CloudFormation holds now names, the Description asked
    for. That release knew only security group sources."""
    if not granted.source.predates_ledger:
        return {}
    default = vpc.default_description(instance.stack_id, instance.logical_id)
    earlier: dict[Rule, tuple[str, ...]] = {rule: (default,) for rule in _rules(granted)}
    held = vpc.parse_physical_id(instance.physical_id)
    if held is not None and held.source == granted.source:
        for rule in held.rules() & set(earlier):
            earlier[rule] = tuple(dict.fromkeys((description, default)))
    return earlier


@dataclass(frozen=True)
class CacheApis:
    """Where a cache named by the properties is looked up: ElastiCache, or MemoryDB for a MemoryDB cluster."""

    elasticache: ElastiCacheApi
    memorydb: MemoryDbApi


def resolve(caches: CacheApis, request: VpcRequest, deadline: Deadline, sleep: Sleep = time.sleep) -> RuleSet:
    """The rules the request means, reading from ElastiCache or MemoryDB what the properties leave out."""
    return vpc.resolve(request, network(caches, request.cache, deadline, sleep))


def network(caches: CacheApis, cache: vpc.CacheRef, deadline: Deadline, sleep: Sleep = time.sleep) -> CacheNetwork:
    """The cache's ports and security groups as ElastiCache or MemoryDB show them now."""
    api = caches.elasticache

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


def left_by_failed_update(
    caches: CacheApis,
    attempted: VpcRequest,
    request: VpcRequest | None,
    physical_id: str,
    deadline: Deadline,
    sleep: Sleep = time.sleep,
) -> RuleSet | None:
    """The rules a failed Update may have added behind CloudFormation's back, if this Update is its rollback.

    As :func:`cache_ingress.classic_rules.left_by_failed_update`: a replacing
    Update whose answer was lost (or came too late) went through, but
    CloudFormation kept the old id and rolls back to it, with the failed
    properties as OldResourceProperties (``attempted``). In every other Update
    they resolve to the rules the id names, unless the cache's groups changed
    since; a request for the same rules as this one (``request``) is not even
    looked up, so most Updates pay nothing. What is taken back is only what
    that attempt's id holds: rules the id CloudFormation kept also names are
    held by that id too, and stay.
    """
    if request is not None and vpc.same_asked(attempted, request):
        return None
    try:
        rule_set = resolve(caches, attempted, deadline, sleep)
    except (CacheNotFound, CacheUnusable, InvalidProperties):
        return None  # that attempt could not have authorized anything either
    return None if rule_set.physical_id == physical_id else rule_set
