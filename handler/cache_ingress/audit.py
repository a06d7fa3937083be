"""What an operator's check finds, from plain data: who holds each rule into a cache, and what no longer adds up.

CloudFormation gives a custom resource no drift detection, and nothing
notices a rule revoked by hand, a stack deleted behind the resource's back
(``DeletionPolicy: Retain``, a skipped ``DELETE_FAILED``) or a cache that
gained a security group. The ledger knows every holder and its stack, so the
check is a comparison of three reads: the ledger's entries for the cache, the
rules AWS holds into its groups, and the status of each holder's stack.
Nothing here calls AWS (:mod:`cache_ingress.survey` reads, this module
judges), so every finding is tested on plain values.

The findings:

* ``drift``: a rule live holders declare that AWS lacks (revoked by hand);
  ``repair`` authorizes it again;
* ``orphan``: a holder whose stack no longer exists or is DELETE_COMPLETE;
  ``sweep`` lets go of it as its Delete would have;
* ``uncovered``: a security group the cache has now that a live holder's
  rules do not reach, where the holder's targets are the cache's groups (not
  its own TargetSecurityGroupIds): its next Update follows them;
* ``stale-lease``: a revoke's lease past its expiry (a Delete that died
  half-way); the next hold or release of that rule takes it over.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .ledger import HOLDER_PREFIX, PRE_EXISTING, RULE_PREFIX, RULE_SK, TARGETS_DECLARED, Entry
from .properties import stack_name
from .sources import Source
from .vpc_rules import CacheKind, CacheRef, parse_physical_id

DRIFT = "drift"
ORPHAN = "orphan"
UNCOVERED = "uncovered"
STALE_LEASE = "stale-lease"
FINDINGS = (DRIFT, ORPHAN, UNCOVERED, STALE_LEASE)

#: How a rule is held when the ledger has no entry for it: made by hand or by another tool, and not ours.
UNMANAGED = "unmanaged"
#: A stack CloudFormation has finished deleting: describing it by id still answers, with this status.
DELETE_COMPLETE = "DELETE_COMPLETE"
#: The status shown for a stack CloudFormation no longer knows at all.
NO_STACK = "no such stack"
#: The status shown for a stack of another account or region (a stack of the account InvokerAccountId names):
#: CloudFormation will not describe it to this one, so it is never taken for gone.
OTHER_ACCOUNT = "not visible: account {account}, region {region}"
_STACK_ARN = re.compile(r"arn:[^:]+:cloudformation:([^:]*):([0-9]{12}):stack/")
#: How the ledger spells a cache security group (EC2-Classic); a VPC cache is ``<property> '<name>'``.
CLASSIC_CACHE = "CacheSecurityGroupName"
_VPC_CACHE = re.compile(r"(\w+) '(.*)'")


# -- what the ledger and AWS say, as plain values ---------------------------------------------------------


@dataclass(frozen=True)
class RuleKey:
    """A ledger rule key, read back: ``vpc|<group>|tcp|<port>|<source>`` or ``classic|<group>|<name>|<owner>``.

    For EC2-Classic, ``group`` is the cache security group, ``port`` 0 and
    ``source`` the EC2 security group's ``<name>@<owner>``.
    """

    text: str
    classic: bool
    group: str
    port: int
    source: str

    @classmethod
    def parse(cls, text: str) -> RuleKey | None:
        if text.startswith("vpc|"):
            parts = text.split("|", 4)
            if len(parts) == 5 and parts[2] == "tcp" and parts[3].isdigit():
                return cls(text, False, parts[1], int(parts[3]), parts[4])
        if text.startswith("classic|"):
            group, _, rest = text.removeprefix("classic|").partition("|")
            name, _, owner = rest.rpartition("|")  # an EC2-Classic group's name may hold "|"; the account not
            if group and name and owner:
                return cls(text, True, group, 0, f"{name}@{owner}")
        return None

    @property
    def ec2_group_name(self) -> str:
        """EC2-Classic: the EC2 security group's name."""
        return self.source.rpartition("@")[0]

    @property
    def owner(self) -> str:
        """EC2-Classic: the EC2 security group's account."""
        return self.source.rpartition("@")[2]


def vpc_key(group: str, port: int, source: str) -> str:
    """The rule key :class:`~cache_ingress.vpc_holds.Ec2Side` spells."""
    return f"vpc|{group}|tcp|{port}|{source}"


def classic_key(cache_group: str, ec2_group: str, owner: str) -> str:
    """The rule key :class:`~cache_ingress.classic_lifecycle.CacheGroupSide` spells."""
    return f"classic|{cache_group}|{ec2_group}|{owner}"


@dataclass(frozen=True)
class HolderEntry:
    """One holder entry of the ledger: who holds the rule ``key``."""

    key: str
    holder_key: str
    stack_id: str
    logical_id: str
    physical_id: str
    since: str
    cache: str
    targets: str = ""

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.stack_id, self.logical_id, self.physical_id)


@dataclass(frozen=True)
class RuleEntry:
    """One rule entry of the ledger."""

    key: str
    entry: Entry
    cache: str


def ledger_items(items: Iterable[Mapping[str, Any]]) -> tuple[list[RuleEntry], list[HolderEntry]]:
    """The rule and holder entries among items read from the table (or one of its indexes)."""
    rules: list[RuleEntry] = []
    holders: list[HolderEntry] = []
    for item in items:
        pk, sk = str(item.get("pk", "")), str(item.get("sk", ""))
        if not pk.startswith(RULE_PREFIX):
            continue
        key = pk[len(RULE_PREFIX) :]
        if sk == RULE_SK:
            rules.append(RuleEntry(key, Entry.of(dict(item)), str(item.get("cache", ""))))
        elif sk.startswith(HOLDER_PREFIX):
            holders.append(
                HolderEntry(
                    key=key,
                    holder_key=sk[len(HOLDER_PREFIX) :],
                    stack_id=str(item.get("stack_id", "")),
                    logical_id=str(item.get("logical_id", "")),
                    physical_id=str(item.get("physical_id", "")),
                    since=str(item.get("since", "")),
                    cache=str(item.get("cache", "")),
                    targets=str(item.get("targets", "")),
                )
            )
    return rules, holders


@dataclass(frozen=True)
class LiveRule:
    """One ingress rule as AWS holds it now: into ``group``, from ``source``, on ``port`` ("" when not one TCP port).

    ``key`` is the ledger's key for it, or "" when it is not a rule of the
    kind this resource makes (all traffic, a port range, UDP...).
    """

    group: str
    rule_id: str
    source: str
    port: str
    description: str
    key: str


def live_rule(item: Mapping[str, Any]) -> LiveRule | None:
    """An ingress rule from a DescribeSecurityGroupRules item, None for an egress rule."""
    if item.get("IsEgress"):
        return None
    group = str(item.get("GroupId", ""))
    referenced = item.get("ReferencedGroupInfo") or {}
    if referenced.get("GroupId"):
        source = f"{str(referenced['GroupId']).lower()}@{referenced.get('UserId', '')}"
    elif item.get("CidrIpv4"):
        source = str(item["CidrIpv4"])
    elif item.get("CidrIpv6"):
        source = f"[{item['CidrIpv6']}]"
    else:
        source = str(item.get("PrefixListId", "")).lower()
    canonical = Source.from_id_part(source)
    source = canonical.id_part if canonical is not None else source
    protocol = str(item.get("IpProtocol"))
    low, high = item.get("FromPort"), item.get("ToPort")
    one_tcp_port = protocol in ("tcp", "6") and low == high and isinstance(low, int)
    if one_tcp_port:
        port = str(low)
    elif protocol == "-1":
        port = "all"
    else:
        port = f"{protocol} {low}-{high}"
    return LiveRule(
        group=group,
        rule_id=str(item.get("SecurityGroupRuleId", "")),
        source=source,
        port=port,
        description=str(item.get("Description") or ""),
        key=vpc_key(group, int(port), source) if one_tcp_port else "",
    )


def classic_rules(cache_group: str, group: Mapping[str, Any]) -> list[LiveRule]:
    """The ingresses of a cache security group (DescribeCacheSecurityGroups), as rules; those revoking left out."""
    found = []
    for item in group.get("EC2SecurityGroups") or []:
        if item.get("Status") == "revoking":
            continue
        name, owner = str(item.get("EC2SecurityGroupName", "")), str(item.get("EC2SecurityGroupOwnerId", ""))
        found.append(
            LiveRule(
                cache_group,
                "",
                f"{name}@{owner}",
                "-",
                str(item.get("Status", "")),
                classic_key(cache_group, name, owner),
            )
        )
    return found


@dataclass(frozen=True)
class CacheState:
    """One cache as read: the ledger's entries for it, its groups now (None when unknown), the rules into them."""

    cache: str
    rules: Sequence[RuleEntry]
    holders: Sequence[HolderEntry]
    groups: tuple[str, ...] | None
    live: Sequence[LiveRule]
    problem: str = ""  # why its groups or rules could not be read


def cache_ref(cache: str) -> CacheRef | None:
    """The VPC cache a ledger ``cache`` value names; None for a cache security group."""
    match = _VPC_CACHE.fullmatch(cache)
    if match is None:
        return None
    try:
        return CacheRef(CacheKind(match[1]), match[2])
    except ValueError:
        return None


def cache_name(cache: str) -> str:
    """The name alone: ``app-cache`` for ``ReplicationGroupId 'app-cache'``."""
    ref = cache_ref(cache)
    if ref is not None:
        return ref.name
    return cache.removeprefix(CLASSIC_CACHE).strip()


def selected(cache: str, names: Iterable[str]) -> bool:
    """Whether ``--cache`` ``names`` select this cache: by its name alone, or as the ledger spells it."""
    return any(name in (cache, cache_name(cache)) for name in names)


# -- the report ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldBy:
    """A holder as a person reads it: its stack's name and status, its logical id."""

    stack: str
    status: str
    logical_id: str
    stack_id: str
    physical_id: str
    since: str

    @property
    def live(self) -> bool:
        return live_status(self.status)

    def __str__(self) -> str:
        return f"{self.stack} ({self.status}) {self.logical_id}"


def foreign_status(stack_id: str, account: str, region: str) -> str | None:
    """:data:`OTHER_ACCOUNT` for a stack id of another account or region than (``account``, ``region``), else None.

    Such a stack cannot be described from here: "does not exist" would be
    said of it alive, and its holds swept from under it.
    """
    match = _STACK_ARN.match(stack_id)
    if match is None or (match[1], match[2]) == (region, account):
        return None
    return OTHER_ACCOUNT.format(account=match[2], region=match[1])


def live_status(status: str) -> bool:
    """Whether a holder with its stack in ``status`` still holds: its stack exists and is not deleted."""
    return status not in (NO_STACK, DELETE_COMPLETE)


@dataclass(frozen=True)
class Row:
    """One rule into one of a cache's groups (or one the ledger says should be there): who holds it."""

    cache: str
    group: str
    port: str
    source: str
    rule_id: str  # "" when AWS lacks it
    held_by: tuple[HeldBy, ...]
    origin: str  # the ledger's origin, or UNMANAGED
    present: bool

    @property
    def holders_text(self) -> str:
        parts = [str(h) for h in self.held_by]
        if self.origin == PRE_EXISTING:
            parts.insert(0, PRE_EXISTING)
        elif self.origin == UNMANAGED:
            parts = [UNMANAGED]
        return "; ".join(parts) or "no holder"


@dataclass(frozen=True)
class Finding:
    """Something that no longer adds up, on one rule (``key``) or one holder, in one cache."""

    kind: str
    cache: str
    detail: str
    key: str = ""
    holders: tuple[HeldBy, ...] = ()
    group: str = ""


@dataclass(frozen=True)
class CacheReport:
    cache: str
    groups: tuple[str, ...] | None
    rows: tuple[Row, ...]
    problem: str = ""


@dataclass(frozen=True)
class Report:
    caches: tuple[CacheReport, ...]
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    def count(self, kind: str) -> int:
        return sum(1 for f in self.findings if f.kind == kind)


def audit(states: Iterable[CacheState], statuses: Mapping[str, str], now: float) -> Report:
    """Who holds each rule into each cache, and the findings; ``statuses`` maps stack ids to their status
    (:data:`NO_STACK` for one CloudFormation does not know), ``now`` is epoch seconds."""
    caches: list[CacheReport] = []
    findings: list[Finding] = []
    for state in states:
        report, found = _audit_cache(state, statuses, now)
        caches.append(report)
        findings += found
    return Report(tuple(caches), tuple(findings))


def _held_by(holder: HolderEntry, statuses: Mapping[str, str]) -> HeldBy:
    return HeldBy(
        stack=stack_name(holder.stack_id) or holder.stack_id,
        status=statuses.get(holder.stack_id, NO_STACK),
        logical_id=holder.logical_id,
        stack_id=holder.stack_id,
        physical_id=holder.physical_id,
        since=holder.since,
    )


def _audit_cache(state: CacheState, statuses: Mapping[str, str], now: float) -> tuple[CacheReport, list[Finding]]:
    by_key: dict[str, list[HeldBy]] = {}
    for holder in state.holders:
        by_key.setdefault(holder.key, []).append(_held_by(holder, statuses))
    for held_by in by_key.values():
        held_by.sort(key=lambda h: (h.stack, h.logical_id, h.physical_id))
    entries = {rule.key: rule for rule in state.rules}
    live_keys = {rule.key for rule in state.live if rule.key}
    rows: list[Row] = []
    findings: list[Finding] = []
    for rule in state.live:
        entry = entries.get(rule.key) if rule.key else None
        held = tuple(by_key.get(rule.key, ())) if rule.key else ()
        origin = entry.entry.origin if entry else (UNMANAGED if not held else "")
        rows.append(Row(state.cache, rule.group, rule.port, rule.source, rule.rule_id, held, origin, True))
    for key in sorted(set(entries) | set(by_key)):
        if key in live_keys:
            continue
        parsed = RuleKey.parse(key)
        held = tuple(by_key.get(key, ()))
        origin = entries[key].entry.origin if key in entries else ""
        if parsed is not None and (held or (key in entries and entries[key].entry.holders > 0)):
            port = "-" if parsed.classic else str(parsed.port)
            rows.append(Row(state.cache, parsed.group, port, parsed.source, "", held, origin, False))
        live_holders = tuple(h for h in held if h.live)
        if live_holders and state.problem == "":
            findings.append(
                Finding(
                    DRIFT,
                    state.cache,
                    f"{_rule_text(key)} is declared by {', '.join(map(str, live_holders))} but AWS lacks it",
                    key=key,
                    holders=live_holders,
                )
            )
    findings += _orphans(state, statuses)
    findings += _uncovered(state, statuses)
    for key, leased in sorted(entries.items()):
        if leased.entry.lease_holder and leased.entry.lease_until <= now:
            findings.append(
                Finding(
                    STALE_LEASE,
                    state.cache,
                    f"{_rule_text(key)} has a revoke lease that expired (a Delete that died half-way); "
                    "the next hold or release of it takes it over",
                    key=key,
                )
            )
    rows.sort(key=lambda r: (r.group, r.port, r.source))
    return CacheReport(state.cache, state.groups, tuple(rows), state.problem), findings


def _orphans(state: CacheState, statuses: Mapping[str, str]) -> list[Finding]:
    """One finding per holder (resource instance) whose stack is gone, naming every rule it holds here."""
    held: dict[tuple[str, str, str], list[str]] = {}
    for holder in state.holders:
        if not live_status(statuses.get(holder.stack_id, NO_STACK)):
            held.setdefault(holder.identity, []).append(holder.key)
    findings = []
    for identity, keys in sorted(held.items()):
        first = next(h for h in state.holders if h.identity == identity)
        who = _held_by(first, statuses)
        findings.append(
            Finding(
                ORPHAN,
                state.cache,
                f"{who} holds {len(keys)} rule(s) but its stack is gone ({who.status}): "
                f"{', '.join(_rule_text(k) for k in sorted(keys))}",
                holders=(who,),
            )
        )
    return findings


def _uncovered(state: CacheState, statuses: Mapping[str, str]) -> list[Finding]:
    """A group the cache has now that a live holder's rules (its physical id's targets) do not reach."""
    if not state.groups:
        return []
    findings = []
    seen: set[tuple[str, str, str]] = set()
    for holder in state.holders:
        who = _held_by(holder, statuses)
        rule_set = parse_physical_id(holder.physical_id)
        if holder.identity in seen or not who.live or rule_set is None or holder.targets == TARGETS_DECLARED:
            continue
        seen.add(holder.identity)
        for group in state.groups:
            if group not in rule_set.targets:
                findings.append(
                    Finding(
                        UNCOVERED,
                        state.cache,
                        f"the cache now has security group {group}, which {who}'s rules do not reach; "
                        "its next Update follows the cache's groups",
                        holders=(who,),
                        group=group,
                    )
                )
    return findings


def _rule_text(key: str) -> str:
    parsed = RuleKey.parse(key)
    if parsed is None:
        return f"rule {key}"
    if parsed.classic:
        return f"the ingress of {parsed.source} into cache security group {parsed.group}"
    return f"the rule from {parsed.source} on port {parsed.port} into {parsed.group}"
