"""VPC mode's pure rules: which mode the properties ask for, the exact rules, their id, and what EC2's codes mean."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cache_ingress import classic_rules, vpc_rules
from cache_ingress.classic_rules import Ingress
from cache_ingress.errors import CacheUnusable, InvalidProperties
from cache_ingress.sources import Source, SourceKind
from cache_ingress.vpc_rules import CacheKind, CacheNetwork, CacheRef, RuleSet, VpcRequest
from tests.support import parse_request
from tests.unit.test_sources import sources

STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/cache-access/5b6a8e10"
SOURCE = "sg-0a1b2c3d4e5f60718"
VALID = {"ReplicationGroupId": "app-cache", "SourceSecurityGroupId": SOURCE}


def group(group_id: str = SOURCE, owner: str = "123456789012") -> Source:
    return Source(SourceKind.SECURITY_GROUP, group_id, owner)


def parse(**props: Any) -> VpcRequest:
    request = parse_request({**VALID, **props}, STACK, "AppCacheAccess")
    assert isinstance(request, VpcRequest)
    return request


def reason(props: dict[str, Any]) -> str:
    with pytest.raises(InvalidProperties) as caught:
        parse_request(props, STACK, "AppCacheAccess")
    return str(caught.value)


def test_a_cache_name_and_a_source_group_are_enough() -> None:
    assert parse() == VpcRequest(
        cache=CacheRef(CacheKind.REPLICATION_GROUP, "app-cache"),
        source=group(),
        port=None,
        targets=None,
        description="cache-sg-ingress: stack cache-access, resource AppCacheAccess",
    )


def test_classic_properties_still_mean_a_cache_security_group() -> None:
    request = parse_request({"CacheSecurityGroupName": "cache-sg", "EC2SecurityGroupName": "app"}, STACK, "X")
    assert request == Ingress("cache-sg", "app", "123456789012")


@pytest.mark.parametrize("name", vpc_rules.CACHE_PROPERTIES)
def test_each_way_of_naming_the_cache_picks_its_kind(name: str) -> None:
    request = parse_request({name: "my-cache", "SourceSecurityGroupId": SOURCE}, STACK, "X")
    assert isinstance(request, VpcRequest)
    assert request.cache == CacheRef(CacheKind(name), "my-cache")


def test_mixing_classic_and_vpc_properties_names_both_sides() -> None:
    message = reason({**VALID, "CacheSecurityGroupName": "cache-sg"})
    assert "CacheSecurityGroupName" in message
    assert "ReplicationGroupId" in message
    assert "cannot be mixed" in message


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        (
            {"SourceSecurityGroupId": SOURCE},
            "set exactly one of ReplicationGroupId, CacheClusterId, ServerlessCacheName",
        ),
        ({**VALID, "CacheClusterId": "c1"}, "got ReplicationGroupId and CacheClusterId"),
        ({"ReplicationGroupId": "app-cache"}, "set exactly one of SourceSecurityGroupId, SourceCidrIp"),
        ({**VALID, "ReplicationGroupId": "1cache"}, "ReplicationGroupId must start with a letter"),
        ({**VALID, "ReplicationGroupId": "a--b"}, "single hyphens"),
        ({**VALID, "SourceSecurityGroupId": "app-servers"}, "(the group's id, not its name)"),
        ({**VALID, "SourceSecurityGroupId": "sg-123"}, "SourceSecurityGroupId must be a security group id"),
        ({**VALID, "SourceSecurityGroupId": 7}, "got a number"),
        ({**VALID, "SourceSecurityGroupOwnerId": "12345"}, "SourceSecurityGroupOwnerId must be a 12-digit"),
        ({**VALID, "Port": "0"}, "Port must be a TCP port number from 1 to 65535, got '0'"),
        ({**VALID, "Port": "65536"}, "Port must be a TCP port number"),
        ({**VALID, "Port": "6379/tcp"}, "Port must be a TCP port number"),
        ({**VALID, "Port": True}, "got a boolean"),
        ({**VALID, "TargetSecurityGroupIds": "sg-0123abcd"}, "TargetSecurityGroupIds must be a list"),
        ({**VALID, "TargetSecurityGroupIds": []}, "leave it out to use the cache's own security groups"),
        ({**VALID, "TargetSecurityGroupIds": ["sg-0123abcd", "cache-sg"]}, "TargetSecurityGroupIds[1] must be"),
        ({**VALID, "TargetSecurityGroupIds": [f"sg-{i:08x}" for i in range(17)]}, "at most 16 security groups"),
        ({**VALID, "Description": "caf\u00e9 access"}, "Description may hold only"),
        ({**VALID, "Description": "x" * 256}, "Description must be at most 255 characters"),
        ({**VALID, "ReplicationGroupID": "x"}, "did you mean ReplicationGroupId?"),
        # Numbers are ASCII digits only: str.isdigit() takes all of these.
        ({**VALID, "Port": "\u00b2"}, "Port must be a TCP port number from 1 to 65535 in the digits 0-9"),
        ({**VALID, "Port": "\uff16\uff13\uff17\uff19"}, "Port must be a TCP port number"),
        ({**VALID, "Port": "\u0666\u0663\u0667\u0669"}, "Port must be a TCP port number"),
        ({**VALID, "Port": "6" * 5000}, "Port must be a TCP port number from 1 to 65535, got '666"),
        ({**VALID, "Port": 6379.0}, "Port must be a TCP port number from 1 to 65535, got a number"),
        (
            {
                **VALID,
                "SourceSecurityGroupOwnerId": "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662",
            },
            "SourceSecurityGroupOwnerId must be a 12-digit",
        ),
        ({**VALID, "ReplicationGroupId": "a" * 41}, "at most 40 characters"),
        ({"CacheClusterId": "a" * 51, "SourceSecurityGroupId": SOURCE}, "CacheClusterId must start with a letter"),
        ({"ServerlessCacheName": "a" * 41, "SourceSecurityGroupId": SOURCE}, "at most 40 characters"),
        (
            {"MemoryDBClusterName": "a" * 41, "SourceSecurityGroupId": SOURCE},
            "MemoryDBClusterName must start with a letter and hold only letters, digits and single hyphens, "
            "at most 40 characters",
        ),
        ({"MemoryDBClusterName": "1store", "SourceSecurityGroupId": SOURCE}, "MemoryDBClusterName must start"),
        ({"MemoryDBClusterName": "app--store", "SourceSecurityGroupId": SOURCE}, "MemoryDBClusterName must start"),
        ({"MemoryDBClusterName": "app-store-", "SourceSecurityGroupId": SOURCE}, "MemoryDBClusterName must start"),
        ({"MemoryDBClusterName": "app_store", "SourceSecurityGroupId": SOURCE}, "MemoryDBClusterName must start"),
        (
            {"MemoryDBClusterName": ["app-store"], "SourceSecurityGroupId": SOURCE},
            "MemoryDBClusterName must be a string",
        ),
        ({"MemoryDBClusterName": " ", "SourceSecurityGroupId": SOURCE}, "MemoryDBClusterName must not be empty"),
        ({**VALID, "MemoryDBClusterName": "app-store"}, "got ReplicationGroupId and MemoryDBClusterName"),
        ({"SourceSecurityGroupId": SOURCE}, "ServerlessCacheName, MemoryDBClusterName to name the cache; none is set"),
        ({**VALID, "Description": 7}, "Description must be a string, got a number"),
        ({**VALID, "ServiceTimeout": "0"}, "ServiceTimeout must be a number of seconds from 1 to 3600"),
        ({**VALID, "ServiceTimeout": "3601"}, "ServiceTimeout must be a number of seconds from 1 to 3600"),
        ({**VALID, "ServiceTimeout": "5m"}, "ServiceTimeout must be a number of seconds"),
        ("app-cache", "ResourceProperties must be a map of property names to strings, got a string"),
    ],
)
def test_bad_input_is_refused_with_a_reason_naming_the_property(props: dict[str, Any], expected: str) -> None:
    assert expected in reason(props)


def test_a_cache_cluster_id_may_have_the_50_characters_aws_allows() -> None:
    name = "c" + "-a" * 24 + "b"
    request = parse_request({"CacheClusterId": name, "SourceSecurityGroupId": SOURCE}, STACK, "X")
    assert isinstance(request, VpcRequest)
    assert (len(name), request.cache.name) == (50, name)


def test_a_memorydb_cluster_name_may_have_40_characters_and_is_looked_up_in_lower_case() -> None:
    """MemoryDB keeps names in lower case: a stack may spell one as it was created, and it is still found."""
    name = "App-" + "s" * 36
    request = parse_request({"MemoryDBClusterName": name, "SourceSecurityGroupId": SOURCE}, STACK, "X")
    assert isinstance(request, VpcRequest)
    assert (len(name), str(request.cache), request.cache.lookup_name) == (
        40,
        f"MemoryDBClusterName {name!r}",
        name.lower(),
    )
    elasticache = parse(ReplicationGroupId="App-Cache").cache
    assert elasticache.lookup_name == "App-Cache"  # ElastiCache's names go as the stack spells them, as before


def test_a_memorydb_name_in_another_case_asks_for_the_same_rules_an_elasticache_one_as_before() -> None:
    """MemoryDB has one cluster for both spellings; ElastiCache's names are taken as written (see above)."""

    def cluster(name: str, **props: str) -> VpcRequest:
        request = parse_request({"MemoryDBClusterName": name, "SourceSecurityGroupId": SOURCE, **props}, STACK, "X")
        assert isinstance(request, VpcRequest)
        return request

    assert vpc_rules.same_asked(cluster("Store"), cluster("store", Description="d"))
    assert not vpc_rules.same_asked(cluster("Store"), cluster("stores"))
    assert not vpc_rules.same_asked(parse(ReplicationGroupId="App-Cache"), parse(ReplicationGroupId="app-cache"))


def test_a_memorydb_cluster_opens_its_cluster_endpoint_port_into_its_security_groups() -> None:
    cluster = {
        "Name": "app-store",
        "Status": "available",
        "ClusterEndpoint": {"Address": "clustercfg.app-store.abc123.memorydb.us-east-1.amazonaws.com", "Port": 6390},
        "SecurityGroups": [
            {"SecurityGroupId": "sg-0000000b", "Status": "active"},
            {"SecurityGroupId": "sg-0000000a", "Status": "active"},
        ],
    }
    assert vpc_rules.network_of_memorydb_cluster(cluster) == CacheNetwork((6390,), ("sg-0000000a", "sg-0000000b"))
    creating = {"Name": "app-store", "Status": "creating", "SecurityGroups": [{"SecurityGroupId": "sg-0000000a"}]}
    assert vpc_rules.network_of_memorydb_cluster(creating) == CacheNetwork((), ("sg-0000000a",))
    request = parse_request(
        {"MemoryDBClusterName": "app-store", "SourceSecurityGroupId": SOURCE, "Port": "6379"}, STACK, "X"
    )
    with pytest.raises(InvalidProperties) as caught:
        vpc_rules.resolve(request, vpc_rules.network_of_memorydb_cluster(cluster))
    assert str(caught.value) == "Port 6379 is not an endpoint port of MemoryDBClusterName 'app-store', which has 6390"
    with pytest.raises(CacheUnusable, match="MemoryDBClusterName 'app-store' has no endpoint port yet"):
        vpc_rules.resolve(request, vpc_rules.network_of_memorydb_cluster(creating))


def test_numbers_given_as_json_numbers_are_read_like_their_digits() -> None:
    request = parse(Port=6380, SourceSecurityGroupOwnerId=210987654321, ServiceTimeout=300)
    assert (request.port, request.source.owner) == (6380, "210987654321")


def test_ids_and_ports_are_read_as_cloudformation_sends_them() -> None:
    request = parse(
        Port="6380",
        SourceSecurityGroupOwnerId="2109-8765-4321",
        SourceSecurityGroupId="SG-0A1B2C3D4E5F60718",
        TargetSecurityGroupIds=["sg-0000000b", "sg-0000000a", "sg-0000000b"],
        Description="app servers: sessions cache (port 6380)",
    )
    assert (request.port, request.source) == (6380, group(SOURCE, "210987654321"))
    assert request.targets == ("sg-0000000a", "sg-0000000b")
    assert request.description == "app servers: sessions cache (port 6380)"


def test_properties_narrow_what_discovery_found() -> None:
    network = CacheNetwork(ports=(6379, 6380), security_groups=("sg-0000000a", "sg-0000000c"))
    everything = RuleSet(group(SOURCE, "123456789012"), (6379, 6380), ("sg-0000000a", "sg-0000000c"))
    assert vpc_rules.resolve(parse(), network) == everything
    pinned = parse(Port="6380", TargetSecurityGroupIds=["sg-0000000c"])
    assert vpc_rules.resolve(pinned, network) == RuleSet(group(SOURCE, "123456789012"), (6380,), ("sg-0000000c",))


def test_a_port_the_cache_does_not_serve_is_refused_naming_the_cache_and_its_ports() -> None:
    network = CacheNetwork(ports=(6379, 6380), security_groups=("sg-0000000a",))
    with pytest.raises(InvalidProperties) as caught:
        vpc_rules.resolve(parse(Port="22"), network)
    assert str(caught.value) == (
        "Port 22 is not an endpoint port of ReplicationGroupId 'app-cache', which has 6379, 6380"
    )


def test_target_groups_the_cache_is_not_in_are_refused_naming_the_cache_and_its_groups() -> None:
    network = CacheNetwork(ports=(6379,), security_groups=("sg-0000000a", "sg-0000000b"))
    with pytest.raises(InvalidProperties) as caught:
        vpc_rules.resolve(parse(TargetSecurityGroupIds=["sg-0000000a", "sg-0000000c"]), network)
    assert str(caught.value) == (
        "TargetSecurityGroupIds sg-0000000c are not attached to ReplicationGroupId 'app-cache', "
        "which has sg-0000000a, sg-0000000b"
    )


def test_a_cache_without_port_or_groups_is_unusable_whatever_the_properties() -> None:
    with pytest.raises(CacheUnusable, match="no endpoint port yet"):
        vpc_rules.resolve(parse(Port="6379"), CacheNetwork((), ("sg-0000000a",)))
    with pytest.raises(CacheUnusable, match="no VPC security groups"):
        vpc_rules.resolve(parse(TargetSecurityGroupIds=["sg-0000000a"]), CacheNetwork((6379,), ()))


def ranged(**source: str) -> VpcRequest:
    """The replication group's request for a CIDR instead of a group."""
    props = {k: v for k, v in VALID.items() if k != "SourceSecurityGroupId"}
    request = parse_request({**props, **source}, STACK, "AppCacheAccess")
    assert isinstance(request, VpcRequest)
    return request


@pytest.mark.parametrize(
    ("source", "network_type", "other_property"),
    [
        ({"SourceCidrIpv6": "2001:db8:ab::/48"}, "ipv4", "SourceCidrIp"),
        ({"SourceCidrIp": "10.20.0.0/16"}, "ipv6", "SourceCidrIpv6"),
    ],
)
def test_a_cidr_of_an_ip_version_the_cache_has_no_address_in_is_refused_naming_both(
    source: dict[str, str], network_type: str, other_property: str
) -> None:
    network = CacheNetwork((6379,), ("sg-0000000a",), network_type)
    with pytest.raises(InvalidProperties) as caught:
        vpc_rules.resolve(ranged(**source), network)
    ((name, value),) = source.items()
    assert str(caught.value).startswith(
        f"{name} {value} cannot reach ReplicationGroupId 'app-cache': its NetworkType is {network_type}"
    )
    assert other_property in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        {"SourceCidrIpv6": "2001:db8:ab::/48"},
        {"SourceCidrIp": "10.20.0.0/16"},
        {"SourcePrefixListId": "pl-0123456789abcdef0"},
        {"SourceSecurityGroupId": SOURCE},
    ],
)
def test_a_dual_stack_cache_takes_every_kind_of_source(source: dict[str, str]) -> None:
    rule_set = vpc_rules.resolve(ranged(**source), CacheNetwork((6379,), ("sg-0000000a",), "dual_stack"))
    assert rule_set.targets == ("sg-0000000a",)


def test_groups_and_prefix_lists_reach_a_single_stack_cache_of_either_version() -> None:
    for network_type in ("ipv4", "ipv6"):
        network = CacheNetwork((6379,), ("sg-0000000a",), network_type)
        assert vpc_rules.resolve(parse(), network).ports == (6379,)
        assert vpc_rules.resolve(ranged(SourcePrefixListId="pl-0123456789abcdef0"), network).ports == (6379,)


def test_the_network_type_is_read_from_every_kind_of_cache_and_is_ipv4_when_not_reported() -> None:
    endpoint = {"Port": 6379}
    member = {"SecurityGroups": [{"SecurityGroupId": "sg-0000000a"}], "NetworkType": "ipv6"}
    group = {"NodeGroups": [{"PrimaryEndpoint": endpoint}], "NetworkType": "dual_stack"}
    assert vpc_rules.network_of_replication_group(group, member).network_type == "dual_stack"
    assert vpc_rules.network_of_replication_group({"NodeGroups": []}, member).network_type == "ipv6"
    assert vpc_rules.network_of_cache_cluster({"NetworkType": "ipv6"}).network_type == "ipv6"
    assert vpc_rules.network_of_serverless_cache({"NetworkType": "dual_stack"}).network_type == "dual_stack"
    assert vpc_rules.network_of_memorydb_cluster({"NetworkType": "dual-stack"}).network_type == "dual_stack"
    assert vpc_rules.network_of_memorydb_cluster({}).network_type == "ipv4"
    assert vpc_rules.network_of_cache_cluster({"CacheNodes": []}).network_type == "ipv4"


group_ids = st.from_regex(r"\Asg-([0-9a-f]{8}|[0-9a-f]{17})\Z")
rule_sets = st.builds(
    RuleSet.of,
    sources(),
    st.lists(st.integers(1, 65535), min_size=1, max_size=4),
    st.lists(group_ids, min_size=1, max_size=vpc_rules.MAX_TARGETS),
)


@given(rule_sets)
def test_the_id_decodes_to_exactly_the_rules_and_fits_cloudformation(rule_set: RuleSet) -> None:
    assert vpc_rules.parse_physical_id(rule_set.physical_id) == rule_set
    assert classic_rules.parse_physical_id(rule_set.physical_id) is None
    assert len(rule_set.physical_id.encode()) <= 1024


def test_the_id_reads_as_the_rules() -> None:
    rule_set = RuleSet.of(group(SOURCE, "123456789012"), [6380, 6379], ["sg-0000000b", "sg-0000000a"])
    assert rule_set.physical_id == f"cache-vpc-ingress:{SOURCE}@123456789012:6379,6380:sg-0000000a,sg-0000000b"


@pytest.mark.parametrize(
    "physical_id",
    [
        f"cache-vpc-ingress:{SOURCE}@123456789012:6380,6379:sg-0000000a",  # ports out of order
        f"cache-vpc-ingress:{SOURCE}@123456789012:6379:sg-0000000b,sg-0000000a",  # groups out of order
        f"cache-vpc-ingress:{SOURCE}@123456789012:6379,6379:sg-0000000a",  # a repeat
        f"cache-vpc-ingress:{SOURCE}@123456789012:70000:sg-0000000a",
        f"cache-vpc-ingress:{SOURCE}@123456789012:06379:sg-0000000a",
        "cache-vpc-ingress:sg-123@123456789012:6379:sg-0000000a",
        "cache-sg-ingress:app-cache-sg:123456789012:app-servers",
        "cache-access-AppCacheAccess-1A2B3C4D5E6F",
    ],
)
def test_only_canonical_ids_of_ours_decode(physical_id: str) -> None:
    assert vpc_rules.parse_physical_id(physical_id) is None


def test_rules_shared_with_another_rule_set_need_the_same_source() -> None:
    old = RuleSet.of(group(SOURCE, "123456789012"), [6379], ["sg-0000000a", "sg-0000000b"])
    new = RuleSet.of(group(SOURCE, "123456789012"), [6379, 6380], ["sg-0000000a"])
    assert old.shared_with(new) == {("sg-0000000a", 6379)}
    other_source = RuleSet.of(group("sg-0000000f"), [6379], ["sg-0000000a"])
    assert old.shared_with(other_source) == frozenset()
    assert old.shared_with(None) == frozenset()


def test_replication_group_ports_come_from_its_endpoints_and_groups_from_a_member() -> None:
    cluster_mode = {"ConfigurationEndpoint": {"Address": "cfg.example", "Port": 6390}, "NodeGroups": []}
    member = {"SecurityGroups": [{"SecurityGroupId": "sg-0000000b", "Status": "active"}]}
    assert vpc_rules.network_of_replication_group(cluster_mode, member) == CacheNetwork((6390,), ("sg-0000000b",))
    one_shard = {"NodeGroups": [{"PrimaryEndpoint": {"Address": "p.example", "Port": 6379}}]}
    assert vpc_rules.network_of_replication_group(one_shard, None) == CacheNetwork((6379,), ())


def test_cache_cluster_ports_come_from_the_configuration_or_node_endpoints() -> None:
    memcached = {
        "ConfigurationEndpoint": {"Port": 11211},
        "CacheNodes": [{"Endpoint": {"Port": 11211}}],
        "SecurityGroups": [{"SecurityGroupId": "sg-0000000b"}, {"SecurityGroupId": "sg-0000000a"}],
    }
    assert vpc_rules.network_of_cache_cluster(memcached) == CacheNetwork((11211,), ("sg-0000000a", "sg-0000000b"))
    creating = {"CacheClusterStatus": "creating", "CacheNodes": [{"CacheNodeStatus": "creating"}]}
    assert vpc_rules.network_of_cache_cluster(creating) == CacheNetwork((), ())


def test_a_serverless_cache_opens_its_endpoint_and_reader_endpoint_ports() -> None:
    cache = {"Endpoint": {"Port": 6379}, "ReaderEndpoint": {"Port": 6380}, "SecurityGroupIds": ["sg-0000000a"]}
    assert vpc_rules.network_of_serverless_cache(cache) == CacheNetwork((6379, 6380), ("sg-0000000a",))


def test_permissions_are_one_tcp_port_each_from_the_source_group() -> None:
    rule_set = RuleSet.of(group(SOURCE, "210987654321"), [6379, 6380], ["sg-0000000a"])
    pair = {"GroupId": SOURCE, "UserId": "210987654321"}
    assert vpc_rules.ip_permissions(rule_set, [6379], "d") == [
        {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [{**pair, "Description": "d"}]}
    ]
    both = vpc_rules.ip_permissions(rule_set, [6379, 6380], "d")
    assert [(p["FromPort"], p["UserIdGroupPairs"]) for p in both] == [
        (6379, [{**pair, "Description": "d"}]),
        (6380, [{**pair, "Description": "d"}]),
    ]
