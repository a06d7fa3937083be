"""What VPC mode reads of caches: cache clusters' and serverless caches' ports and security groups.

moto keeps replication groups and their ports but leaves out the security
groups of their member clusters, and has no serverless caches; the ElastiCache
stand-in answers these two Describe actions from this catalog instead, in the
query protocol's XML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape  # used to write XML; nothing here parses any  # nosec B406

from offline.query_protocol import ApiFault


@dataclass(frozen=True)
class Cache:
    """A cache cluster or serverless cache as VPC mode reads it: its ports, its VPC security groups, its NetworkType.

    ``network_type`` None reports none, as a cache made before ElastiCache's IPv6 support does.
    """

    name: str
    security_groups: tuple[str, ...]
    port: int | None = 6379
    reader_port: int | None = None  # serverless caches only
    replication_group: str | None = None
    network_type: str | None = None


@dataclass
class CacheCatalog:
    """The caches the stand-in knows, by name; the stand-in holds its lock around every use."""

    ACTIONS = frozenset({"DescribeCacheClusters", "DescribeServerlessCaches"})

    region: str
    account_id: str
    clusters: dict[str, Cache] = field(default_factory=dict)
    serverless: dict[str, Cache] = field(default_factory=dict)

    def describe_clusters(self, params: dict[str, str]) -> str:
        clusters = _pick(self.clusters, params.get("CacheClusterId"), "CacheClusterNotFound", "Cache cluster")
        show_nodes = params.get("ShowCacheNodeInfo") == "true"
        return f"<CacheClusters>{''.join(self._cluster_xml(c, show_nodes) for c in clusters)}</CacheClusters>"

    def _cluster_xml(self, cache: Cache, show_nodes: bool) -> str:
        address = f"{cache.name}.abc123.0001.use1.cache.amazonaws.com"
        nodes = (
            f"<CacheNodes><CacheNode><CacheNodeId>0001</CacheNodeId><CacheNodeStatus>available</CacheNodeStatus>"
            f"<Endpoint><Address>{address}</Address><Port>{cache.port}</Port></Endpoint></CacheNode></CacheNodes>"
            if show_nodes and cache.port
            else ""
        )
        groups = "".join(
            f"<member><SecurityGroupId>{g}</SecurityGroupId><Status>active</Status></member>"
            for g in cache.security_groups
        )
        group = f"<ReplicationGroupId>{cache.replication_group}</ReplicationGroupId>" if cache.replication_group else ""
        return (
            f"<CacheCluster><CacheClusterId>{escape(cache.name)}</CacheClusterId>"
            f"<CacheClusterStatus>available</CacheClusterStatus><Engine>redis</Engine>{group}{nodes}"
            f"{_network_type_xml(cache)}"
            f"<SecurityGroups>{groups}</SecurityGroups>"
            f"<ARN>arn:aws:elasticache:{self.region}:{self.account_id}:cluster:{escape(cache.name)}</ARN></CacheCluster>"
        )

    def describe_serverless(self, params: dict[str, str]) -> str:
        name = params.get("ServerlessCacheName")
        caches = _pick(self.serverless, name, "ServerlessCacheNotFoundFault", "Serverless cache")
        return f"<ServerlessCaches>{''.join(self._serverless_xml(c) for c in caches)}</ServerlessCaches>"

    def _serverless_xml(self, cache: Cache) -> str:
        address = f"{cache.name}-abc123.serverless.use1.cache.amazonaws.com"
        endpoints = "".join(
            f"<{tag}><Address>{address}</Address><Port>{port}</Port></{tag}>"
            for tag, port in (("Endpoint", cache.port), ("ReaderEndpoint", cache.reader_port))
            if port
        )
        groups = "".join(f"<SecurityGroupId>{g}</SecurityGroupId>" for g in cache.security_groups)
        return (
            f"<member><ServerlessCacheName>{escape(cache.name)}</ServerlessCacheName><Status>available</Status>"
            f"<Engine>valkey</Engine><SecurityGroupIds>{groups}</SecurityGroupIds>{endpoints}"
            f"{_network_type_xml(cache)}</member>"
        )


def _network_type_xml(cache: Cache) -> str:
    return f"<NetworkType>{escape(cache.network_type)}</NetworkType>" if cache.network_type else ""


def _pick(caches: dict[str, Cache], name: str | None, code: str, what: str) -> list[Cache]:
    """The cache ``name`` (or, without one, every cache, by name), as the Describe actions list them."""
    if name is not None and name not in caches:
        raise ApiFault(404, code, f"{what} {name} not found.")
    return [caches[name]] if name else sorted(caches.values(), key=lambda c: c.name)
