"""Who is let in: a security group, an IPv4 or IPv6 CIDR, or a managed prefix list. Pure rules, no AWS calls.

A source is parsed once from the properties into a :class:`Source`, whose
``value`` is canonical (lower-case ids, the network address of a CIDR in its
one shortest spelling), so that two spellings of one source are one rule set
with one physical id. The same value says what EC2 is sent
(:meth:`Source.permission`) and which rules EC2 holds are from it
(:meth:`Source.is_source_of`).

Letting the whole internet in (``0.0.0.0/0``, ``::/0``) is refused unless the
stack also sets :data:`ALLOW_ANY_ADDRESS` to ``"true"``: a cache is never meant
to be public by accident, and that property's name says what it does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import InvalidProperties
from .properties import kind_of, owner_account, shown

OWNER_PROPERTY = "SourceSecurityGroupOwnerId"
ALLOW_ANY_ADDRESS = "AllowAnyIpAddress"

GROUP_ID = re.compile(r"sg-(?:[0-9a-f]{8}|[0-9a-f]{17})")
PREFIX_LIST_ID = re.compile(r"pl-(?:[0-9a-f]{8}|[0-9a-f]{17})")
_ACCOUNT = re.compile(r"[0-9]{12}")


@dataclass(frozen=True)
class _Family:
    """What a CIDR of one IP version looks like, for parsing it and for the reasons that refuse it."""

    name: str
    version: int
    bits: int
    example: str
    #: As EC2 spells a CIDR: address, slash, prefix length in digits. ipaddress checks the rest.
    pattern: re.Pattern[str]


class SourceKind(Enum):
    """What the source is; the value is the property that names it."""

    SECURITY_GROUP = "SourceSecurityGroupId"
    IPV4 = "SourceCidrIp"
    IPV6 = "SourceCidrIpv6"
    PREFIX_LIST = "SourcePrefixListId"


_FAMILIES = {
    SourceKind.IPV4: _Family("IPv4", 4, 32, "10.0.0.0/16", re.compile(r"[0-9.]+/[0-9]{1,2}")),
    SourceKind.IPV6: _Family("IPv6", 6, 128, "2001:db8::/56", re.compile(r"[0-9A-Fa-f:.]+/[0-9]{1,3}")),
}

#: The properties that name a source; a resource sets exactly one.
SOURCE_PROPERTIES = tuple(kind.value for kind in SourceKind)


@dataclass(frozen=True)
class Source:
    """One source, canonical: ``owner`` is the account of a security group, empty for every other kind."""

    kind: SourceKind
    value: str
    owner: str = ""

    @property
    def predates_ledger(self) -> bool:
        """Whether the release before the ledger (0.1.0) could have made a rule from this source: from a group only.

        A rule from any other source that the ledger does not know, with this
        resource's own description, was made by someone else (a person copying
        it, say), so it is never taken for this resource's own, and never revoked.
        """
        return self.kind is SourceKind.SECURITY_GROUP

    @property
    def id_part(self) -> str:
        """How the physical id names it: ``sg-…@<account>``, ``10.0.0.0/8``, ``[2001:db8::/32]`` or ``pl-…``.

        An IPv6 CIDR is bracketed, so its colons are not read as the id's own separators by a person.
        """
        if self.kind is SourceKind.SECURITY_GROUP:
            return f"{self.value}@{self.owner}"
        if self.kind is SourceKind.IPV6:
            return f"[{self.value}]"
        return self.value

    @classmethod
    def from_id_part(cls, text: str) -> Source | None:
        """The source an id names, or None; only the canonical spelling decodes, so each source has one id."""
        source = _decoded(text)
        return source if source is not None and source.id_part == text else None

    def permission(self, description: str) -> dict[str, list[dict[str, str]]]:
        """The part of an EC2 IpPermission that names this source, with the rule's description."""
        if self.kind is SourceKind.SECURITY_GROUP:
            return {"UserIdGroupPairs": [{"GroupId": self.value, "UserId": self.owner, "Description": description}]}
        if self.kind is SourceKind.IPV4:
            return {"IpRanges": [{"CidrIp": self.value, "Description": description}]}
        if self.kind is SourceKind.IPV6:
            return {"Ipv6Ranges": [{"CidrIpv6": self.value, "Description": description}]}
        return {"PrefixListIds": [{"PrefixListId": self.value, "Description": description}]}

    def is_source_of(self, item: Mapping[str, Any]) -> bool:
        """Whether a DescribeSecurityGroupRules item lets in exactly this source (each rule has one source)."""
        if self.kind is SourceKind.SECURITY_GROUP:
            referenced = item.get("ReferencedGroupInfo")
            if not isinstance(referenced, Mapping):
                return False
            owner = referenced.get("UserId")
            return str(referenced.get("GroupId", "")).lower() == self.value and owner in (None, self.owner)
        if self.kind is SourceKind.PREFIX_LIST:
            return str(item.get("PrefixListId", "")).lower() == self.value
        held = item.get("CidrIpv4" if self.kind is SourceKind.IPV4 else "CidrIpv6")
        return isinstance(held, str) and _network_text(held, _FAMILIES[self.kind]) == self.value

    def attributes(self) -> dict[str, str]:
        """What ``Fn::GetAtt`` reads: ``Source`` for every kind, and the kind's own property name."""
        named = {"Source": self.value, self.kind.value: self.value}
        if self.kind is SourceKind.SECURITY_GROUP:
            named[OWNER_PROPERTY] = self.owner
        return named

    def __str__(self) -> str:
        return f"{self.kind.value} {self.value}"


def parse_source(properties: Mapping[str, Any], stack_id: str) -> Source:
    """The one source the properties name; raises :class:`InvalidProperties` naming the property at fault."""
    named = [name for name in SOURCE_PROPERTIES if name in properties]
    if len(named) != 1:
        got = f"got {' and '.join(named)}" if named else "none is set"
        raise InvalidProperties(f"set exactly one of {', '.join(SOURCE_PROPERTIES)} to name who is let in; {got}")
    kind = SourceKind(named[0])
    value = properties[kind.value]
    if kind is not SourceKind.SECURITY_GROUP and OWNER_PROPERTY in properties:
        raise InvalidProperties(f"{OWNER_PROPERTY} applies only to SourceSecurityGroupId; remove it for {kind.value}")
    allow_any = _flag(properties, ALLOW_ANY_ADDRESS)
    if allow_any and kind not in (SourceKind.IPV4, SourceKind.IPV6):
        raise InvalidProperties(f"{ALLOW_ANY_ADDRESS} applies only to SourceCidrIp and SourceCidrIpv6")
    if kind is SourceKind.SECURITY_GROUP:
        return Source(kind, group_id(kind.value, value), owner_account(properties, OWNER_PROPERTY, stack_id))
    if kind is SourceKind.PREFIX_LIST:
        return Source(kind, prefix_list_id(kind.value, value))
    network = cidr(kind, value)
    if network.endswith("/0") and not allow_any:
        raise InvalidProperties(
            f"{kind.value} {network} lets in every address on the internet; "
            f'set {ALLOW_ANY_ADDRESS} to "true" as well if that is really meant'
        )
    return Source(kind, network)


def group_id(name: str, value: Any) -> str:
    """A security group id (``sg-`` and 8 or 17 hex digits), lower-cased: ids are case-insensitive in EC2."""
    return _resource_id(name, value, GROUP_ID, "a security group id such as sg-0123456789abcdef0", "sg-", "group")


def prefix_list_id(name: str, value: Any) -> str:
    """A managed prefix list id (``pl-`` and 8 or 17 hex digits), lower-cased."""
    wanted = "a managed prefix list id such as pl-0123456789abcdef0"
    return _resource_id(name, value, PREFIX_LIST_ID, wanted, "pl-", "prefix list")


def _resource_id(name: str, value: Any, pattern: re.Pattern[str], wanted: str, prefix: str, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidProperties(f"{name} must be {wanted}, got {kind_of(value)}")
    text = value.strip().lower()
    if not pattern.fullmatch(text):
        hint = f" (the {what}'s id, not its name)" if not text.startswith(prefix) else ""
        raise InvalidProperties(f"{name} must be {wanted}{hint}, got {shown(value)}")
    return text


def cidr(kind: SourceKind, value: Any) -> str:
    """A CIDR's canonical text; refused unless it is an address range's own network address and prefix length.

    ``10.0.0.5/8`` is refused rather than widened: the stack said one thing and
    EC2 would let in another. IPv6 may be spelled any way ipaddress reads
    (upper case, zeros written out); its canonical text is the shortest.
    """
    family = _FAMILIES[kind]
    wanted = f"an {family.name} CIDR such as {family.example}"
    if not isinstance(value, str):
        raise InvalidProperties(f"{kind.value} must be {wanted}, got {kind_of(value)}")
    if "/" not in value and _is_one_address(value, family):
        raise InvalidProperties(
            f"{kind.value} must be {wanted}: add the prefix length, {value}/{family.bits} for this one address"
        )
    if not family.pattern.fullmatch(value) or int(value.rsplit("/", 1)[1]) > family.bits:
        raise InvalidProperties(f"{kind.value} must be {wanted}, prefix length 0 to {family.bits}, got {shown(value)}")
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidProperties(f"{kind.value} must be {wanted}, got {shown(value)}") from None
    if network.version != family.version:
        raise InvalidProperties(f"{kind.value} must be {wanted}, got {shown(value)}")
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        # Python spells these differently from 3.13 on (::ffff:10.0.0.0/104, was ::ffff:a00:0/104), so
        # their canonical text, and the id, would depend on the runtime; EC2 sees an IPv4 client as IPv4.
        ipv4 = f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}"
        raise InvalidProperties(f"{kind.value} {shown(value)} is an IPv4 range; use SourceCidrIp: {ipv4}")
    if network.network_address != ipaddress.ip_address(value.rsplit("/", 1)[0]):
        raise InvalidProperties(
            f"{kind.value} {shown(value)} has bits set past its prefix length; its network is {network}: "
            "write that, or a longer prefix for a narrower range"
        )
    return str(network)


def _is_one_address(value: str, family: _Family) -> bool:
    """Whether ``value`` is one address of ``family``, to suggest its /32 or /128: adding one makes a CIDR.

    ipaddress reads an IPv6 zone (``fe80::1%eth0``), which no CIDR may carry.
    """
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return False
    return address.version == family.version


def _network_text(text: str, family: _Family) -> str | None:
    """The canonical text of a CIDR EC2 holds, or None if it is not one of ``family``'s."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    return str(network) if network.version == family.version else None


def _flag(properties: Mapping[str, Any], name: str) -> bool:
    """A yes/no property: ``"true"`` or ``"false"`` (any case), as CloudFormation sends a Boolean, or a JSON one."""
    value = properties.get(name)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    shown_value = shown(value) if isinstance(value, str) else kind_of(value)
    raise InvalidProperties(f'{name} must be "true" or "false", got {shown_value}')


def _decoded(text: str) -> Source | None:
    if text.startswith("sg-"):
        group, _, owner = text.partition("@")
        ok = GROUP_ID.fullmatch(group) and _ACCOUNT.fullmatch(owner)
        return Source(SourceKind.SECURITY_GROUP, group, owner) if ok else None
    if text.startswith("pl-"):
        return Source(SourceKind.PREFIX_LIST, text) if PREFIX_LIST_ID.fullmatch(text) else None
    kind = SourceKind.IPV6 if text.startswith("[") and text.endswith("]") else SourceKind.IPV4
    network = text[1:-1] if kind is SourceKind.IPV6 else text
    try:
        return Source(kind, cidr(kind, network))
    except InvalidProperties:
        return None
