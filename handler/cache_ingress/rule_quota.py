"""How much of a security group's inbound-rule quota a grant would use: pure rules, no AWS calls.

EC2 refuses an Authorize that would take a group past its quota of inbound
rules (Service Quotas, service ``vpc``, quota ``L-0EA8095F``, "Inbound or
outbound rules per security group", 60 unless raised) with
``RulesPerSecurityGroupLimitExceeded``. Met part-way through a grant into
several groups, that leaves some groups opened and the reason vague; so each
target group is counted before any write (:mod:`cache_ingress.quota_check`),
the way EC2 counts:

* The quota "is enforced separately for IPv4 rules and IPv6 rules": a group
  may hold 60 inbound rules for IPv4 traffic and 60 for IPv6 (Amazon VPC User
  Guide, "Amazon VPC quotas", Security groups). So the two are counted apart.
* A rule from a CIDR counts as one rule, of its own IP version; a rule that
  references a security group counts as one, whatever the group's size (VPC
  User Guide, "Security group rules", Security group size), and "a rule that
  references a security group or prefix list ID counts as one rule for IPv4
  and one rule for IPv6" (the same quotas page, in its editions before 2023):
  toward both counts.
* "A rule that references a customer-managed prefix list counts as the
  maximum size of the prefix list" (Security group size; the quotas page,
  Customer-managed prefix lists: "a prefix list with 20 maximum entries [...]
  counts as 20 security group rules"): its ``MaxEntries``, toward both
  counts, as a reference does. A list whose size EC2 does not show (an
  AWS-managed one has a weight of its own) counts as one: the least it can
  be; EC2's own refusal then still gives the clear reason.

What the grant adds is one rule per port from its source, less the rules the
group holds already (same protocol, port and source): those are only held,
and weigh nothing. A prefix list source weighs its size once per port, so a
serverless cache's two ports count it twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .sources import Source, SourceKind

SERVICE_CODE = "vpc"
QUOTA_CODE = "L-0EA8095F"
QUOTA_NAME = "Inbound or outbound rules per security group"
#: EC2's default quota, used when Service Quotas cannot tell.
DEFAULT_QUOTA = 60
#: Authorize's answer for a group with no room left: counted in time, another writer added rules since.
LIMIT_CODES = frozenset({"RulesPerSecurityGroupLimitExceeded"})

WAYS_OUT = (
    "Open fewer ports with Port, let in a smaller prefix list (each counts as its maximum entries, once per "
    f"port), or ask for a higher quota in Service Quotas ({SERVICE_CODE} {QUOTA_CODE}, {QUOTA_NAME!r})"
)


@dataclass(frozen=True)
class Usage:
    """Rules counted toward a group's quota: those for IPv4 traffic, and those for IPv6."""

    ipv4: int = 0
    ipv6: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.ipv4 + other.ipv4, self.ipv6 + other.ipv6)

    def times(self, n: int) -> Usage:
        return Usage(self.ipv4 * n, self.ipv6 * n)


@dataclass(frozen=True)
class Overflow:
    """A group the grant would take past its quota: which count, how far, and what the grant adds to it."""

    group_id: str
    family: str
    count: int
    added: int
    quota: int

    def reason(self) -> str:
        return (
            f"Security group {self.group_id} would hold {self.count} inbound {self.family} rules "
            f"({self.added} of them added by this resource), past its quota of {self.quota}; "
            f"nothing was changed. {WAYS_OUT}"
        )


def prefix_lists_named(source: Source, rules: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The prefix lists whose size the count needs: the source, if one, and those existing inbound rules reference."""
    named = {str(item["PrefixListId"]).lower() for item in rules if _inbound(item) and item.get("PrefixListId")}
    if source.kind is SourceKind.PREFIX_LIST:
        named.add(source.value)
    return frozenset(named)


def overflow(
    source: Source,
    ports: Iterable[int],
    group_id: str,
    rules: Iterable[Mapping[str, Any]],
    sizes: Mapping[str, int],
    quota: int,
) -> Overflow | None:
    """Whether letting ``source`` in on ``ports`` takes the group past ``quota``, given the rules it holds.

    ``rules`` is the group's DescribeSecurityGroupRules answer; ``sizes`` each
    prefix list's ``MaxEntries``, by id.
    """
    held = [item for item in rules if _inbound(item)]
    used = sum((_weight_of_rule(item, sizes) for item in held), Usage())
    new_ports = [port for port in set(ports) if not any(_same_rule(item, source, port) for item in held)]
    added = _weight_of_source(source, sizes).times(len(new_ports))
    for family, before, more in (("IPv4", used.ipv4, added.ipv4), ("IPv6", used.ipv6, added.ipv6)):
        if more and before + more > quota:
            return Overflow(group_id, family, before + more, more, quota)
    return None


def limit_reason(group_id: str, message: str) -> str:
    """Authorize found no room after the count did: another writer added rules to the group in between."""
    return (
        f"AuthorizeSecurityGroupIngress failed: security group {group_id} has no room for these rules within its "
        f"quota of inbound rules ({message}); another writer may have added rules since they were counted. "
        f"{WAYS_OUT}"
    )


def quota_of(value: Any) -> int | None:
    """A GetServiceQuota answer's Value as a whole number of rules, None if it holds none."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        return None
    return int(value)


def _inbound(item: Mapping[str, Any]) -> bool:
    return not item.get("IsEgress")


def _same_rule(item: Mapping[str, Any], source: Source, port: int) -> bool:
    """Whether the rule is the one the grant would make on ``port``: TCP, that port alone, from the source."""
    return (
        str(item.get("IpProtocol")) in ("tcp", "6")
        and item.get("FromPort") == port
        and item.get("ToPort") == port
        and source.is_source_of(item)
    )


def _size(prefix_list_id: str, sizes: Mapping[str, int]) -> int:
    return max(1, sizes.get(prefix_list_id.lower(), 1))


def _weight_of_rule(item: Mapping[str, Any], sizes: Mapping[str, int]) -> Usage:
    if item.get("PrefixListId"):
        size = _size(str(item["PrefixListId"]), sizes)
        return Usage(size, size)
    if item.get("CidrIpv4"):
        return Usage(ipv4=1)
    if item.get("CidrIpv6"):
        return Usage(ipv6=1)
    return Usage(1, 1)  # a reference to a security group


def _weight_of_source(source: Source, sizes: Mapping[str, int]) -> Usage:
    if source.kind is SourceKind.PREFIX_LIST:
        size = _size(source.value, sizes)
        return Usage(size, size)
    if source.kind is SourceKind.IPV4:
        return Usage(ipv4=1)
    if source.kind is SourceKind.IPV6:
        return Usage(ipv6=1)
    return Usage(1, 1)
