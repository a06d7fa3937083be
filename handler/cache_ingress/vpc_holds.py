"""The EC2 side of the ledger in VPC mode: what an ingress rule is called, and how it is made, found and revoked.

One rule is TCP on one port from the resource's source into one target
group. EC2 is eventually consistent: a group made a moment ago may answer
NotFound, and a rule made a moment ago may not show in a read yet. So a
NotFound about a source group on Authorize, or about a rule the ledger says
exists on Revoke, is retried for :data:`SETTLE_S` (within the deadline)
before it counts; and a rule looked for by what was asked, when its id was
never recorded, is looked for again for as long. A window the deadline cuts
short ends with what EC2 showed last: a rollback is not failed for EC2's lag.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import retry, rule_quota
from .aws_api import ApiError, Ec2Api
from .errors import Refused, ResourceFailure, RuleQuotaExceeded
from .ledger import Holder
from .sources import Source
from .timing import MIN_ATTEMPT_S, Deadline, Sleep, polls
from .vpc_rules import RuleSet, ip_permissions

#: How long EC2 is given to show a group or rule that exists (a NotFound is retried until then).
SETTLE_S = 8.0
#: Tags on the rules this resource makes, for a person reading them: nothing reads them to decide.
TAG_PREFIX = "cache-ingress:"
MANAGED_BY_KEY = f"{TAG_PREFIX}managed-by"
MADE_BY_KEY = f"{TAG_PREFIX}made-by"
MAX_TAG_VALUE = 256

#: Answers meaning a rule, or its whole group, is no longer there (or not yet shown).
RULE_GONE_CODES = frozenset(
    {"InvalidPermission.NotFound", "InvalidGroup.NotFound", "InvalidSecurityGroupRuleId.NotFound"}
)
GROUP_NOT_FOUND_CODE = "InvalidGroup.NotFound"
DUPLICATE_CODE = "InvalidPermission.Duplicate"
#: Authorize answers meaning the source prefix list does not exist (EC2 has spelled the code both ways).
PREFIX_LIST_NOT_FOUND_CODES = frozenset({"InvalidPrefixListID.NotFound", "InvalidPrefixListId.NotFound"})

#: One EC2 ingress rule: (target security group, port).
Rule = tuple[str, int]


def rule_tags(table: str, holder: Holder) -> dict[str, str]:
    """The tags a rule is made with: who manages it (and where its holders are listed), and who made it."""
    return {
        MANAGED_BY_KEY: f"Custom::CacheIngress; holders in DynamoDB table {table}"[:MAX_TAG_VALUE],
        MADE_BY_KEY: holder.name[:MAX_TAG_VALUE],
    }


def matches(item: Mapping[str, Any], source: Source, port: int) -> bool:
    """Whether a DescribeSecurityGroupRules item is the ingress rule TCP ``port`` from ``source``."""
    return (
        not item.get("IsEgress")
        and str(item.get("IpProtocol")) in ("tcp", "6")
        and item.get("FromPort") == port
        and item.get("ToPort") == port
        and source.is_source_of(item)
    )


@dataclass(frozen=True)
class Ec2Side:
    """:class:`~cache_ingress.ledger.Side` for the EC2 ingress rules of ``rule_set``, for one request."""

    ec2: Ec2Api
    rule_set: RuleSet
    tags: Mapping[str, str]
    deadline: Deadline
    sleep: Sleep = time.sleep

    @property
    def source(self) -> Source:
        return self.rule_set.source

    def key(self, rule: Rule) -> str:
        """``vpc|<target group>|tcp|<port>|<source as the physical id spells it>``."""
        target, port = rule
        return f"vpc|{target}|tcp|{port}|{self.source.id_part}"

    def authorize(self, rule: Rule, description: str) -> str | None:
        """Make the rule, tagged: its id, or None if it exists already. A group not shown yet is waited for.

        A Duplicate after an attempt whose answer was lost may answer that very
        attempt: the rule it made carries the description sent, so it is
        looked for with it, and counts as made by this request when found.
        """
        target, port = rule
        permissions = ip_permissions(self.rule_set, (port,), description)
        lost: list[ApiError] = []

        def call() -> list[dict[str, Any]]:
            try:
                return self.ec2.authorize(target, permissions, self.tags)
            except ApiError as err:
                if err.connection:
                    lost.append(err)
                raise

        try:
            made = self._settled(lambda: retry.change(call, self.deadline, self.sleep), {GROUP_NOT_FOUND_CODE})
        except ApiError as err:
            if err.code == DUPLICATE_CODE:
                found = self.find(rule, (description,), settle=True) if lost else None
                return found[0] if found else None
            if err.code == GROUP_NOT_FOUND_CODE:
                raise Refused(
                    f"{err.operation} failed: a security group does not exist ({err.message}). "
                    "Check SourceSecurityGroupId, and TargetSecurityGroupIds or the cache's security groups"
                ) from err
            if err.code in rule_quota.LIMIT_CODES:
                raise RuleQuotaExceeded(rule_quota.limit_reason(target, err.message)) from err
            if err.code in PREFIX_LIST_NOT_FOUND_CODES:
                raise Refused(
                    f"{err.operation} failed: {self.source} does not exist in this account and region "
                    f"({err.message}). Check SourcePrefixListId, and that a shared list is shared with this account"
                ) from err
            raise Refused(f"{err} (target security group {target})") from err
        return str(made[0].get("SecurityGroupRuleId", "")) if made else ""

    def find(self, rule: Rule, descriptions: Collection[str] | None, *, settle: bool) -> tuple[str, str] | None:
        """The rule's id and description as EC2 shows it now, if it carries one of ``descriptions`` (any, when None).

        EC2 knows a rule by protocol, port and source, so at most one rule matches.
        """
        target, port = rule
        waits = polls()
        until = time.monotonic() + SETTLE_S
        while True:
            try:
                answer = retry.read(partial(self.ec2.rules, target), self.deadline, self.sleep)
            except ApiError as err:
                if err.code not in RULE_GONE_CODES:
                    raise ResourceFailure(f"{err} (target security group {target})") from err
                answer = []
            for item in answer:
                described = str(item.get("Description") or "")
                if matches(item, self.source, port) and (descriptions is None or described in descriptions):
                    return str(item.get("SecurityGroupRuleId", "")), described
            if not settle or time.monotonic() >= until or not self._wait(waits):
                return None

    def revoke(self, rule: Rule, rule_id: str) -> bool:
        """Revoke by id: whether it was there. Gone counts only once EC2 has had :data:`SETTLE_S` to show it."""
        target, _ = rule
        call = partial(self.ec2.revoke, target, [rule_id])
        try:
            self._settled(lambda: retry.change(call, self.deadline, self.sleep), RULE_GONE_CODES)
        except ApiError as err:
            if err.code in RULE_GONE_CODES:
                return False
            raise Refused(str(err)) from err
        return True

    def set_description(self, rule: Rule, rule_id: str, description: str) -> None:
        target, _ = rule
        try:
            retry.change(partial(self.ec2.set_description, target, rule_id, description), self.deadline, self.sleep)
        except ApiError as err:
            if err.code not in RULE_GONE_CODES:
                raise ResourceFailure(str(err)) from err

    def _settled(self, call: Callable[[], Any], not_found: frozenset[str] | set[str]) -> Any:
        """``call``, made again while it answers one of ``not_found`` and EC2 has had less than SETTLE_S."""
        waits = polls()
        until = time.monotonic() + SETTLE_S
        while True:
            try:
                return call()
            except ApiError as err:
                if err.code not in not_found or time.monotonic() >= until or not self._wait(waits):
                    raise

    def _wait(self, waits: Iterator[float]) -> bool:
        """Wait for the next look, if one could still be made after it before the deadline."""
        delay = next(waits)
        if self.deadline.closed or self.deadline.remaining() < delay + MIN_ATTEMPT_S:
            return False
        self.sleep(delay)
        return True
