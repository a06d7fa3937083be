"""The rules of VPC mode, as pure functions: no AWS calls, no I/O.

Today's caches live in a VPC and are reached through VPC security groups, so
"let my application reach that cache" means EC2 ingress rules: TCP on the
cache's port(s), from the application's security group, into each security
group attached to the cache. The properties name the cache; what its ports
and groups are is read from ElastiCache or MemoryDB (:mod:`cache_ingress.aws_api`)
and handed to :func:`resolve` here, which decides the exact rules.

The physical id is those rules, canonically encoded, so Delete takes back
exactly what was authorized even after the cache has changed or is gone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from itertools import product
from typing import Any

from .errors import CacheUnusable, InvalidProperties
from .properties import check_known, check_map, digits, kind_of, required_string, shown, stack_name
from .sources import (
    ALLOW_ANY_ADDRESS,
    GROUP_ID,
    OWNER_PROPERTY,
    SOURCE_PROPERTIES,
    Source,
    SourceKind,
    group_id,
    parse_source,
)

ID_PREFIX = "cache-vpc-ingress"
#: Names of the cache, one of which a VPC-mode resource sets.
CACHE_PROPERTIES = ("ReplicationGroupId", "CacheClusterId", "ServerlessCacheName", "MemoryDBClusterName")
KNOWN_PROPERTIES = (
    *CACHE_PROPERTIES,
    *SOURCE_PROPERTIES,
    OWNER_PROPERTY,
    ALLOW_ANY_ADDRESS,
    "Port",
    "TargetSecurityGroupIds",
    "Description",
)
#: A cache's network interfaces take at most 16 security groups; the limit also keeps the id well inside 1 KB.
MAX_TARGETS = 16
MAX_DESCRIPTION = 255

# ElastiCache ids: a letter, then letters, digits and single hyphens, no hyphen last.
_CACHE_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?=[A-Za-z0-9]))*")
# What EC2 accepts in a rule description.
_DESCRIPTION = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*")
# The source is everything before the last two fields: an IPv6 CIDR holds colons of its own.
_ID = re.compile(
    rf"{ID_PREFIX}:(?P<source>[^,]+):(?P<ports>[0-9]{{1,5}}(?:,[0-9]{{1,5}})*):(?P<targets>sg-[0-9a-f]+(?:,sg-[0-9a-f]+)*)"
)


class CacheKind(Enum):
    """How the cache is named, which decides the Describe call that finds it (ElastiCache's, or MemoryDB's)."""

    REPLICATION_GROUP = "ReplicationGroupId"
    CACHE_CLUSTER = "CacheClusterId"
    SERVERLESS = "ServerlessCacheName"
    MEMORYDB = "MemoryDBClusterName"

    @property
    def max_length(self) -> int:
        """AWS's limit on the name: 50 characters for a cache cluster, 40 for the others (a MemoryDB cluster's too)."""
        return 50 if self is CacheKind.CACHE_CLUSTER else 40


@dataclass(frozen=True)
class CacheRef:
    kind: CacheKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind.value} {self.name!r}"

    @property
    def lookup_name(self) -> str:
        """The name the Describe call is given.

        MemoryDB keeps a cluster's name in lower case whatever case it was
        created with (its developer guide: resource names in ARNs are lower
        case), so a MemoryDB name is looked up in lower case; the reasons
        still show it as the stack spells it. ElastiCache names go as given.
        """
        return self.name.lower() if self.kind is CacheKind.MEMORYDB else self.name

    def same_cache(self, other: CacheRef) -> bool:
        """Whether the two name one cache: a MemoryDB name respelt in another case still does."""
        return (self.kind, self.lookup_name) == (other.kind, other.lookup_name)


@dataclass(frozen=True)
class VpcRequest:
    """What the properties ask for; ``port`` and ``targets`` are None where discovery fills them in."""

    cache: CacheRef
    source: Source
    port: int | None
    targets: tuple[str, ...] | None
    description: str


#: A cache's NetworkType (ElastiCache's replication groups, cache clusters and serverless caches, and
#: MemoryDB's clusters all report one): which IP versions its endpoints answer on.
IPV4_ONLY, IPV6_ONLY, DUAL_STACK = "ipv4", "ipv6", "dual_stack"


@dataclass(frozen=True)
class CacheNetwork:
    """What ElastiCache says about a cache's network: its endpoint ports, its VPC security groups, its IP versions.

    ``network_type`` is the cache's NetworkType. One that is not reported is
    ``ipv4``: it is the default of every Create call that takes one, and a cache
    made before IPv6 support (ElastiCache's, November 2022) reports none and
    has IPv4 addresses only.
    """

    ports: tuple[int, ...]
    security_groups: tuple[str, ...]
    network_type: str = IPV4_ONLY


@dataclass(frozen=True)
class RuleSet:
    """TCP ingress from ``source`` on each of ``ports`` into each of ``targets``.

    Fields are sorted and without repeats, so equal rule sets have equal ids.
    """

    source: Source
    ports: tuple[int, ...]
    targets: tuple[str, ...]

    @classmethod
    def of(cls, source: Source, ports: Iterable[int], targets: Iterable[str]) -> RuleSet:
        return cls(source, tuple(sorted(set(ports))), tuple(sorted(set(targets))))

    @property
    def physical_id(self) -> str:
        """``cache-vpc-ingress:<source>:<ports>:<targets>``; at most about 450 characters.

        The source is ``sg-…@<account>`` (as in every id before other kinds of source), ``10.0.0.0/8``,
        ``[2001:db8::/32]`` or ``pl-…``.
        """
        ports = ",".join(str(p) for p in self.ports)
        return f"{ID_PREFIX}:{self.source.id_part}:{ports}:{','.join(self.targets)}"

    def rules(self) -> frozenset[tuple[str, int]]:
        """Each (target group, port) pair: one EC2 ingress rule each."""
        return frozenset(product(self.targets, self.ports))

    def shared_with(self, other: RuleSet | None) -> frozenset[tuple[str, int]]:
        """The rules ``other`` names too; a Delete leaves them to it."""
        if other is None or other.source != self.source:
            return frozenset()
        return self.rules() & other.rules()

    def attributes(self) -> dict[str, str]:
        """What ``Fn::GetAtt`` reads: lists comma-joined, since attributes are strings."""
        return {
            **self.source.attributes(),
            "Port": str(self.ports[0]),
            "Ports": ",".join(str(p) for p in self.ports),
            "TargetSecurityGroupIds": ",".join(self.targets),
        }


def parse_properties(given: Any, stack_id: str, logical_id: str) -> VpcRequest:
    """Check VPC-mode ResourceProperties; raise :class:`InvalidProperties` naming the property at fault."""
    properties = check_map(given)
    check_known(properties, KNOWN_PROPERTIES)
    named = [name for name in CACHE_PROPERTIES if name in properties]
    if len(named) != 1:
        given = f"got {' and '.join(named)}" if named else "none is set"
        raise InvalidProperties(f"set exactly one of {', '.join(CACHE_PROPERTIES)} to name the cache; {given}")
    kind = CacheKind(named[0])
    cache_name = required_string(properties, kind.value)
    if not _CACHE_NAME.fullmatch(cache_name) or len(cache_name) > kind.max_length:
        raise InvalidProperties(
            f"{kind.value} must start with a letter and hold only letters, digits and single hyphens, "
            f"at most {kind.max_length} characters, got {shown(cache_name, 60)}"
        )
    return VpcRequest(
        cache=CacheRef(kind, cache_name),
        source=parse_source(properties, stack_id),
        port=_port(properties.get("Port")),
        targets=_targets(properties.get("TargetSecurityGroupIds")),
        description=_description(properties.get("Description"), stack_id, logical_id),
    )


def same_asked(one: VpcRequest, other: VpcRequest) -> bool:
    """Whether two requests must resolve to the same rules: they differ at most in their description.

    And in the case of a MemoryDB name, which names one cluster whatever its case: an Update that only
    respells it, while the cluster is gone, is then kept to the held id like a Description change.
    """
    return one.cache.same_cache(other.cache) and replace(one, description=other.description, cache=other.cache) == other


def could_name(request: VpcRequest, rule_set: RuleSet) -> bool:
    """Whether the request could resolve to exactly these rules, whatever the cache says: what it sets matches."""
    return (
        request.source == rule_set.source
        and (request.port is None or rule_set.ports == (request.port,))
        and (request.targets is None or rule_set.targets == request.targets)
    )


def _port(value: Any) -> int | None:
    if value is None:
        return None
    wanted = "a TCP port number from 1 to 65535"
    text = digits(value, "Port", wanted)
    if len(text) > 5 or not 1 <= int(text) <= 65535:
        raise InvalidProperties(f"Port must be {wanted}, got {shown(text)}")
    return int(text)


def _targets(value: Any) -> tuple[str, ...] | None:
    name = "TargetSecurityGroupIds"
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidProperties(f"{name} must be a list of security group ids, got {kind_of(value)}")
    if not value:
        raise InvalidProperties(f"{name} must not be empty; leave it out to use the cache's own security groups")
    if len(value) > MAX_TARGETS:
        raise InvalidProperties(f"{name} may hold at most {MAX_TARGETS} security groups, got {len(value)}")
    return tuple(sorted({group_id(f"{name}[{i}]", item) for i, item in enumerate(value)}))


def _description(value: Any, stack_id: str, logical_id: str) -> str:
    if value is None:
        return default_description(stack_id, logical_id)
    if not isinstance(value, str):
        raise InvalidProperties(f"Description must be a string, got {kind_of(value)}")
    if len(value) > MAX_DESCRIPTION:
        raise InvalidProperties(f"Description must be at most {MAX_DESCRIPTION} characters, got {len(value)}")
    if not _DESCRIPTION.fullmatch(value):
        bad = sorted({c for c in value if not _DESCRIPTION.fullmatch(c)})
        raise InvalidProperties(
            "Description may hold only letters, digits, spaces and ._-:/()#,@[]+=&;{}!$* "
            f"(what EC2 accepts); found {''.join(bad)!r}"
        )
    return value


def resolve(request: VpcRequest, network: CacheNetwork) -> RuleSet:
    """The exact rules: what the cache has, narrowed by the properties where given.

    An explicit ``Port`` must be one of the cache's endpoint ports and
    ``TargetSecurityGroupIds`` groups attached to it: otherwise naming any
    cache would open any port into any group (SSH into a bastion's, say).
    """
    if not network.ports:
        raise CacheUnusable(
            f"{request.cache} has no endpoint port yet (is it still being created?); retry once it is available"
        )
    if not network.security_groups:
        raise CacheUnusable(
            f"{request.cache} has no VPC security groups (a cache outside a VPC?); attach one to the cache first"
        )
    _check_ip_version(request, network)
    ports = network.ports
    if request.port is not None:
        if request.port not in network.ports:
            raise InvalidProperties(
                f"Port {request.port} is not an endpoint port of {request.cache}, "
                f"which has {_listed(str(p) for p in network.ports)}"
            )
        ports = (request.port,)
    targets = network.security_groups
    if request.targets is not None:
        foreign = [t for t in request.targets if t not in network.security_groups]
        if foreign:
            raise InvalidProperties(
                f"TargetSecurityGroupIds {_listed(foreign)} are not attached to {request.cache}, "
                f"which has {_listed(network.security_groups)}"
            )
        targets = request.targets
    return RuleSet.of(request.source, ports, targets)


def _check_ip_version(request: VpcRequest, network: CacheNetwork) -> None:
    """Refuse a CIDR of an IP version the cache has no address in: its rule would let nothing in.

    A security group or a prefix list may hold either version, so only the CIDRs are checked.
    """
    kind = request.source.kind
    if (kind, network.network_type) == (SourceKind.IPV6, IPV4_ONLY):
        raise InvalidProperties(
            f"{request.source} cannot reach {request.cache}: its NetworkType is {IPV4_ONLY}, so it has no IPv6 "
            "address to connect to. Let in the clients' IPv4 range with SourceCidrIp (or their security group "
            f"with SourceSecurityGroupId), or use a cache whose NetworkType is {DUAL_STACK}"
        )
    if (kind, network.network_type) == (SourceKind.IPV4, IPV6_ONLY):
        raise InvalidProperties(
            f"{request.source} cannot reach {request.cache}: its NetworkType is {IPV6_ONLY}, so it has no IPv4 "
            "address to connect to. Let in the clients' IPv6 range with SourceCidrIpv6 (or their security group "
            f"with SourceSecurityGroupId), or use a cache whose NetworkType is {DUAL_STACK}"
        )


def _listed(items: Iterable[str]) -> str:
    return ", ".join(items)


def default_description(stack_id: str, logical_id: str) -> str:
    """The rule description when the Description property is not set: which stack and resource made the rule."""
    stack = stack_name(stack_id) or "unknown-stack"
    return f"cache-sg-ingress: stack {stack}, resource {logical_id}"[:MAX_DESCRIPTION]


def parse_physical_id(physical_id: Any) -> RuleSet | None:
    """The rule set an id of ours names, or None: only canonical ids decode, so each rule set has one id."""
    match = _ID.fullmatch(physical_id) if isinstance(physical_id, str) else None
    if match is None:
        return None
    source = Source.from_id_part(match["source"])
    ports = [int(p) for p in match["ports"].split(",")]
    targets = match["targets"].split(",")
    if not (
        source is not None
        and all(GROUP_ID.fullmatch(t) for t in targets)
        and all(1 <= p <= 65535 for p in ports)
        and len(targets) <= MAX_TARGETS
    ):
        return None
    rule_set = RuleSet.of(source, ports, targets)
    return rule_set if rule_set.physical_id == physical_id else None


# -- what ElastiCache's and MemoryDB's Describe answers say about a cache's network ----------


def network_of_replication_group(group: Mapping[str, Any], member: Mapping[str, Any] | None) -> CacheNetwork:
    """Ports from the configuration endpoint (cluster mode) or each shard's primary endpoint.

    The security groups are set for the whole group and shown only on its
    member clusters, so one member tells them.
    """
    ports = [_endpoint_port(group.get("ConfigurationEndpoint"))]
    ports += [_endpoint_port(shard.get("PrimaryEndpoint")) for shard in group.get("NodeGroups") or []]
    network_type = _network_type(group.get("NetworkType") or (member or {}).get("NetworkType"))
    return CacheNetwork(_ports(ports), _cluster_groups(member or {}), network_type)


def network_of_cache_cluster(cluster: Mapping[str, Any]) -> CacheNetwork:
    """Ports from the configuration endpoint (Memcached) or each node's endpoint."""
    ports = [_endpoint_port(cluster.get("ConfigurationEndpoint"))]
    ports += [_endpoint_port(node.get("Endpoint")) for node in cluster.get("CacheNodes") or []]
    return CacheNetwork(_ports(ports), _cluster_groups(cluster), _network_type(cluster.get("NetworkType")))


def network_of_serverless_cache(cache: Mapping[str, Any]) -> CacheNetwork:
    """The endpoint's port and the reader endpoint's, which differ (6379 and 6380 by default)."""
    ports = [_endpoint_port(cache.get("Endpoint")), _endpoint_port(cache.get("ReaderEndpoint"))]
    groups = [g for g in cache.get("SecurityGroupIds") or [] if isinstance(g, str)]
    return CacheNetwork(_ports(ports), tuple(sorted(set(groups))), _network_type(cache.get("NetworkType")))


def network_of_memorydb_cluster(cluster: Mapping[str, Any]) -> CacheNetwork:
    """The cluster endpoint's port (every node of a MemoryDB cluster serves on it) and its security groups.

    A cluster still being created has no endpoint yet, so no port: :func:`resolve` calls it unusable.
    """
    port = _endpoint_port(cluster.get("ClusterEndpoint"))
    return CacheNetwork(_ports([port]), _cluster_groups(cluster), _network_type(cluster.get("NetworkType")))


def _network_type(value: Any) -> str:
    """NetworkType as reported, ``ipv4`` when absent; MemoryDB's documentation also spells ``dual-stack``."""
    return value.strip().lower().replace("-", "_") if isinstance(value, str) and value.strip() else IPV4_ONLY


def _endpoint_port(endpoint: Any) -> int | None:
    port = endpoint.get("Port") if isinstance(endpoint, Mapping) else None
    return port if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535 else None


def _ports(ports: Iterable[int | None]) -> tuple[int, ...]:
    return tuple(sorted({p for p in ports if p is not None}))


def _cluster_groups(cluster: Mapping[str, Any]) -> tuple[str, ...]:
    groups = {
        g["SecurityGroupId"]
        for g in cluster.get("SecurityGroups") or []
        if isinstance(g, Mapping) and isinstance(g.get("SecurityGroupId"), str)
    }
    return tuple(sorted(groups))


# -- what EC2 and ElastiCache error codes mean ----------------------------------------------

#: Describe errors that mean "no such cache" (the last is MemoryDB's DescribeClusters).
CACHE_NOT_FOUND_CODES = frozenset(
    {"ReplicationGroupNotFoundFault", "CacheClusterNotFound", "ServerlessCacheNotFoundFault", "ClusterNotFoundFault"}
)

#: Lookups refused for lack of permission (an IAM policy, an SCP): nothing was looked up.
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def ip_permissions(rule_set: RuleSet, ports: Iterable[int], description: str) -> list[dict[str, Any]]:
    """EC2 IpPermissions for ``ports`` of the rule set: TCP, one port each, from the source."""
    return [{"IpProtocol": "tcp", "FromPort": p, "ToPort": p, **rule_set.source.permission(description)} for p in ports]
