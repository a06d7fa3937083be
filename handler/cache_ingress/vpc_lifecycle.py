"""What each request does in VPC mode: find the cache, then add or take back EC2 ingress rules.

EC2 rule changes take effect at once (unlike cache security groups), so there
is nothing to wait for but transient failures, which :mod:`cache_ingress.retry`
retries until the deadline; every EC2 change goes through :func:`cache_ingress.retry.change`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from . import retry
from . import vpc_rules as vpc
from .aws_api import ApiError, Ec2Api, ElastiCacheApi, StackRecords
from .errors import AccessRefused, CacheNotFound, CacheUnusable, ResourceError, ResourceFailure
from .outcomes import Outcome
from .protocol import Change, Result
from .timing import Deadline, Sleep
from .vpc_rules import CacheKind, CacheNetwork, RuleSet, VpcRequest


class VpcMode:
    """:class:`~cache_ingress.protocol.Mode` for caches in a VPC: the request resolves into EC2 ingress rules."""

    def __init__(
        self, elasticache: ElastiCacheApi, ec2: Ec2Api, stacks: StackRecords, sleep: Sleep = time.sleep
    ) -> None:
        self.elasticache = elasticache
        self.ec2 = ec2
        self.stacks = stacks
        self.sleep = sleep

    def parse_properties(self, properties: Mapping[str, Any], *, stack_id: str, logical_id: str) -> VpcRequest:
        return vpc.parse_properties(properties, stack_id, logical_id)

    def parse_physical_id(self, physical_id: str) -> RuleSet | None:
        return vpc.parse_physical_id(physical_id)

    def resolve(self, request: VpcRequest, *, deadline: Deadline) -> RuleSet:
        return discover(self.elasticache, request, deadline, self.sleep)

    def grant(self, granted: RuleSet, *, request: VpcRequest, deadline: Deadline, undo_on_failure: bool) -> Result:
        return ensure_rules(self.ec2, granted, request.description, deadline, undo_on_failure, self.sleep)

    def revoke(self, granted: RuleSet, *, deadline: Deadline, keep: RuleSet | None) -> Result:
        return ensure_revoked(self.ec2, granted, deadline, self.sleep, keep=granted.shared_with(keep))

    def left_by_failed_update(
        self, attempted: VpcRequest, *, request: VpcRequest | None, physical_id: str, deadline: Deadline
    ) -> RuleSet | None:
        return unrecorded_by_failed_update(self.elasticache, attempted, request, physical_id, deadline)

    def still_declared(self, granted: RuleSet, *, stack_id: str, logical_id: str, physical_id: str) -> RuleSet | None:
        return held_by_stack(self.stacks, stack_id, logical_id, physical_id)

    def could_name(self, request: VpcRequest, granted: RuleSet) -> bool:
        return vpc.could_resolve_to(request, granted)

    def same_asked(self, one: VpcRequest, other: VpcRequest) -> bool:
        return vpc.same_rules_asked(one, other)


def discover(api: ElastiCacheApi, request: VpcRequest, deadline: Deadline, sleep: Sleep = time.sleep) -> RuleSet:
    """The rules the request means, reading from ElastiCache what the properties leave out."""
    return vpc.resolve(request, _network(api, request, deadline, sleep))


def _network(api: ElastiCacheApi, request: VpcRequest, deadline: Deadline, sleep: Sleep) -> CacheNetwork:
    cache = request.cache

    def describe(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            found: dict[str, Any] = retry.read(call, deadline, sleep)
        except ApiError as err:
            if err.code in vpc.CACHE_NOT_FOUND_CODES:
                raise CacheNotFound(
                    f"{cache} not found: no such cache in this account and region ({err.message}). "
                    "Check the name, or that the cache is in the function's own account and region"
                ) from err
            if err.code in vpc.ACCESS_DENIED_CODES:
                raise AccessRefused(f"{err}: the function's role may not look up {cache}") from err
            raise ResourceFailure(str(err)) from err
        return found

    if cache.kind is CacheKind.SERVERLESS:
        return vpc.network_of_serverless_cache(describe(lambda: api.serverless_cache(cache.name)))
    if cache.kind is CacheKind.CACHE_CLUSTER:
        return vpc.network_of_cache_cluster(describe(lambda: api.cache_cluster(cache.name)))
    group = describe(lambda: api.replication_group(cache.name))
    member = None
    if request.targets is None:
        # Every member carries the group's security groups; the first one still there tells them.
        for cluster_id in group.get("MemberClusters") or []:
            try:
                member = retry.read(partial(api.cache_cluster, cluster_id), deadline, sleep)
                break
            except ApiError as err:
                if err.code in vpc.ACCESS_DENIED_CODES:
                    raise AccessRefused(f"{err}: the function's role may not look up {cache}") from err
                if err.code != "CacheClusterNotFound":
                    raise ResourceFailure(str(err)) from err
    return vpc.network_of_replication_group(group, member)


def ensure_rules(
    ec2: Ec2Api,
    rule_set: RuleSet,
    description: str,
    deadline: Deadline,
    undo_on_failure: bool = False,
    sleep: Sleep = time.sleep,
) -> Result:
    """Authorize every rule; rules that already exist count as done and get ``description``.

    One call per target group in the usual case. With ``undo_on_failure``,
    a failure takes back the rules this call added before it is reported:
    a failed Update keeps its old id, so nothing else would ever revoke them.
    """
    created: list[tuple[str, int]] = []
    try:
        for target in rule_set.targets:
            created += _authorize_group(ec2, rule_set, target, description, deadline, sleep)
    except ResourceError:
        if undo_on_failure and created:
            _undo(ec2, rule_set, created, deadline, sleep)
        raise
    data = {**rule_set.attributes(), "Description": description}
    return Result(Change.AUTHORIZED if created else Change.ALREADY_PRESENT, data)


def _authorize_group(
    ec2: Ec2Api, rule_set: RuleSet, target: str, description: str, deadline: Deadline, sleep: Sleep
) -> list[tuple[str, int]]:
    """The rules into ``target`` this call created."""

    def authorize(ports: list[int]) -> str | None:
        permissions = vpc.ip_permissions(rule_set, ports, description)
        return _attempt(lambda: ec2.authorize(target, permissions), vpc.authorize_outcome, target, deadline, sleep)

    ports = list(rule_set.ports)
    if authorize(ports) is None:
        return [(target, p) for p in ports]
    # EC2 refuses the whole call if one rule exists: take the ports one at a time.
    created = [] if len(ports) == 1 else [p for p in ports if authorize([p]) is None]
    existing = [p for p in ports if p not in created]
    if existing:  # none, if they were all revoked between the two tries
        # A rule made earlier (by hand, or with another description) is ours now: say so on it.
        permissions = vpc.ip_permissions(rule_set, existing, description)
        _attempt(lambda: ec2.describe_rules(target, permissions), vpc.authorize_outcome, target, deadline, sleep)
    return [(target, p) for p in created]


def ensure_revoked(
    ec2: Ec2Api,
    rule_set: RuleSet,
    deadline: Deadline,
    sleep: Sleep = time.sleep,
    keep: frozenset[tuple[str, int]] = frozenset(),
) -> Result:
    """Revoke every rule but those in ``keep``; a rule or target group already gone counts as revoked."""
    changed = False
    for target in rule_set.targets:
        ports = [p for p in rule_set.ports if (target, p) not in keep]
        if ports:
            changed |= _revoke_group(ec2, rule_set, target, ports, deadline, sleep)
    return Result(Change.REVOKED if changed else Change.ALREADY_ABSENT)


def _revoke_group(
    ec2: Ec2Api, rule_set: RuleSet, target: str, ports: list[int], deadline: Deadline, sleep: Sleep
) -> bool:
    """Whether anything was revoked from ``target``."""

    def revoke(ports: list[int]) -> str | None:
        permissions = vpc.ip_permissions(rule_set, ports)
        return _attempt(lambda: ec2.revoke(target, permissions), vpc.revoke_outcome, target, deadline, sleep)

    answer = revoke(ports)
    if answer is None:
        return True
    if answer != "InvalidPermission.NotFound" or len(ports) == 1:
        return False  # the group is gone, or the one rule is
    # In a non-default VPC one missing rule fails the whole call and revokes nothing.
    return any([revoke([p]) is None for p in ports])


def _undo(ec2: Ec2Api, rule_set: RuleSet, created: list[tuple[str, int]], deadline: Deadline, sleep: Sleep) -> None:
    """Best effort: the failure being reported matters more than one that happens while cleaning up."""
    for target in sorted({t for t, _ in created}):
        try:
            _revoke_group(ec2, rule_set, target, [p for t, p in created if t == target], deadline, sleep)
        except ResourceError:
            continue


def unrecorded_by_failed_update(
    api: ElastiCacheApi, attempted: VpcRequest, request: VpcRequest | None, physical_id: str, deadline: Deadline
) -> RuleSet | None:
    """The rules a failed Update may have added behind CloudFormation's back, if this Update is its rollback.

    As :func:`cache_ingress.classic_rules.unrecorded_by_failed_update`: a replacing
    Update whose answer was lost (or came too late) went through, but
    CloudFormation kept the old id and rolls back to it, with the failed
    properties as OldResourceProperties (``attempted``). In every other Update
    they resolve to the rules the id names, unless the cache's groups changed
    since; a request for the same rules as this one (``request``) is not even
    looked up, so most Updates pay nothing. The event does not say which kind
    of Update it is, so in that drift case (the cache gained a group, and the
    new properties pin the old groups) a rule into the new group is revoked
    too: README, Limits.
    """
    if request is not None and vpc.same_rules_asked(attempted, request):
        return None
    try:
        rule_set = discover(api, attempted, deadline)
    except (CacheNotFound, CacheUnusable):
        return None  # that attempt could not have authorized anything either
    return None if rule_set.physical_id == physical_id else rule_set


def held_by_stack(records: StackRecords, stack_id: str, logical_id: str, physical_id: str) -> RuleSet | None:
    """The rules the stack's current resource for this logical id names, when that is another id of this mode.

    After a replacement, CloudFormation deletes the old id while the new one,
    already recorded for the same logical id, may name some of the same rules
    (the cache kept a group, or only the port changed). Those stay. When the
    record cannot be read (a stack in another account, say), nothing is kept
    and everything is revoked: access left behind is the worse error.
    """
    try:
        current = records.physical_id(stack_id, logical_id)
    except ApiError:
        return None
    return None if current == physical_id else vpc.parse_physical_id(current)


def _attempt(
    call: Callable[[], bool | None],
    outcome_of: Callable[[str], Outcome],
    target: str,
    deadline: Deadline,
    sleep: Sleep,
) -> str | None:
    """Make the call: None if it changed something, else the code of the answer saying it was already so.

    Transient failures are retried by the one policy while the deadline allows.
    """
    try:
        changed = retry.change(call, deadline, sleep)
    except ApiError as err:
        if outcome_of(err.code) is Outcome.DONE:
            return err.code
        if err.code == "InvalidGroup.NotFound":
            raise ResourceFailure(
                f"{err.operation} failed: a security group does not exist ({err.message}). "
                "Check SourceSecurityGroupId, and TargetSecurityGroupIds or the cache's security groups"
            ) from err
        raise ResourceFailure(f"{err} (target security group {target})") from err
    return None if changed is not False else "UnknownIpPermissions"
