"""Who holds an EC2 rule, as tags on the rule: pure rules, no AWS calls.

EC2 keeps no owner for a rule, so two resources that declare the same rule
would otherwise share it blindly, and a Delete could not tell a rule it made
from one made by hand. Every resource instance that needs a rule puts its
*claim* on it: a tag whose key is unique to the instance (stack, logical id
and physical id, so that an old and a new id of one resource during a
replacement are two claims) and whose value names the stack and resource for
a person reading the rule in the console. A rule is revoked only when its last
claim goes, and never when it carries the *pre-existing* mark, which is put on
a rule that existed before any claim (made by hand, or by another tool).

A Delete about to revoke an unclaimed rule first marks it *revoking*, then
reads it again; a Create that claims an existing rule first tags it, then
reads it again. Each side writes before it reads, so at least one sees the
other: the Delete backs off when it finds a new claim, and the Create waits
for the rule to go (then authorizes it afresh) or for the mark to be taken
off. A mark left by a Delete that died expires at the time it carries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .properties import stack_name
from .sources import Source

#: Every tag this resource writes starts so; the IAM policy allows tag writes with these keys only.
TAG_PREFIX = "cache-ingress:"
CLAIM_PREFIX = f"{TAG_PREFIX}claim:"
PRE_EXISTING_KEY = f"{TAG_PREFIX}pre-existing"
PRE_EXISTING_VALUE = "made before any claim; never revoked by Custom::CacheSecurityGroupIngress"
REVOKING_KEY = f"{TAG_PREFIX}revoking-until"
MAX_TAG_VALUE = 256
_DIGEST_CHARS = 32


@dataclass(frozen=True)
class Claim:
    """One resource instance's hold on the rules its physical id names."""

    stack_id: str
    logical_id: str
    physical_id: str

    @property
    def key(self) -> str:
        """Unique to the instance, and short: 20 + 32 characters, inside EC2's 128 for a tag key."""
        identity = "\n".join((self.stack_id, self.logical_id, self.physical_id)).encode()
        return CLAIM_PREFIX + hashlib.sha256(identity).hexdigest()[:_DIGEST_CHARS]

    @property
    def value(self) -> str:
        """What a person reads in the console: the stack and the resource that hold the rule."""
        stack = stack_name(self.stack_id) or self.stack_id
        return f"stack {stack}, resource {self.logical_id}"[:MAX_TAG_VALUE]

    def tags(self) -> dict[str, str]:
        return {self.key: self.value}


@dataclass(frozen=True)
class HeldRule:
    """An ingress rule as EC2 holds it: its id, where it lets what in, and its tags."""

    rule_id: str
    group_id: str
    port: int
    description: str
    tags: tuple[tuple[str, str], ...]

    @property
    def claims(self) -> frozenset[str]:
        return frozenset(key for key, _ in self.tags if key.startswith(CLAIM_PREFIX))

    @property
    def pre_existing(self) -> bool:
        return any(key == PRE_EXISTING_KEY for key, _ in self.tags)

    def claimed_by(self, claim: Claim) -> bool:
        return claim.key in self.claims

    def revoking(self, now: float) -> bool:
        """Whether a Delete marked the rule for revoking and its mark has not expired."""
        for key, value in self.tags:
            if key == REVOKING_KEY:
                try:
                    return float(value) > now
                except ValueError:
                    return False
        return False

    def unclaimed_once(self, claim: Claim) -> bool:
        """Whether nothing holds the rule once ``claim`` is gone: no other claim, no pre-existing mark."""
        return not (self.claims - {claim.key}) and not self.pre_existing

    def made_by_earlier_release(self, description: str) -> bool:
        """A rule the release before claims made: no claim, no mark, and this resource's own description."""
        return not self.claims and not self.pre_existing and self.description == description


def claim_tags(claim: Claim, found: HeldRule, earlier: Claim | None, own: bool = False) -> dict[str, str]:
    """The tags that put ``claim`` on a rule that already exists.

    A rule nobody claims yet existed before any claim: it gets the
    pre-existing mark, so that no Delete ever revokes it; unless ``earlier``
    (the claim of the id CloudFormation holds now) stands for the release
    before claims, which made it: then that id's claim is written down too;
    or unless it is ``own``: it carries this very resource's description, so
    the release before claims made it for another id of this resource (the
    one a rollback returns to, say), and this claim is all it needs.
    """
    tags = claim.tags()
    if not found.claims and not found.pre_existing:
        if earlier is not None:
            tags.update(earlier.tags())
        elif not own:
            tags[PRE_EXISTING_KEY] = PRE_EXISTING_VALUE
    return tags


def revoking_tags(until: float) -> dict[str, str]:
    """The mark a Delete puts on a rule it is about to revoke; it expires at ``until`` (seconds since the epoch)."""
    return {REVOKING_KEY: f"{until:.0f}"}


def held_rules(answer: Iterable[Mapping[str, Any]], source: Source, ports: Iterable[int]) -> dict[int, HeldRule]:
    """The rules of one group's DescribeSecurityGroupRules answer that let ``source`` in on one of ``ports``.

    EC2 knows a rule by protocol, ports and source, so at most one rule
    matches each port.
    """
    wanted = set(ports)
    found: dict[int, HeldRule] = {}
    for item in answer:
        rule = held_rule(item, source)
        if rule is not None and rule.port in wanted:
            found[rule.port] = rule
    return found


def held_rule(item: Mapping[str, Any], source: Source) -> HeldRule | None:
    """The rule an item of a DescribeSecurityGroupRules answer is, if it is TCP on one port from ``source``."""
    if (
        item.get("IsEgress")
        or str(item.get("IpProtocol")) not in ("tcp", "6")
        or item.get("FromPort") != item.get("ToPort")
        or not isinstance(item.get("FromPort"), int)
        or not source.is_source_of(item)
    ):
        return None
    tags = tuple(sorted((str(t.get("Key", "")), str(t.get("Value", ""))) for t in item.get("Tags") or []))
    return HeldRule(
        rule_id=str(item.get("SecurityGroupRuleId", "")),
        group_id=str(item.get("GroupId", "")),
        port=int(item["FromPort"]),
        description=str(item.get("Description") or ""),
        tags=tags,
    )
