"""Room for the rules: each target group's inbound-rule quota, checked before a grant writes anything.

The counting is :mod:`cache_ingress.rule_quota`'s; this module makes the
reads it needs, each under the one retry policy: every target group's rules,
the size of every prefix list involved, and, only when a group would pass
EC2's default of 60, the account's quota from Service Quotas. A quota can be
raised, rarely lowered: so a count within 60 needs no quota read, and most
grants make none. Should it have been lowered, EC2's own refusal gives the
same clear reason (:func:`cache_ingress.rule_quota.limit_reason`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from . import retry, rule_quota
from .aws_api import ApiError, Ec2Api, ServiceQuotasApi
from .errors import OutOfTime, ResourceFailure, RuleQuotaExceeded
from .sources import Source
from .timing import Deadline, Sleep

#: How long a quota read from Service Quotas (or its refusal) is trusted: a raised quota shows within this.
QUOTA_TTL_S = 300.0
#: The most a quota read may take, retries included: Service Quotas slow or unreachable costs this much.
QUOTA_LOOKUP_S = 3.0
#: Answers meaning Service Quotas will not tell this role (or knows no such quota): EC2's default holds.
NO_QUOTA_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "NoSuchResource", "NoSuchResourceException", "IllegalArgumentException"}
)
#: Answers meaning the prefix lists' sizes cannot be read: each then counts as one, and EC2 has the last word.
UNREADABLE_SIZE_CODES = frozenset({"UnauthorizedOperation", "AccessDenied", "InvalidPrefixListId.NotFound"})
#: A group the count finds gone: the Authorize that follows says so, in the reason it has always given.
GROUP_GONE_CODES = frozenset({"InvalidGroup.NotFound"})


class RuleQuota:
    """The account's quota of inbound rules per security group, read from Service Quotas and kept a few minutes.

    One per sandbox (its client's account and region are the function's). Without a client, or when Service
    Quotas refuses, knows no such quota or does not answer in time, it is EC2's default; a refusal is kept
    like an answer, a silence is not.
    """

    def __init__(self, api: ServiceQuotasApi | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.clock = clock
        self._known: tuple[int, float] | None = None

    def forget(self) -> None:
        """Read the quota afresh next time."""
        self._known = None

    def value(self, deadline: Deadline, sleep: Sleep = time.sleep) -> int:
        if self._known is not None and self.clock() - self._known[1] < QUOTA_TTL_S:
            return self._known[0]
        if self.api is None:
            return rule_quota.DEFAULT_QUOTA
        ask = partial(self.api.quota, rule_quota.SERVICE_CODE, rule_quota.QUOTA_CODE)
        try:
            answer = retry.read(ask, deadline.within(QUOTA_LOOKUP_S), sleep)
        except ApiError as err:
            if err.code not in NO_QUOTA_CODES:
                return rule_quota.DEFAULT_QUOTA
            answer = None
        except OutOfTime:
            return rule_quota.DEFAULT_QUOTA
        quota = rule_quota.quota_of(answer) or rule_quota.DEFAULT_QUOTA
        self._known = (quota, self.clock())
        return quota


def check_room(
    ec2: Ec2Api,
    quota: RuleQuota,
    source: Source,
    ports: tuple[int, ...],
    targets: tuple[str, ...],
    deadline: Deadline,
    sleep: Sleep = time.sleep,
) -> None:
    """Raise :class:`RuleQuotaExceeded` naming the first target group the grant would take past its quota.

    Only reads: it runs before the grant's first write, so a refusal leaves every group as it was.
    """
    rules = {target: _rules(ec2, target, deadline, sleep) for target in targets}
    named = frozenset().union(*(rule_quota.prefix_lists_named(source, held) for held in rules.values()))
    sizes = _sizes(ec2, named, deadline, sleep) if named else {}

    def first_over(limit: int) -> rule_quota.Overflow | None:
        found = (rule_quota.overflow(source, ports, t, rules[t], sizes, limit) for t in targets)
        return next((over for over in found if over is not None), None)

    if first_over(rule_quota.DEFAULT_QUOTA) is None:
        return
    over = first_over(quota.value(deadline, sleep))
    if over is not None:
        raise RuleQuotaExceeded(over.reason())


def _rules(ec2: Ec2Api, target: str, deadline: Deadline, sleep: Sleep) -> list[dict[str, Any]]:
    try:
        found: list[dict[str, Any]] = retry.read(partial(ec2.rules, target), deadline, sleep)
    except ApiError as err:
        if err.code in GROUP_GONE_CODES:
            return []
        raise ResourceFailure(f"{err} (target security group {target})") from err
    return found


def _sizes(ec2: Ec2Api, named: frozenset[str], deadline: Deadline, sleep: Sleep) -> dict[str, int]:
    try:
        sizes: dict[str, int] = retry.read(partial(ec2.prefix_list_sizes, named), deadline, sleep)
    except ApiError as err:
        if err.code in UNREADABLE_SIZE_CODES:
            return {}
        raise ResourceFailure(str(err)) from err
    return sizes
