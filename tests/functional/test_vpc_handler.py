"""VPC mode through lambda_handler where moto has no data: cache clusters' groups, serverless caches, and
EC2's rarer answers. ElastiCache, EC2 and CloudFormation are botocore Stubbers; the answer goes over https."""

from __future__ import annotations

from typing import Any

from botocore.stub import Stubber

from tests.support import assert_failed, assert_success, invoke, load_event

SOURCE = "sg-0a1b2c3d4e5f60718"
A, B = "sg-0000000000000000a", "sg-0000000000000000b"
ACCOUNT = "123456789012"
STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/cache-access/5b6a8e10-0c1d-11ef-9a0b-0a1b2c3d4e5f"
DESCRIPTION = "cache-sg-ingress: stack cache-access, resource AppCacheAccess"


def vpc_event(request_type: str = "Create", **properties: Any) -> dict[str, Any]:
    event = load_event("vpc-create.json", RequestType=request_type)
    event["ResourceProperties"] = {"ServiceToken": event["ServiceToken"], "SourceSecurityGroupId": SOURCE, **properties}
    return event


def permissions(*ports: int, description: str | None = DESCRIPTION, owner: str = ACCOUNT) -> list[dict[str, Any]]:
    pair = {"GroupId": SOURCE, "UserId": owner, **({"Description": description} if description else {})}
    return [{"IpProtocol": "tcp", "FromPort": p, "ToPort": p, "UserIdGroupPairs": [pair]} for p in ports]


def authorize(ec2: Stubber, group: str, *ports: int, error: str | None = None, **kwargs: Any) -> None:
    params = {"GroupId": group, "IpPermissions": permissions(*ports, **kwargs)}
    if error:
        ec2.add_client_error("authorize_security_group_ingress", error, error, 400, expected_params=params)
    else:
        ec2.add_response("authorize_security_group_ingress", {"Return": True}, params)


def revoke(ec2: Stubber, group: str, *ports: int, error: str | None = None) -> None:
    params = {"GroupId": group, "IpPermissions": permissions(*ports, description=None)}
    if error:
        ec2.add_client_error("revoke_security_group_ingress", error, error, 400, expected_params=params)
    else:
        ec2.add_response("revoke_security_group_ingress", {"Return": True}, params)


def serverless(stubber: Stubber, groups: list[str], name: str = "sessions") -> None:
    cache = {
        "ServerlessCacheName": name,
        "Status": "available",
        "SecurityGroupIds": groups,
        "Endpoint": {"Address": "sessions.serverless.use1.cache.amazonaws.com", "Port": 6379},
        "ReaderEndpoint": {"Address": "sessions.serverless.use1.cache.amazonaws.com", "Port": 6380},
    }
    stubber.add_response("describe_serverless_caches", {"ServerlessCaches": [cache]}, {"ServerlessCacheName": name})


def test_a_cache_cluster_is_found_by_id_with_its_groups_and_node_port(stubber: Stubber, ec2_stubber: Stubber) -> None:
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
    authorize(ec2_stubber, A, 11211)
    authorize(ec2_stubber, B, 11211)
    answer = invoke(vpc_event(CacheClusterId="memo"))
    assert (answer["Status"], answer["PhysicalResourceId"]) == (
        "SUCCESS",
        f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:11211:{A},{B}",
    )


def test_a_serverless_cache_opens_both_endpoint_ports_in_one_call_per_group(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    authorize(ec2_stubber, A, 6379, 6380)
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert answer["Status"] == "SUCCESS"
    assert answer["Data"]["Ports"] == "6379,6380"


def test_a_cross_account_source_group_is_named_with_its_owner(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [A])
    authorize(ec2_stubber, A, 6379, 6380, owner="210987654321")
    answer = invoke(vpc_event(ServerlessCacheName="sessions", SourceSecurityGroupOwnerId="2109-8765-4321"))
    assert answer["PhysicalResourceId"] == f"cache-vpc-ingress:{SOURCE}@210987654321:6379,6380:{A}"


def test_when_some_rules_exist_the_rest_are_added_one_port_at_a_time_and_the_existing_get_our_description(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    authorize(ec2_stubber, A, 6379, 6380, error="InvalidPermission.Duplicate")
    authorize(ec2_stubber, A, 6379, error="InvalidPermission.Duplicate")
    authorize(ec2_stubber, A, 6380)
    ec2_stubber.add_response(
        "update_security_group_rule_descriptions_ingress",
        {"Return": True},
        {"GroupId": A, "IpPermissions": permissions(6379)},
    )
    assert invoke(vpc_event(ServerlessCacheName="sessions"))["Status"] == "SUCCESS"


def test_a_missing_serverless_cache_fails_without_touching_ec2(stubber: Stubber, ec2_stubber: Stubber) -> None:
    stubber.add_client_error(
        "describe_serverless_caches",
        "ServerlessCacheNotFoundFault",
        "Serverless cache nope not found.",
        404,
        expected_params={"ServerlessCacheName": "nope"},
    )
    answer = invoke(vpc_event(ServerlessCacheName="nope"))
    assert answer["Status"] == "FAILED"
    assert answer["Reason"].startswith("ServerlessCacheName 'nope' not found")


def test_a_cache_without_groups_or_port_asks_for_the_property_without_touching_ec2(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [])
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_failed(answer, "set TargetSecurityGroupIds")
    creating = {"CacheClusterId": "new", "CacheClusterStatus": "creating", "SecurityGroups": [{"SecurityGroupId": A}]}
    stubber.add_response(
        "describe_cache_clusters", {"CacheClusters": [creating]}, {"CacheClusterId": "new", "ShowCacheNodeInfo": True}
    )
    answer = invoke(vpc_event(CacheClusterId="new"))
    assert "has no endpoint port yet" in answer["Reason"]
    assert "set Port" in answer["Reason"]


def test_ec2_refusing_names_the_target_group_in_the_reason(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [A])
    authorize(ec2_stubber, A, 6379, 6380, error="UnauthorizedOperation")
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_failed(answer, "UnauthorizedOperation")
    assert A in answer["Reason"]


def test_ec2_throttling_is_waited_out(stubber: Stubber, ec2_stubber: Stubber) -> None:
    serverless(stubber, [A])
    authorize(ec2_stubber, A, 6379, 6380, error="RequestLimitExceeded")
    authorize(ec2_stubber, A, 6379, 6380)
    assert invoke(vpc_event(ServerlessCacheName="sessions"))["Status"] == "SUCCESS"


def delete_event(physical_id: str) -> dict[str, Any]:
    event = vpc_event("Delete", ServerlessCacheName="sessions")
    event["PhysicalResourceId"] = physical_id
    return event


def record(stacks: Stubber, physical_id: str | None) -> None:
    params = {"StackName": STACK, "LogicalResourceId": "AppCacheAccess"}
    if physical_id is None:
        stacks.add_client_error("describe_stack_resource", "AccessDenied", "not yours", 403, expected_params=params)
    else:
        detail = {
            "LogicalResourceId": "AppCacheAccess",
            "PhysicalResourceId": physical_id,
            "ResourceType": "Custom::CacheIngress",
            "LastUpdatedTimestamp": "2026-01-01T00:00:00Z",
            "ResourceStatus": "UPDATE_COMPLETE",
        }
        stacks.add_response("describe_stack_resource", {"StackResourceDetail": detail}, params)


def test_delete_with_one_rule_already_gone_revokes_the_other_port_alone(
    ec2_stubber: Stubber, stacks_stubber: Stubber
) -> None:
    physical_id = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379,6380:{A}"
    record(stacks_stubber, physical_id)
    revoke(ec2_stubber, A, 6379, 6380, error="InvalidPermission.NotFound")
    revoke(ec2_stubber, A, 6379, error="InvalidPermission.NotFound")
    revoke(ec2_stubber, A, 6380)
    answer = invoke(delete_event(physical_id))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", physical_id)


def test_delete_leaves_the_rules_the_recorded_replacement_names(ec2_stubber: Stubber, stacks_stubber: Stubber) -> None:
    old_id = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379,6380:{A},{B}"
    record(stacks_stubber, f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A},{B}")
    revoke(ec2_stubber, A, 6380)
    revoke(ec2_stubber, B, 6380)
    assert invoke(delete_event(old_id))["Status"] == "SUCCESS"


def test_delete_that_cannot_read_the_stack_record_revokes_everything(
    ec2_stubber: Stubber, stacks_stubber: Stubber
) -> None:
    physical_id = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A},{B}"
    record(stacks_stubber, None)
    revoke(ec2_stubber, A, 6379)
    revoke(ec2_stubber, B, 6379, error="InvalidGroup.NotFound")
    assert invoke(delete_event(physical_id))["Status"] == "SUCCESS"


def test_delete_of_a_foreign_id_for_a_missing_cache_has_nothing_to_revoke(stubber: Stubber) -> None:
    stubber.add_client_error(
        "describe_serverless_caches",
        "ServerlessCacheNotFoundFault",
        "Serverless cache sessions not found.",
        404,
        expected_params={"ServerlessCacheName": "sessions"},
    )
    answer = invoke(delete_event("cache-access-AppCacheAccess-1A2B3C4D5E6F"))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", "cache-access-AppCacheAccess-1A2B3C4D5E6F")


def test_when_the_existing_rule_vanishes_between_tries_no_description_is_set(
    stubber: Stubber, ec2_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    authorize(ec2_stubber, A, 6379, 6380, error="InvalidPermission.Duplicate")
    authorize(ec2_stubber, A, 6379)  # revoked by hand in between: both ports go in one at a time
    authorize(ec2_stubber, A, 6380)
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_success(answer)


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
    ec2_stubber.add_client_error("authorize_security_group_ingress", "InternalError", "", 500)
    ec2_stubber.add_client_error("authorize_security_group_ingress", "RequestLimitExceeded", "", 503)
    authorize(ec2_stubber, A, 6379, 6380)
    assert_success(invoke(vpc_event(ServerlessCacheName="sessions")))
