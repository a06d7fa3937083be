"""VPC mode through lambda_handler, call by call: ElastiCache and EC2 are botocore Stubbers.

Each test spells out the calls EC2 sees, claims included, so what a rule
carries and when the resource reads before it writes is pinned exactly; the
answer goes over https to the receiver.
"""

from __future__ import annotations

from typing import Any

from botocore.stub import ANY, Stubber

from cache_ingress.claims import PRE_EXISTING_KEY, PRE_EXISTING_VALUE, REVOKING_KEY, Claim
from tests.support import assert_failed, assert_success, invoke, load_event

SOURCE = "sg-0a1b2c3d4e5f60718"
A, B = "sg-0000000000000000a", "sg-0000000000000000b"
ACCOUNT = "123456789012"
STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/cache-access/5b6a8e10-0c1d-11ef-9a0b-0a1b2c3d4e5f"
LOGICAL = "AppCacheAccess"
DESCRIPTION = "cache-sg-ingress: stack cache-access, resource AppCacheAccess"
SESSIONS_ID = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379,6380:{A}"


def claim(physical_id: str = SESSIONS_ID, logical: str = LOGICAL) -> Claim:
    return Claim(STACK, logical, physical_id)


def vpc_event(request_type: str = "Create", **properties: Any) -> dict[str, Any]:
    event = load_event("vpc-create.json", RequestType=request_type)
    event["ResourceProperties"] = {"ServiceToken": event["ServiceToken"], "SourceSecurityGroupId": SOURCE, **properties}
    return event


def permissions(*ports: int, owner: str = ACCOUNT) -> list[dict[str, Any]]:
    pair = {"GroupId": SOURCE, "UserId": owner, "Description": DESCRIPTION}
    return [{"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "UserIdGroupPairs": [pair]} for p in ports]


def rule(rule_id: str, group: str, port: int, tags: dict[str, str], description: str = DESCRIPTION) -> dict[str, Any]:
    """A rule as DescribeSecurityGroupRules shows it."""
    return {
        "SecurityGroupRuleId": rule_id,
        "GroupId": group,
        "GroupOwnerId": ACCOUNT,
        "IsEgress": False,
        "IpProtocol": "tcp",
        "FromPort": port,
        "ToPort": port,
        "ReferencedGroupInfo": {"GroupId": SOURCE, "UserId": ACCOUNT},
        "Description": description,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def authorize(
    ec2: Stubber, group: str, *ports: int, physical_id: str = SESSIONS_ID, error: str | None = None, **kwargs: Any
) -> list[str]:
    """Expect one Authorize carrying the claim; the rule ids it makes."""
    params = {
        "GroupId": group,
        "IpPermissions": permissions(*ports, **kwargs),
        "TagSpecifications": [{"ResourceType": "security-group-rule", "Tags": tag_list(claim(physical_id).tags())}],
    }
    if error:
        ec2.add_client_error("authorize_security_group_ingress", error, error, 400, expected_params=params)
        return []
    made = [rule(f"sgr-{group[-1]}{p}", group, p, claim(physical_id).tags()) for p in ports]
    ec2.add_response("authorize_security_group_ingress", {"Return": True, "SecurityGroupRules": made}, params)
    return [r["SecurityGroupRuleId"] for r in made]


def group_filter(group: str) -> dict[str, Any]:
    """How the handler asks for one group's rules."""
    return {"Filters": [{"Name": "group-id", "Values": [group]}], "MaxResults": 1000}


def rules_of(ec2: Stubber, group: str, *rules: dict[str, Any]) -> None:
    ec2.add_response("describe_security_group_rules", {"SecurityGroupRules": list(rules)}, group_filter(group))


def counted(ec2: Stubber, *groups: str, held: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """Expect the count before any write: each target group's rules, read in turn (``held``: what each holds)."""
    for group in groups:
        rules_of(ec2, group, *(held or {}).get(group, []))


def prefix_list_sizes(ec2: Stubber, ids: list[str], sizes: dict[str, int] | None = None) -> None:
    """Expect the prefix lists' sizes asked by filter; EC2 shows those in ``sizes`` (none by default)."""
    shown = [
        {"PrefixListId": i, "AddressFamily": "IPv4", "MaxEntries": n, "State": "create-complete"}
        for i, n in (sizes or {}).items()
    ]
    params = {"Filters": [{"Name": "prefix-list-id", "Values": sorted(ids)}], "MaxResults": 100}
    ec2.add_response("describe_managed_prefix_lists", {"PrefixLists": shown}, params)


def rules_refused(ec2: Stubber, group: str, code: str, status: int) -> None:
    ec2.add_client_error("describe_security_group_rules", code, code, status, expected_params=group_filter(group))


def read(ec2: Stubber, found: dict[str, Any] | None, rule_id: str = "") -> None:
    params = {"SecurityGroupRuleIds": [found["SecurityGroupRuleId"] if found else rule_id]}
    if found is None:
        ec2.add_client_error(
            "describe_security_group_rules", "InvalidSecurityGroupRuleId.NotFound", "gone", 400, expected_params=params
        )
    else:
        ec2.add_response("describe_security_group_rules", {"SecurityGroupRules": [found]}, params)


def tag(ec2: Stubber, rule_id: str, tags: dict[str, str]) -> None:
    ec2.add_response("create_tags", {}, {"Resources": [rule_id], "Tags": tag_list(tags)})


def untag(ec2: Stubber, rule_id: str, *keys: str) -> None:
    ec2.add_response("delete_tags", {}, {"Resources": [rule_id], "Tags": [{"Key": k} for k in keys]})


def mark(ec2: Stubber, rule_id: str) -> None:
    """Expect the revoking mark, whatever time it expires at."""
    ec2.add_response("create_tags", {}, {"Resources": [rule_id], "Tags": [{"Key": REVOKING_KEY, "Value": ANY}]})


def revoke(ec2: Stubber, group: str, *rule_ids: str) -> None:
    ec2.add_response(
        "revoke_security_group_ingress", {"Return": True}, {"GroupId": group, "SecurityGroupRuleIds": list(rule_ids)}
    )


def serverless_missing(stubber: Stubber, name: str) -> None:
    stubber.add_client_error(
        "describe_serverless_caches",
        "ServerlessCacheNotFoundFault",
        f"Serverless cache {name} not found.",
        404,
        expected_params={"ServerlessCacheName": name},
    )


def serverless(stubber: Stubber, groups: list[str], name: str = "sessions", network_type: str = "dual_stack") -> None:
    cache = {
        "ServerlessCacheName": name,
        "Status": "available",
        "SecurityGroupIds": groups,
        "Endpoint": {"Address": "sessions.serverless.use1.cache.amazonaws.com", "Port": 6379},
        "ReaderEndpoint": {"Address": "sessions.serverless.use1.cache.amazonaws.com", "Port": 6380},
        "NetworkType": network_type,
    }
    stubber.add_response("describe_serverless_caches", {"ServerlessCaches": [cache]}, {"ServerlessCacheName": name})


def delete_event(physical_id: str) -> dict[str, Any]:
    event = vpc_event("Delete", ServerlessCacheName="sessions")
    event["PhysicalResourceId"] = physical_id
    return event


# -- Create ---------------------------------------------------------------------------


def test_a_cache_cluster_is_found_by_id_and_its_rules_are_made_with_the_claim_on_them(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    cluster = {
        "CacheClusterId": "memo",
        "Engine": "memcached",
        "ConfigurationEndpoint": {"Address": "memo.cfg.use1.cache.amazonaws.com", "Port": 11211},
        "CacheNodes": [{"CacheNodeId": "0001", "Endpoint": {"Address": "memo.0001", "Port": 11211}}],
        "SecurityGroups": [{"SecurityGroupId": B, "Status": "active"}, {"SecurityGroupId": A, "Status": "active"}],
    }
    stubber.add_response(
        "describe_cache_clusters", {"CacheClusters": [cluster]}, {"CacheClusterId": "memo", "ShowCacheNodeInfo": True}
    )
    physical_id = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:11211:{A},{B}"
    counted(ec2_stubber, A, B)
    made = authorize(ec2_stubber, A, 11211, physical_id=physical_id)
    made += authorize(ec2_stubber, B, 11211, physical_id=physical_id)
    answer = invoke(vpc_event(CacheClusterId="memo"))
    assert_success(answer)
    assert answer["PhysicalResourceId"] == physical_id
    assert answer["Data"]["SecurityGroupRuleIds"] == ",".join(made)


def test_a_serverless_cache_opens_both_endpoint_ports_in_one_call_per_group(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, 6380)
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_success(answer)
    assert answer["Data"]["Ports"] == "6379,6380"


def test_a_cross_account_source_group_is_named_with_its_owner(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [A])
    physical_id = f"cache-vpc-ingress:{SOURCE}@210987654321:6379,6380:{A}"
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, 6380, physical_id=physical_id, owner="210987654321")
    answer = invoke(vpc_event(ServerlessCacheName="sessions", SourceSecurityGroupOwnerId="2109-8765-4321"))
    assert answer["PhysicalResourceId"] == physical_id


def test_a_rule_made_by_hand_is_claimed_and_marked_pre_existing_and_keeps_its_description(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, 6380, error="InvalidPermission.Duplicate")
    by_hand = rule("sgr-hand", A, 6379, {}, description="opened by the on-call")
    rules_of(ec2_stubber, A, by_hand)
    tag(ec2_stubber, "sgr-hand", {**claim().tags(), PRE_EXISTING_KEY: PRE_EXISTING_VALUE})
    read(ec2_stubber, {**by_hand, "Tags": tag_list({**claim().tags(), PRE_EXISTING_KEY: PRE_EXISTING_VALUE})})
    (made,) = authorize(ec2_stubber, A, 6380)
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_success(answer)
    assert answer["Data"]["SecurityGroupRuleIds"] == f"sgr-hand,{made}"


def test_a_rule_another_resource_claims_gets_this_claim_beside_it_and_no_mark(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    other = claim(logical="OtherAccess").tags()
    theirs = [rule("sgr-1", A, 6379, other, "theirs"), rule("sgr-2", A, 6380, other, "theirs")]
    counted(ec2_stubber, A, held={A: theirs})
    authorize(ec2_stubber, A, 6379, 6380, error="InvalidPermission.Duplicate")
    rules_of(ec2_stubber, A, *theirs)
    for found in theirs:
        tag(ec2_stubber, found["SecurityGroupRuleId"], claim().tags())
        read(ec2_stubber, {**found, "Tags": tag_list({**other, **claim().tags()})})
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_success(answer)
    assert answer["Data"]["SecurityGroupRuleIds"] == "sgr-1,sgr-2"


def test_a_rule_a_delete_is_revoking_is_waited_for_and_then_made_afresh(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [A])
    far = {REVOKING_KEY: "9999999999"}
    going = rule("sgr-going", A, 6379, {**claim(logical="OtherAccess").tags(), **far})
    counted(ec2_stubber, A, held={A: [going]})
    authorize(ec2_stubber, A, 6379, 6380, error="InvalidPermission.Duplicate")
    rules_of(ec2_stubber, A, going)
    rules_of(ec2_stubber, A)  # the Delete revoked it meanwhile
    authorize(ec2_stubber, A, 6379)
    authorize(ec2_stubber, A, 6380)
    assert_success(invoke(vpc_event(ServerlessCacheName="sessions")))


def test_a_claim_that_lands_while_a_delete_marks_the_rule_waits_for_that_delete(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    found = rule("sgr-1", A, 6379, claim(logical="OtherAccess").tags())
    counted(ec2_stubber, A, held={A: [found]})
    authorize(ec2_stubber, A, 6379, 6380, error="InvalidPermission.Duplicate")
    rules_of(ec2_stubber, A, found)
    tag(ec2_stubber, "sgr-1", claim().tags())
    # Read again after the claim: a Delete marked the rule meanwhile; it will see this claim and back off.
    read(ec2_stubber, {**found, "Tags": tag_list({**claim().tags(), REVOKING_KEY: "9999999999"})})
    rules_of(ec2_stubber, A, {**found, "Tags": tag_list(claim().tags())})  # it did: mark and its claim gone
    read(ec2_stubber, {**found, "Tags": tag_list(claim().tags())})
    authorize(ec2_stubber, A, 6380)
    assert_success(invoke(vpc_event(ServerlessCacheName="sessions")))


def test_when_the_existing_rule_vanishes_before_it_is_read_it_is_made_alone(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, 6380, error="InvalidPermission.Duplicate")
    rules_of(ec2_stubber, A)  # revoked by hand in between: both ports go in one at a time
    authorize(ec2_stubber, A, 6379)
    authorize(ec2_stubber, A, 6380)
    assert_success(invoke(vpc_event(ServerlessCacheName="sessions")))


def test_a_missing_serverless_cache_fails_without_touching_ec2(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless_missing(stubber, "nope")
    answer = invoke(vpc_event(ServerlessCacheName="nope"))
    assert_failed(answer)
    assert answer["Reason"].startswith("ServerlessCacheName 'nope' not found")


def test_a_cache_without_groups_or_port_says_so_without_touching_ec2(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [])
    assert_failed(invoke(vpc_event(ServerlessCacheName="sessions")), "has no VPC security groups")
    creating = {"CacheClusterId": "new", "CacheClusterStatus": "creating", "SecurityGroups": [{"SecurityGroupId": A}]}
    stubber.add_response(
        "describe_cache_clusters", {"CacheClusters": [creating]}, {"CacheClusterId": "new", "ShowCacheNodeInfo": True}
    )
    assert_failed(invoke(vpc_event(CacheClusterId="new", Port="6379")), "has no endpoint port yet")


def test_a_port_or_group_the_cache_does_not_have_fails_naming_it_without_touching_ec2(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    answer = invoke(vpc_event(ServerlessCacheName="sessions", Port="22"))
    assert_failed(answer, "Port 22 is not an endpoint port of ServerlessCacheName 'sessions', which has 6379, 6380")
    serverless(stubber, [A])
    answer = invoke(vpc_event(ServerlessCacheName="sessions", TargetSecurityGroupIds=[A, B]))
    assert_failed(answer, f"TargetSecurityGroupIds {B} are not attached to ServerlessCacheName 'sessions'")


def test_ec2_refusing_names_the_target_group_in_the_reason(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, 6380, error="UnauthorizedOperation")
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_failed(answer, "UnauthorizedOperation")
    assert A in answer["Reason"]


def test_ec2_throttling_is_waited_out(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, 6380, error="RequestLimitExceeded")
    authorize(ec2_stubber, A, 6379, 6380)
    assert_success(invoke(vpc_event(ServerlessCacheName="sessions")))


# -- Delete ---------------------------------------------------------------------------


def test_delete_revokes_a_rule_only_this_claim_holds_after_marking_and_reading_it(ec2_stubber: Stubber) -> None:
    ours = rule("sgr-1", A, 6379, claim().tags())
    gone_already = rule("sgr-2", A, 6380, claim().tags())
    rules_of(ec2_stubber, A, ours, gone_already)
    mark(ec2_stubber, "sgr-1")
    read(ec2_stubber, ours)
    revoke(ec2_stubber, A, "sgr-1")
    mark(ec2_stubber, "sgr-2")
    read(ec2_stubber, None, "sgr-2")  # revoked by hand meanwhile: nothing left to do
    answer = invoke(delete_event(SESSIONS_ID))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", SESSIONS_ID)


def test_delete_takes_only_its_claim_off_a_rule_another_resource_or_a_person_holds(ec2_stubber: Stubber) -> None:
    other = claim(logical="OtherAccess").tags()
    shared = rule("sgr-1", A, 6379, {**claim().tags(), **other})
    by_hand = rule("sgr-2", A, 6380, {**claim().tags(), PRE_EXISTING_KEY: PRE_EXISTING_VALUE})
    rules_of(ec2_stubber, A, shared, by_hand)
    untag(ec2_stubber, "sgr-1", claim().key)
    read(ec2_stubber, {**shared, "Tags": tag_list(other)})
    untag(ec2_stubber, "sgr-2", claim().key)
    read(ec2_stubber, {**by_hand, "Tags": tag_list({PRE_EXISTING_KEY: PRE_EXISTING_VALUE})})
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_two_deletes_letting_go_at_once_leave_no_unclaimed_rule_behind(ec2_stubber: Stubber) -> None:
    """Each read the other's claim before either took its own off: the one that looks last revokes."""
    shared = rule("sgr-1", A, 6379, {**claim().tags(), **claim(logical="OtherAccess").tags()})
    rules_of(ec2_stubber, A, shared)
    untag(ec2_stubber, "sgr-1", claim().key)
    unclaimed = {**shared, "Tags": []}
    read(ec2_stubber, unclaimed)  # the other Delete took its claim off meanwhile
    mark(ec2_stubber, "sgr-1")
    read(ec2_stubber, unclaimed)
    revoke(ec2_stubber, A, "sgr-1")
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_delete_leaves_alone_rules_its_claim_is_not_on(ec2_stubber: Stubber) -> None:
    rules_of(
        ec2_stubber,
        A,
        rule("sgr-1", A, 6379, claim(logical="OtherAccess").tags()),
        rule("sgr-2", A, 6380, {}, description="opened by the on-call"),
    )
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_delete_backs_off_when_a_claim_lands_between_its_mark_and_its_read(ec2_stubber: Stubber) -> None:
    ours = rule("sgr-1", A, 6379, claim().tags())
    rules_of(ec2_stubber, A, ours)
    mark(ec2_stubber, "sgr-1")
    read(ec2_stubber, {**ours, "Tags": tag_list({**claim().tags(), **claim(logical="OtherAccess").tags()})})
    untag(ec2_stubber, "sgr-1", REVOKING_KEY, claim().key)
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_delete_revokes_a_rule_the_release_before_claims_made_for_this_id(ec2_stubber: Stubber) -> None:
    earlier = rule("sgr-1", A, 6379, {})  # no tags, this resource's own description
    rules_of(ec2_stubber, A, earlier)
    mark(ec2_stubber, "sgr-1")
    read(ec2_stubber, earlier)
    revoke(ec2_stubber, A, "sgr-1")
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_delete_when_the_group_is_gone_is_success(ec2_stubber: Stubber) -> None:
    rules_refused(ec2_stubber, A, "InvalidGroup.NotFound", 400)
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_delete_of_a_foreign_id_for_a_missing_cache_has_nothing_to_revoke(stubber: Stubber) -> None:
    serverless_missing(stubber, "sessions")
    answer = invoke(delete_event("cache-access-AppCacheAccess-1A2B3C4D5E6F"))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", "cache-access-AppCacheAccess-1A2B3C4D5E6F")


def test_ec2_refusing_to_show_the_groups_rules_fails_naming_the_group(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, 6380, error="InvalidPermission.Duplicate")
    rules_refused(ec2_stubber, A, "UnauthorizedOperation", 403)
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_failed(answer, "DescribeSecurityGroupRules failed with UnauthorizedOperation")
    assert A in answer["Reason"]


def test_a_rollback_delete_whose_lookup_is_refused_succeeds(stubber: Stubber, ec2_stubber: Stubber) -> None:
    """An SCP refuses the Describe: Create fails with a not-ours id, and its rollback Delete succeeds, no EC2 call."""
    for _ in range(2):
        stubber.add_client_error(
            "describe_serverless_caches",
            "AccessDeniedException",
            "User is not authorized to perform: elasticache:DescribeServerlessCaches with an explicit deny",
            400,
            expected_params={"ServerlessCacheName": "sessions"},
        )
    created = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_failed(created, "may not look up ServerlessCacheName 'sessions'")
    assert not created["PhysicalResourceId"].startswith("cache-vpc-ingress:")
    rollback = vpc_event("Delete", ServerlessCacheName="sessions")
    rollback["PhysicalResourceId"] = created["PhysicalResourceId"]
    answer = invoke(rollback)
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", created["PhysicalResourceId"])


def test_server_errors_and_throttling_are_retried_by_the_one_policy(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    ec2_stubber.add_client_error("authorize_security_group_ingress", "InternalError", "", 500)
    ec2_stubber.add_client_error("authorize_security_group_ingress", "RequestLimitExceeded", "", 503)
    authorize(ec2_stubber, A, 6379, 6380)
    assert_success(invoke(vpc_event(ServerlessCacheName="sessions")))


# -- sources other than a security group ------------------------------------------------


def ranged_rule(rule_id: str, port: int, tags: dict[str, str], **source: str) -> dict[str, Any]:
    """A rule into A from ``source`` (CidrIpv4=..., and so on), as DescribeSecurityGroupRules shows it."""
    item = {**rule(rule_id, A, port, tags), **source}
    del item["ReferencedGroupInfo"]
    return item


def ranged_authorize_params(physical_id: str, source: dict[str, Any], *ports: int) -> dict[str, Any]:
    """The Authorize into A from a range or list, ``source`` being its IpPermission part, carrying the claim."""
    return {
        "GroupId": A,
        "IpPermissions": [{"IpProtocol": "tcp", "FromPort": p, "ToPort": p, **source} for p in ports],
        "TagSpecifications": [{"ResourceType": "security-group-rule", "Tags": tag_list(claim(physical_id).tags())}],
    }


def ranged_event(**source: Any) -> dict[str, Any]:
    event = load_event("vpc-create.json")
    event["ResourceProperties"] = {"ServiceToken": event["ServiceToken"], "ServerlessCacheName": "sessions", **source}
    return event


def test_an_ipv6_range_is_sent_in_its_shortest_spelling_in_ipv6_ranges_with_the_claim(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    physical_id = f"cache-vpc-ingress:[2001:db8:ab::/48]:6379,6380:{A}"
    serverless(stubber, [A])
    ipv6 = {"Ipv6Ranges": [{"CidrIpv6": "2001:db8:ab::/48", "Description": DESCRIPTION}]}
    params = ranged_authorize_params(physical_id, ipv6, 6379, 6380)
    made = [ranged_rule(f"sgr-{p}", p, {}, CidrIpv6="2001:db8:ab::/48") for p in (6379, 6380)]
    counted(ec2_stubber, A)
    ec2_stubber.add_response("authorize_security_group_ingress", {"Return": True, "SecurityGroupRules": made}, params)

    answer = invoke(ranged_event(SourceCidrIpv6="2001:0DB8:00AB:0000::/48"))
    assert_success(answer)
    assert answer["PhysicalResourceId"] == physical_id
    assert (answer["Data"]["Source"], answer["Data"]["SourceCidrIpv6"]) == ("2001:db8:ab::/48", "2001:db8:ab::/48")


def test_an_ipv4_range_into_a_cache_reached_over_ipv6_only_fails_naming_both_without_touching_ec2(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A], network_type="ipv6")
    assert_failed(
        invoke(ranged_event(SourceCidrIp="10.20.0.0/16")),
        "SourceCidrIp 10.20.0.0/16 cannot reach ServerlessCacheName 'sessions': its NetworkType is ipv6",
    )


def test_a_prefix_list_ec2_does_not_know_fails_naming_it_and_claims_nothing(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    physical_id = f"cache-vpc-ingress:pl-0123456789abcdef0:6379,6380:{A}"
    serverless(stubber, [A])
    listed = {"PrefixListIds": [{"PrefixListId": "pl-0123456789abcdef0", "Description": DESCRIPTION}]}
    params = ranged_authorize_params(physical_id, listed, 6379, 6380)
    counted(ec2_stubber, A)
    prefix_list_sizes(ec2_stubber, ["pl-0123456789abcdef0"])
    ec2_stubber.add_client_error(
        "authorize_security_group_ingress",
        "InvalidPrefixListID.NotFound",
        "The prefix list ID 'pl-0123456789abcdef0' does not exist",
        400,
        expected_params=params,
    )

    assert_failed(
        invoke(ranged_event(SourcePrefixListId="pl-0123456789abcdef0")),
        "SourcePrefixListId pl-0123456789abcdef0 does not exist in this account and region",
    )


def test_an_ipv4_rule_another_resource_holds_is_found_by_its_range_and_claimed(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    physical_id = f"cache-vpc-ingress:10.20.0.0/16:6379:{A}"
    other = Claim(STACK, "Other", physical_id)
    held = ranged_rule("sgr-a", 6379, other.tags(), CidrIpv4="10.20.0.0/16")
    unrelated = ranged_rule("sgr-b", 6379, {}, CidrIpv4="10.0.0.0/8")
    serverless(stubber, [A])
    ipv4 = {"IpRanges": [{"CidrIp": "10.20.0.0/16", "Description": DESCRIPTION}]}
    counted(ec2_stubber, A, held={A: [unrelated, held]})
    ec2_stubber.add_client_error(
        "authorize_security_group_ingress",
        "InvalidPermission.Duplicate",
        "the rule exists",
        400,
        expected_params=ranged_authorize_params(physical_id, ipv4, 6379),
    )
    rules_of(ec2_stubber, A, unrelated, held)
    tag(ec2_stubber, "sgr-a", claim(physical_id).tags())
    read(ec2_stubber, {**held, "Tags": tag_list({**other.tags(), **claim(physical_id).tags()})})

    answer = invoke(ranged_event(SourceCidrIp="10.20.0.0/16", Port="6379"))
    assert_success(answer)
    assert (answer["PhysicalResourceId"], answer["Data"]["SecurityGroupRuleIds"]) == (physical_id, "sgr-a")


# -- MemoryDB clusters ----------------------------------------------------------------

STORE_ID = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A},{B}"


def memorydb_cluster(stub: Stubber, groups: list[str], asked: str = "app-store", port: int | None = 6379) -> None:
    """DescribeClusters asked for exactly ``asked``, answering with the cluster (no endpoint while ``port`` is None)."""
    cluster: dict[str, Any] = {
        "Name": asked,
        "Status": "available" if port else "creating",
        "SecurityGroups": [{"SecurityGroupId": g, "Status": "active"} for g in groups],
    }
    if port:
        cluster["ClusterEndpoint"] = {
            "Address": f"clustercfg.{asked}.abc123.memorydb.us-east-1.amazonaws.com",
            "Port": port,
        }
    stub.add_response("describe_clusters", {"Clusters": [cluster]}, {"ClusterName": asked})


def memorydb_refused(stub: Stubber, code: str, status: int, asked: str = "app-store", message: str = "") -> None:
    stub.add_client_error("describe_clusters", code, message or code, status, expected_params={"ClusterName": asked})


def test_a_memorydb_cluster_is_found_by_name_and_its_endpoint_port_opened_on_each_of_its_groups(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    memorydb_cluster(memorydb_stubber, [B, A])
    counted(ec2_stubber, A, B)
    made = authorize(ec2_stubber, A, 6379, physical_id=STORE_ID)
    made += authorize(ec2_stubber, B, 6379, physical_id=STORE_ID)
    answer = invoke(vpc_event(MemoryDBClusterName="app-store"))
    assert_success(answer)
    assert answer["PhysicalResourceId"] == STORE_ID
    assert (answer["Data"]["Ports"], answer["Data"]["SecurityGroupRuleIds"]) == ("6379", ",".join(made))


def test_a_memorydb_name_spelt_in_capitals_is_looked_up_as_memorydb_keeps_it_in_lower_case(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    memorydb_cluster(memorydb_stubber, [A], asked="app-store")
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, physical_id=f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A}")
    assert_success(invoke(vpc_event(MemoryDBClusterName="App-Store")))


def test_a_missing_memorydb_cluster_fails_naming_it_without_touching_ec2(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    memorydb_refused(memorydb_stubber, "ClusterNotFoundFault", 400, asked="nope", message="Cluster nope not found")
    answer = invoke(vpc_event(MemoryDBClusterName="nope"))
    assert_failed(answer)
    assert answer["Reason"].startswith("MemoryDBClusterName 'nope' not found: no such cache in this account and region")


def test_a_memorydb_cluster_still_being_created_is_unusable_until_it_has_its_endpoint(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    memorydb_cluster(memorydb_stubber, [A], port=None)
    answer = invoke(vpc_event(MemoryDBClusterName="app-store"))
    assert_failed(answer, "MemoryDBClusterName 'app-store' has no endpoint port yet")


def test_bad_memorydb_names_fail_naming_the_property_before_any_call(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    for name in ("app--store", "9lives", "s" * 41, "app_store"):
        answer = invoke(vpc_event(MemoryDBClusterName=name))
        assert_failed(answer, "MemoryDBClusterName must start with a letter")


def test_a_memorydb_lookup_refused_fails_and_its_rollback_delete_succeeds_without_touching_ec2(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    """An SCP denies memorydb:DescribeClusters: the Create fails with a not-ours id, and its rollback Delete succeeds."""
    for _ in range(2):
        memorydb_refused(
            memorydb_stubber,
            "AccessDeniedException",
            400,
            message="User is not authorized to perform: memorydb:DescribeClusters with an explicit deny",
        )
    created = invoke(vpc_event(MemoryDBClusterName="app-store"))
    assert_failed(created, "AccessDeniedException")
    assert "the function's role may not look up MemoryDBClusterName 'app-store'" in created["Reason"]
    assert not created["PhysicalResourceId"].startswith("cache-vpc-ingress:")
    rollback = vpc_event("Delete", MemoryDBClusterName="app-store")
    rollback["PhysicalResourceId"] = created["PhysicalResourceId"]
    answer = invoke(rollback)
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", created["PhysicalResourceId"])


def test_a_throttled_or_failing_memorydb_lookup_is_retried_by_the_one_policy(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    memorydb_refused(memorydb_stubber, "ThrottlingException", 400, message="Rate exceeded")
    memorydb_refused(memorydb_stubber, "InternalServerErrorException", 500)
    memorydb_cluster(memorydb_stubber, [A, B])
    counted(ec2_stubber, A, B)
    authorize(ec2_stubber, A, 6379, physical_id=STORE_ID)
    authorize(ec2_stubber, B, 6379, physical_id=STORE_ID)
    assert invoke(vpc_event(MemoryDBClusterName="app-store"))["PhysicalResourceId"] == STORE_ID


def test_delete_lets_go_of_its_claims_after_the_memorydb_cluster_is_gone_without_looking_it_up(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    """The id names the rules: the cluster, deleted by hand, is not looked up (nothing is queued for it)."""
    held = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A}"
    ours = rule("sgr-1", A, 6379, claim(held).tags())
    rules_of(ec2_stubber, A, ours)
    mark(ec2_stubber, "sgr-1")
    read(ec2_stubber, ours)
    revoke(ec2_stubber, A, "sgr-1")
    event = vpc_event("Delete", MemoryDBClusterName="app-store")
    event["PhysicalResourceId"] = held
    assert_success(invoke(event))


def test_a_rollback_delete_of_a_failed_create_finishes_when_the_memorydb_cluster_is_gone(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    memorydb_refused(memorydb_stubber, "ClusterNotFoundFault", 400, message="Cluster app-store not found")
    rollback = vpc_event("Delete", MemoryDBClusterName="app-store")
    rollback["PhysicalResourceId"] = "cache-access-AppCacheAccess-1A2B3C4D5E6F"  # the failed Create's, not ours
    answer = invoke(rollback)
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", rollback["PhysicalResourceId"])


def test_a_rollback_update_to_a_memorydb_cluster_deleted_meanwhile_keeps_the_id_it_holds(
    memorydb_stubber: Stubber, ec2_stubber: Stubber
) -> None:
    """The failed attempt narrowed to group B; the rollback's cluster is gone, so the held id's rules are re-claimed
    as they stand, with no lookup to go by, and the stack can finish its rollback."""
    held = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A}"
    memorydb_refused(memorydb_stubber, "ClusterNotFoundFault", 400, message="Cluster app-store not found")
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, physical_id=held)
    event = vpc_event("Update", MemoryDBClusterName="app-store")
    event["PhysicalResourceId"] = held
    event["OldResourceProperties"] = {**event["ResourceProperties"], "TargetSecurityGroupIds": [B]}
    answer = invoke(event)
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", held)


# -- each target group's quota of inbound rules, counted before any write ---------------

PREFIX_LIST = "pl-0123456789abcdef0"
LISTED_ID = f"cache-vpc-ingress:{PREFIX_LIST}:6379,6380:{A},{B}"


def office_rules(group: str, count: int) -> list[dict[str, Any]]:
    """``count`` rules into ``group`` from IPv4 ranges, on port 22, as DescribeSecurityGroupRules shows them."""
    made = []
    for i in range(count):
        item = {**rule(f"sgr-{group[-1]}o{i}", group, 22, {}), "CidrIpv4": f"10.{i}.0.0/16"}
        del item["ReferencedGroupInfo"]
        made.append(item)
    return made


def listed_rule(rule_id: str, group: str, port: int, tags: dict[str, str]) -> dict[str, Any]:
    item = {**rule(rule_id, group, port, tags), "PrefixListId": PREFIX_LIST}
    del item["ReferencedGroupInfo"]
    return item


def quota(stub: Stubber, value: float | None = None, error: str | None = None) -> None:
    """Expect Service Quotas asked for the quota of rules per security group: its value, or a refusal."""
    params = {"ServiceCode": "vpc", "QuotaCode": "L-0EA8095F"}
    if error:
        stub.add_client_error("get_service_quota", error, error, 400, expected_params=params)
        return
    answer = {"Quota": {"ServiceCode": "vpc", "QuotaCode": "L-0EA8095F", "Value": value, "Adjustable": True}}
    stub.add_response("get_service_quota", answer, params)


def listed_authorize(ec2: Stubber, group: str, *ports: int, error: str | None = None) -> None:
    source = {"PrefixListIds": [{"PrefixListId": PREFIX_LIST, "Description": DESCRIPTION}]}
    params = {**ranged_authorize_params(LISTED_ID, source, *ports), "GroupId": group}
    if error:
        ec2.add_client_error("authorize_security_group_ingress", error, error, 400, expected_params=params)
        return
    made = [listed_rule(f"sgr-{group[-1]}{p}", group, p, claim(LISTED_ID).tags()) for p in ports]
    ec2.add_response("authorize_security_group_ingress", {"Return": True, "SecurityGroupRules": made}, params)


def test_a_prefix_list_on_a_two_port_serverless_cache_counts_its_size_twice_and_fails_before_any_write(
    stubber: Stubber, ec2_stubber: Stubber, quotas_stubber: Stubber
) -> None:
    """21 rules in B, and a list of 20 entries on two ports: 61 IPv4 rules, past the quota Service Quotas will not
    tell (EC2's 60). Nothing is written, into A either: no Authorize is queued, so one would fail otherwise."""
    serverless(stubber, [A, B])
    counted(ec2_stubber, A, B, held={B: office_rules(B, 21)})
    prefix_list_sizes(ec2_stubber, [PREFIX_LIST], {PREFIX_LIST: 20})
    quota(quotas_stubber, error="AccessDeniedException")
    answer = invoke(ranged_event(SourcePrefixListId=PREFIX_LIST))
    assert_failed(answer, f"Security group {B} would hold 61 inbound IPv4 rules (40 of them added by this resource)")
    assert "past its quota of 60; nothing was changed" in answer["Reason"]
    for way_out in ("fewer ports with Port", "a smaller prefix list", "higher quota in Service Quotas"):
        assert way_out in answer["Reason"]


def test_a_quota_raised_in_service_quotas_lets_the_grant_through_and_is_read_once_a_while(
    stubber: Stubber, ec2_stubber: Stubber, quotas_stubber: Stubber
) -> None:
    quota(quotas_stubber, 100.0)  # once: the second Create goes by what the sandbox keeps
    for _ in range(2):
        serverless(stubber, [A, B])
        counted(ec2_stubber, A, B, held={B: office_rules(B, 21)})
        prefix_list_sizes(ec2_stubber, [PREFIX_LIST], {PREFIX_LIST: 20})
        listed_authorize(ec2_stubber, A, 6379, 6380)
        listed_authorize(ec2_stubber, B, 6379, 6380)
        assert_success(invoke(ranged_event(SourcePrefixListId=PREFIX_LIST)))


def test_past_a_raised_quota_the_reason_names_that_quota(
    stubber: Stubber, ec2_stubber: Stubber, quotas_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A, held={A: office_rules(A, 90)})
    prefix_list_sizes(ec2_stubber, [PREFIX_LIST], {PREFIX_LIST: 6})
    quota(quotas_stubber, 100.0)
    answer = invoke(ranged_event(SourcePrefixListId=PREFIX_LIST))
    assert_failed(answer, f"Security group {A} would hold 102 inbound IPv4 rules (12 of them added by this resource)")
    assert "past its quota of 100" in answer["Reason"]


def test_rules_that_exist_already_weigh_nothing_and_are_only_claimed(
    stubber: Stubber, ec2_stubber: Stubber, quotas_stubber: Stubber
) -> None:
    """A holds 20 rules and the list's two (20 entries each): 60, full; the grant makes nothing, so it fits."""
    serverless(stubber, [A])
    physical_id = f"cache-vpc-ingress:{PREFIX_LIST}:6379,6380:{A}"
    theirs = [listed_rule(f"sgr-{p}", A, p, claim(physical_id, logical="OtherAccess").tags()) for p in (6379, 6380)]
    counted(ec2_stubber, A, held={A: [*office_rules(A, 20), *theirs]})
    prefix_list_sizes(ec2_stubber, [PREFIX_LIST], {PREFIX_LIST: 20})
    source = {"PrefixListIds": [{"PrefixListId": PREFIX_LIST, "Description": DESCRIPTION}]}
    duplicate = ranged_authorize_params(physical_id, source, 6379, 6380)
    ec2_stubber.add_client_error(
        "authorize_security_group_ingress", "InvalidPermission.Duplicate", "", 400, expected_params=duplicate
    )
    rules_of(ec2_stubber, A, *office_rules(A, 20), *theirs)
    for found in theirs:
        tag(ec2_stubber, found["SecurityGroupRuleId"], claim(physical_id).tags())
        both = {**claim(physical_id, logical="OtherAccess").tags(), **claim(physical_id).tags()}
        read(ec2_stubber, {**found, "Tags": tag_list(both)})
    answer = invoke(ranged_event(SourcePrefixListId=PREFIX_LIST))
    assert_success(answer)
    assert answer["Data"]["SecurityGroupRuleIds"] == "sgr-6379,sgr-6380"


def test_a_group_filled_by_another_writer_after_the_count_fails_with_the_quota_reason(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    authorize(ec2_stubber, A, 6379, 6380, error="RulesPerSecurityGroupLimitExceeded")
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_failed(answer, f"security group {A} has no room for these rules within its quota of inbound rules")
    assert "another writer may have added rules since they were counted" in answer["Reason"]
    assert "higher quota in Service Quotas" in answer["Reason"]
