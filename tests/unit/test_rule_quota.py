"""How a grant's rules are counted against each target group's inbound-rule quota, as EC2 counts them."""

from __future__ import annotations

from typing import Any

import pytest

from cache_ingress import rule_quota
from cache_ingress.rule_quota import Overflow
from cache_ingress.sources import Source, SourceKind

GROUP = "sg-0000000000000000a"
LIST = "pl-0123456789abcdef0"
APP = Source(SourceKind.SECURITY_GROUP, "sg-0a1b2c3d4e5f60718", "123456789012")
OFFICE = Source(SourceKind.IPV4, "10.20.0.0/16")
VPN = Source(SourceKind.IPV6, "2001:db8:ab::/48")
AGENTS = Source(SourceKind.PREFIX_LIST, LIST)


def held(port: int = 22, protocol: str = "tcp", egress: bool = False, **source: Any) -> dict[str, Any]:
    """A DescribeSecurityGroupRules item: ``CidrIpv4=``, ``CidrIpv6=``, ``PrefixListId=`` or ``ReferencedGroupInfo=``."""
    return {"GroupId": GROUP, "IsEgress": egress, "IpProtocol": protocol, "FromPort": port, "ToPort": port, **source}


def ipv4(n: int) -> list[dict[str, Any]]:
    return [held(CidrIpv4=f"10.{i}.0.0/16") for i in range(n)]


def ipv6(n: int) -> list[dict[str, Any]]:
    return [held(CidrIpv6=f"2001:db8:{i:x}::/48") for i in range(n)]


def over(source: Source, rules: list[dict[str, Any]], ports: tuple[int, ...] = (6379,), quota: int = 60) -> Any:
    return rule_quota.overflow(source, ports, GROUP, rules, {LIST: 20}, quota)


def test_ipv4_and_ipv6_rules_are_counted_apart() -> None:
    assert over(OFFICE, ipv6(60)) is None
    assert over(VPN, ipv4(60)) is None
    assert over(OFFICE, ipv4(60)) == Overflow(GROUP, "IPv4", 61, 1, 60)
    assert over(VPN, ipv6(60)) == Overflow(GROUP, "IPv6", 61, 1, 60)


def test_a_rule_from_a_security_group_counts_for_ipv4_and_for_ipv6() -> None:
    groups = [held(ReferencedGroupInfo={"GroupId": f"sg-0000000{i}", "UserId": "123456789012"}) for i in range(59)]
    assert over(VPN, groups) is None
    assert over(VPN, [*groups, *ipv6(1)]) == Overflow(GROUP, "IPv6", 61, 1, 60)
    assert over(APP, ipv6(60)) == Overflow(GROUP, "IPv6", 61, 1, 60)


def test_a_prefix_list_weighs_its_maximum_entries_once_per_port_in_both_counts() -> None:
    assert over(AGENTS, ipv4(20), ports=(6379, 6380)) is None  # 20 + 2 x 20 = 60
    assert over(AGENTS, ipv4(21), ports=(6379, 6380)) == Overflow(GROUP, "IPv4", 61, 40, 60)
    assert over(AGENTS, ipv6(21), ports=(6379, 6380)) == Overflow(GROUP, "IPv6", 61, 40, 60)
    assert over(AGENTS, ipv4(21), ports=(6379,)) is None


def test_a_rule_already_referencing_a_prefix_list_weighs_its_size() -> None:
    listed = [held(PrefixListId=LIST.upper())]
    assert over(OFFICE, [*listed, *ipv4(39)]) is None
    assert over(OFFICE, [*listed, *ipv4(40)]) == Overflow(GROUP, "IPv4", 61, 1, 60)


def test_a_list_whose_size_ec2_does_not_show_counts_as_one() -> None:
    unknown = Source(SourceKind.PREFIX_LIST, "pl-0fffffffffffffff0")
    assert rule_quota.overflow(unknown, (6379,), GROUP, ipv4(59), {}, 60) is None
    assert rule_quota.overflow(unknown, (6379,), GROUP, ipv4(60), {}, 60) == Overflow(GROUP, "IPv4", 61, 1, 60)


def test_rules_the_grant_would_only_claim_weigh_nothing() -> None:
    same = [held(6379, PrefixListId=LIST), held(6380, PrefixListId=LIST)]
    assert over(AGENTS, [*same, *ipv4(20)], ports=(6379, 6380)) is None  # full, and nothing added
    one = [held(6379, PrefixListId=LIST), *ipv4(21)]
    assert over(AGENTS, one, ports=(6379, 6380)) == Overflow(GROUP, "IPv4", 61, 20, 60)  # only 6380 is added


@pytest.mark.parametrize(
    "other",
    [
        held(6379, protocol="udp", CidrIpv4="10.20.0.0/16"),
        held(6380, CidrIpv4="10.20.0.0/16"),
        {**held(6379, CidrIpv4="10.20.0.0/16"), "ToPort": 6380},
    ],
)
def test_a_rule_of_another_protocol_or_port_is_not_the_one_the_grant_makes(other: dict[str, Any]) -> None:
    assert over(OFFICE, [other, *ipv4(59)]) == Overflow(GROUP, "IPv4", 61, 1, 60)


def test_outbound_rules_do_not_count_and_a_family_the_grant_adds_nothing_to_is_never_refused() -> None:
    outbound = [held(egress=True, CidrIpv4=f"10.{i}.0.0/16") for i in range(80)]
    assert over(OFFICE, outbound) is None
    assert over(VPN, ipv4(70)) is None  # over already (a lowered quota, say): not this grant's doing


def test_the_prefix_lists_to_size_are_the_source_and_those_inbound_rules_reference() -> None:
    rules = [held(PrefixListId="PL-0AAAAAAAAAAAAAAA0"), held(egress=True, PrefixListId="pl-0bbbbbbbbbbbbbbb0")]
    assert rule_quota.prefix_lists_named(AGENTS, rules) == {LIST, "pl-0aaaaaaaaaaaaaaa0"}
    assert rule_quota.prefix_lists_named(OFFICE, ipv4(3)) == frozenset()


@pytest.mark.parametrize(("value", "quota"), [(60.0, 60), (200, 200), (None, None), (0.0, None), (True, None)])
def test_the_quota_is_a_whole_positive_number_of_rules(value: Any, quota: int | None) -> None:
    assert rule_quota.quota_of(value) == quota
