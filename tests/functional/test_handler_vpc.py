"""VPC mode through lambda_handler, call by call: ElastiCache, EC2 and the ledger (DynamoDB) are botocore Stubbers.

Each test spells out the calls the ledger and EC2 see, so when the resource
records a hold, what it writes, and what it asks EC2 to do on the strength of
it are pinned exactly; the answer goes over https to the receiver.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from cache_ingress import vpc_holds
from cache_ingress.ledger import TARGETS_OF_CACHE, Holder
from cache_ingress.vpc_holds import rule_tags
from offline.ledger_table import LEDGER_TABLE as TABLE
from tests.support import assert_failed, assert_success, invoke, load_event

SOURCE = "sg-0a1b2c3d4e5f60718"
A, B = "sg-0000000000000000a", "sg-0000000000000000b"
ACCOUNT = "123456789012"
STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/cache-access/5b6a8e10-0c1d-11ef-9a0b-0a1b2c3d4e5f"
LOGICAL = "AppCacheAccess"
DESCRIPTION = "cache-sg-ingress: stack cache-access, resource AppCacheAccess"
SESSIONS_ID = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379,6380:{A}"
SESSIONS = "ServerlessCacheName 'sessions'"
GROUP_SOURCE = f"{SOURCE}@{ACCOUNT}"


def holder(physical_id: str = SESSIONS_ID, logical: str = LOGICAL) -> Holder:
    return Holder(STACK, logical, physical_id)


def vpc_event(request_type: str = "Create", **properties: Any) -> dict[str, Any]:
    event = load_event("vpc-create.json", RequestType=request_type)
    event["ResourceProperties"] = {"ServiceToken": event["ServiceToken"], "SourceSecurityGroupId": SOURCE, **properties}
    return event


def delete_event(physical_id: str) -> dict[str, Any]:
    event = vpc_event("Delete", ServerlessCacheName="sessions")
    event["PhysicalResourceId"] = physical_id
    return event


# -- the ledger, as DynamoDB is asked ------------------------------------------------------


def pk(group: str, port: int, source: str = GROUP_SOURCE) -> str:
    return f"rule#vpc|{group}|tcp|{port}|{source}"


def key(group: str, port: int, sk: str = "rule", source: str = GROUP_SOURCE) -> dict[str, Any]:
    return {"pk": {"S": pk(group, port, source)}, "sk": {"S": sk}}


def typed(values: dict[str, Any]) -> dict[str, Any]:
    return {k: {"S": v} if isinstance(v, str) else {"N": str(v)} for k, v in values.items()}


def names(*attributes: str) -> dict[str, str]:
    return {f"#{a}": a for a in attributes}


def cancelled(ledger: Stubber, method: str, params: dict[str, Any], *reasons: str) -> None:
    ledger.add_client_error(
        method,
        "TransactionCanceledException",
        "Transaction cancelled",
        400,
        expected_params=params,
        modeled_fields={"CancellationReasons": [{"Code": r} for r in reasons]},
    )


def hold_fresh(
    ledger: Stubber,
    group: str,
    port: int,
    *,
    physical_id: str = SESSIONS_ID,
    description: str = DESCRIPTION,
    cache: str = SESSIONS,
    source: str = GROUP_SOURCE,
    taken: bool = False,
    error: str = "",
) -> None:
    """Expect the one transaction that holds a fresh rule: this holder's entry and the rule's, both new."""
    who = holder(physical_id)
    held = {**key(group, port, f"holder#{who.key}", source), "since": ANY}
    held.update(
        typed(
            {
                "stack_id": STACK,
                "logical_id": LOGICAL,
                "physical_id": physical_id,
                "cache": cache,
                "targets": TARGETS_OF_CACHE,  # these requests name no TargetSecurityGroupIds: the cache's groups
            }
        )
    )
    entry = {**key(group, port, source=source)}
    entry.update(
        typed({"holders": 1, "version": 1, "origin": "authorizing", "description": description, "cache": cache})
    )
    new = {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": names("pk")}
    params = {
        "TransactItems": [
            {"Put": {"TableName": TABLE, "Item": held, **new}},
            {"Put": {"TableName": TABLE, "Item": entry, **new}},
        ]
    }
    if taken:
        cancelled(ledger, "transact_write_items", params, "None", "ConditionalCheckFailed")
    elif error:
        ledger.add_client_error("transact_write_items", error, error, 400, expected_params=params)
    else:
        ledger.add_response("transact_write_items", {}, params)


def entry(holders: int = 1, version: int = 1, origin: str = "made", rule_id: str = "", **more: Any) -> dict[str, Any]:
    item = {"holders": holders, "version": version, "origin": origin, "description": DESCRIPTION, **more}
    if rule_id:
        item["rule_id"] = rule_id
    return item


def state(
    ledger: Stubber,
    group: str,
    port: int,
    found: dict[str, Any] | None,
    held: bool,
    physical_id: str = SESSIONS_ID,
    source: str = GROUP_SOURCE,
) -> None:
    """Expect the two consistent reads: the rule's entry, and this holder's."""
    for sk, item in (("rule", found), (f"holder#{holder(physical_id).key}", {"since": "x"} if held else None)):
        params = {"TableName": TABLE, "Key": key(group, port, sk, source), "ConsistentRead": True}
        answer = {} if item is None else {"Item": {**key(group, port, sk, source), **typed(item)}}
        ledger.add_response("get_item", answer, params)


def update(ledger: Stubber, group: str, port: int, expression: str, condition: str, values: dict[str, Any]) -> None:
    attributes = sorted(set(re.findall(r"#(\w+)", f"{expression} {condition}")))
    params = {
        "TableName": TABLE,
        "Key": key(group, port),
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names(*attributes),
        "ExpressionAttributeValues": typed(values),
    }
    ledger.add_response("update_item", {}, params)


def made(ledger: Stubber, group: str, port: int, rule_id: str) -> None:
    """Expect the rule recorded as made by a holder, with its id."""
    update(
        ledger,
        group,
        port,
        "SET #origin = :made, #rule_id = :id ADD #version :one",
        "#holders > :zero",
        {":id": rule_id, ":made": "made", ":one": 1, ":zero": 0},
    )


def pre_existing(ledger: Stubber, group: str, port: int, rule_id: str) -> None:
    update(
        ledger,
        group,
        port,
        "SET #origin = :pre, #rule_id = :id ADD #version :one",
        "#origin = :authorizing",
        {":authorizing": "authorizing", ":id": rule_id, ":one": 1, ":pre": "pre-existing"},
    )


def join(ledger: Stubber, group: str, port: int, version: int, taken: bool = False) -> None:
    """Expect this holder added to an entry that exists, conditioned on its version."""
    who = holder()
    held = {**key(group, port, f"holder#{who.key}"), "since": ANY}
    held.update(
        typed(
            {
                "stack_id": STACK,
                "logical_id": LOGICAL,
                "physical_id": SESSIONS_ID,
                "cache": SESSIONS,
                "targets": TARGETS_OF_CACHE,
            }
        )
    )
    joined = {
        "TableName": TABLE,
        "Key": key(group, port),
        "UpdateExpression": "SET #holders = #holders + :one, #version = :next REMOVE #lease_until, #lease_holder",
        "ConditionExpression": "#version = :version",
        "ExpressionAttributeNames": names("holders", "lease_holder", "lease_until", "version"),
        "ExpressionAttributeValues": typed({":next": version + 1, ":one": 1, ":version": version}),
    }
    new = {"ConditionExpression": "attribute_not_exists(#pk)", "ExpressionAttributeNames": names("pk")}
    params = {"TransactItems": [{"Put": {"TableName": TABLE, "Item": held, **new}}, {"Update": joined}]}
    if taken:
        cancelled(ledger, "transact_write_items", params, "None", "ConditionalCheckFailed")
    else:
        ledger.add_response("transact_write_items", {}, params)


def letting_go(group: str, port: int, physical_id: str = SESSIONS_ID) -> dict[str, Any]:
    return {
        "Delete": {
            "TableName": TABLE,
            "Key": key(group, port, f"holder#{holder(physical_id).key}"),
            "ConditionExpression": "attribute_exists(#pk)",
            "ExpressionAttributeNames": names("pk"),
        }
    }


def let_go(ledger: Stubber, group: str, port: int, holders_after: int, version: int) -> None:
    """Expect this holder taken off a rule others keep."""
    counted = {
        "TableName": TABLE,
        "Key": key(group, port),
        "UpdateExpression": "SET #holders = :holders, #version = :next",
        "ConditionExpression": "#version = :version",
        "ExpressionAttributeNames": names("holders", "version"),
        "ExpressionAttributeValues": typed({":holders": holders_after, ":next": version + 1, ":version": version}),
    }
    ledger.add_response("transact_write_items", {}, {"TransactItems": [letting_go(group, port), {"Update": counted}]})


def lease(
    ledger: Stubber, group: str, port: int, version: int, held: bool = True, physical_id: str = SESSIONS_ID
) -> None:
    """Expect the last holder to let go and take the rule's lease for its revoke, in one transaction."""
    leased = {
        "TableName": TABLE,
        "Key": key(group, port),
        "UpdateExpression": "SET #holders = :zero, #lease_until = :until, #lease_holder = :h, #version = :next",
        "ConditionExpression": "#version = :version",
        "ExpressionAttributeNames": names("holders", "lease_holder", "lease_until", "version"),
        "ExpressionAttributeValues": {
            **typed({":h": holder(physical_id).key, ":next": version + 1, ":version": version, ":zero": 0}),
            ":until": ANY,
        },
    }
    writes = [letting_go(group, port, physical_id)] if held else []
    ledger.add_response("transact_write_items", {}, {"TransactItems": [*writes, {"Update": leased}]})


def last_holder_leases(
    ledger: Stubber,
    group: str,
    port: int,
    version: int,
    origin: str = "made",
    rule_id: str = "",
    physical_id: str = SESSIONS_ID,
) -> None:
    """Expect the reads that find this resource the rule's last holder, then its lease taken for the revoke."""
    found = entry(holders=1, version=version, origin=origin, rule_id=rule_id)
    state(ledger, group, port, found, held=True, physical_id=physical_id)
    lease(ledger, group, port, version=version, physical_id=physical_id)


def withdraw(
    ledger: Stubber, group: str, port: int, physical_id: str = SESSIONS_ID, source: str = GROUP_SOURCE
) -> None:
    """Expect a fresh hold whose Authorize EC2 refused taken back, with the entry it made."""
    state(ledger, group, port, entry(origin="authorizing"), held=True, physical_id=physical_id, source=source)
    mine = {
        "TableName": TABLE,
        "Key": key(group, port, f"holder#{holder(physical_id).key}", source),
        "ConditionExpression": "attribute_exists(#pk)",
        "ExpressionAttributeNames": names("pk"),
    }
    gone = {
        "TableName": TABLE,
        "Key": key(group, port, source=source),
        "ConditionExpression": "#version = :version",
        "ExpressionAttributeNames": names("version"),
        "ExpressionAttributeValues": typed({":version": 1}),
    }
    ledger.add_response("transact_write_items", {}, {"TransactItems": [{"Delete": mine}, {"Delete": gone}]})


def lease_unrecorded(ledger: Stubber, group: str, port: int, rule_id: str) -> None:
    """Expect a rule the ledger has no entry for leased for its revoke, in a new entry."""
    fields = {"holders": 0, "version": 1, "origin": "made", "rule_id": rule_id, "description": DESCRIPTION}
    leased = {**key(group, port), **typed({**fields, "lease_holder": holder().key}), "lease_until": ANY}
    put = {
        "TableName": TABLE,
        "Item": leased,
        "ConditionExpression": "attribute_not_exists(#pk)",
        "ExpressionAttributeNames": names("pk"),
    }
    ledger.add_response("transact_write_items", {}, {"TransactItems": [{"Put": put}]})


def forget(ledger: Stubber, group: str, port: int, physical_id: str = SESSIONS_ID) -> None:
    """Expect the rule's entry deleted once its revoke is done."""
    params = {
        "TableName": TABLE,
        "Key": key(group, port),
        "ConditionExpression": "#lease_holder = :h AND #holders = :zero",
        "ExpressionAttributeNames": names("holders", "lease_holder"),
        "ExpressionAttributeValues": typed({":h": holder(physical_id).key, ":zero": 0}),
    }
    ledger.add_response("delete_item", {}, params)


# -- EC2, as it is asked ---------------------------------------------------------------------


def permissions(port: int, owner: str = ACCOUNT, description: str = DESCRIPTION) -> list[dict[str, Any]]:
    pair = {"GroupId": SOURCE, "UserId": owner, "Description": description}
    return [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [pair]}]


def rule(rule_id: str, group: str, port: int, description: str = DESCRIPTION) -> dict[str, Any]:
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
    }


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def authorize(
    ec2: Stubber,
    group: str,
    port: int,
    *,
    physical_id: str = SESSIONS_ID,
    error: str | None = None,
    owner: str = ACCOUNT,
    perms: list[dict[str, Any]] | None = None,
) -> str:
    """Expect one Authorize of one rule, tagged for people; the rule id it makes."""
    params = {
        "GroupId": group,
        "IpPermissions": perms or permissions(port, owner),
        "TagSpecifications": [
            {"ResourceType": "security-group-rule", "Tags": tag_list(rule_tags(TABLE, holder(physical_id)))}
        ],
    }
    if error:
        ec2.add_client_error("authorize_security_group_ingress", error, error, 400, expected_params=params)
        return ""
    made_rule = rule(f"sgr-{group[-1]}{port}", group, port)
    ec2.add_response("authorize_security_group_ingress", {"Return": True, "SecurityGroupRules": [made_rule]}, params)
    return str(made_rule["SecurityGroupRuleId"])


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


def revoke(ec2: Stubber, group: str, rule_id: str, error: str = "") -> None:
    params = {"GroupId": group, "SecurityGroupRuleIds": [rule_id]}
    if error:
        ec2.add_client_error("revoke_security_group_ingress", error, error, 400, expected_params=params)
    else:
        ec2.add_response("revoke_security_group_ingress", {"Return": True}, params)


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
        "NetworkType": network_type,
        "SecurityGroupIds": groups,
        "Endpoint": {"Address": "sessions.serverless.use1.cache.amazonaws.com", "Port": 6379},
        "ReaderEndpoint": {"Address": "sessions.serverless.use1.cache.amazonaws.com", "Port": 6380},
    }
    stubber.add_response("describe_serverless_caches", {"ServerlessCaches": [cache]}, {"ServerlessCacheName": name})


@pytest.fixture
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """EC2's NotFound counts at once: the settle window is for the lifecycle tier, where EC2 lags."""
    monkeypatch.setattr(vpc_holds, "SETTLE_S", 0.0)


# -- Create ---------------------------------------------------------------------------


def test_a_warm_create_of_a_new_rule_is_one_transaction_one_authorize_and_one_update_recording_its_id(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    made_ids = []
    counted(ec2_stubber, A)
    for port in (6379, 6380):
        hold_fresh(ledger_stubber, A, port)
        made_ids.append(authorize(ec2_stubber, A, port))
        made(ledger_stubber, A, port, made_ids[-1])
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_success(answer)
    assert answer["Data"]["Ports"] == "6379,6380"
    assert answer["Data"]["SecurityGroupRuleIds"] == ",".join(made_ids)


def make_in_each(
    ledger: Stubber, ec2: Stubber, groups: tuple[str, ...], port: int, physical_id: str, cache: str
) -> list[str]:
    """Expect a fresh rule held, authorized and recorded made in each group in turn; returns the rule ids."""
    made_ids = []
    for group in groups:
        hold_fresh(ledger, group, port, physical_id=physical_id, cache=cache)
        made_ids.append(authorize(ec2, group, port, physical_id=physical_id))
        made(ledger, group, port, made_ids[-1])
    return made_ids


def test_a_cache_cluster_is_found_by_id_and_a_rule_made_into_each_of_its_groups(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
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
    made_ids = make_in_each(ledger_stubber, ec2_stubber, (A, B), 11211, physical_id, "CacheClusterId 'memo'")
    answer = invoke(vpc_event(CacheClusterId="memo"))
    assert_success(answer)
    assert answer["PhysicalResourceId"] == physical_id
    assert answer["Data"]["SecurityGroupRuleIds"] == ",".join(made_ids)


def test_a_cross_account_source_group_is_named_with_its_owner(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    physical_id = f"cache-vpc-ingress:{SOURCE}@210987654321:6379,6380:{A}"
    counted(ec2_stubber, A)
    for port in (6379, 6380):
        hold_fresh(ledger_stubber, A, port, physical_id=physical_id, source=f"{SOURCE}@210987654321")
        authorize(
            ec2_stubber, A, port, physical_id=physical_id, error="InvalidPermission.Duplicate", owner="210987654321"
        )
        cross = {**rule(f"sgr-{port}", A, port), "ReferencedGroupInfo": {"GroupId": SOURCE, "UserId": "210987654321"}}
        rules_of(ec2_stubber, A, cross)
        ledger_stubber.add_response("update_item", {})
    answer = invoke(vpc_event(ServerlessCacheName="sessions", SourceSecurityGroupOwnerId="2109-8765-4321"))
    assert answer["PhysicalResourceId"] == physical_id


def first_authorize_answers(api: Stubber, ec2: Stubber, ledger: Stubber, error: str) -> None:
    """Expect a Create for the sessions cache up to its first authorize, which EC2 answers with error."""
    serverless(api, [A])
    hold_fresh(ledger, A, 6379)
    counted(ec2, A)
    authorize(ec2, A, 6379, error=error)


def test_a_rule_that_was_there_before_any_holder_is_recorded_pre_existing_and_keeps_its_description(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    first_authorize_answers(stubber, ec2_stubber, ledger_stubber, "InvalidPermission.Duplicate")
    rules_of(ec2_stubber, A, rule("sgr-hand", A, 6379, description="opened by the on-call"))
    pre_existing(ledger_stubber, A, 6379, "sgr-hand")
    hold_fresh(ledger_stubber, A, 6380)
    made_id = authorize(ec2_stubber, A, 6380)
    made(ledger_stubber, A, 6380, made_id)
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_success(answer)
    assert answer["Data"]["SecurityGroupRuleIds"] == f"sgr-hand,{made_id}"


def test_a_rule_another_resource_holds_is_joined_and_ec2_is_only_asked_to_make_sure_of_it(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    for port in (6379, 6380):
        hold_fresh(ledger_stubber, A, port, taken=True)
        state(ledger_stubber, A, port, entry(holders=1, version=4, rule_id=f"sgr-{port}"), held=False)
        join(ledger_stubber, A, port, version=4)
        authorize(ec2_stubber, A, port, error="InvalidPermission.Duplicate")
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_success(answer)
    assert answer["Data"]["SecurityGroupRuleIds"] == "sgr-6379,sgr-6380"


def test_a_rule_another_resource_revoked_by_hand_is_made_again_and_recorded(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A], name="sessions")
    event = vpc_event(ServerlessCacheName="sessions", Port="6379")
    physical_id = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A}"
    hold_fresh(ledger_stubber, A, 6379, physical_id=physical_id, taken=True)
    state(ledger_stubber, A, 6379, entry(holders=1, version=2, rule_id="sgr-gone"), held=False, physical_id=physical_id)
    ledger_stubber.add_response("transact_write_items", {})  # joined
    counted(ec2_stubber, A)
    made_id = authorize(ec2_stubber, A, 6379, physical_id=physical_id)
    made(ledger_stubber, A, 6379, made_id)
    answer = invoke(event)
    assert_success(answer)
    assert answer["Data"]["SecurityGroupRuleIds"] == made_id


def test_a_rule_another_resources_delete_is_revoking_is_waited_for_and_then_made_afresh(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    hold_fresh(ledger_stubber, A, 6379, taken=True)
    revoking = entry(holders=0, version=7, rule_id="sgr-1", lease_until=9999999999, lease_holder="another")
    state(ledger_stubber, A, 6379, revoking, held=False)
    state(ledger_stubber, A, 6379, None, held=False)  # that Delete revoked it and deleted the entry meanwhile
    hold_fresh(ledger_stubber, A, 6379)
    counted(ec2_stubber, A)
    made(ledger_stubber, A, 6379, authorize(ec2_stubber, A, 6379))
    hold_fresh(ledger_stubber, A, 6380)
    made(ledger_stubber, A, 6380, authorize(ec2_stubber, A, 6380))
    assert_success(invoke(vpc_event(ServerlessCacheName="sessions")))


def test_a_redelivered_create_holds_nothing_twice_and_sets_the_description_of_a_rule_it_holds_alone(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    event = vpc_event(ServerlessCacheName="sessions", Port="6379", Description="sessions from the app")
    physical_id = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A}"
    hold_fresh(ledger_stubber, A, 6379, physical_id=physical_id, description="sessions from the app", taken=True)
    state(ledger_stubber, A, 6379, entry(holders=1, version=2, rule_id="sgr-1"), held=True, physical_id=physical_id)
    counted(ec2_stubber, A)
    authorize(
        ec2_stubber,
        A,
        6379,
        physical_id=physical_id,
        error="InvalidPermission.Duplicate",
        perms=permissions(6379, description="sessions from the app"),
    )
    ec2_stubber.add_response(
        "update_security_group_rule_descriptions_ingress",
        {"Return": True},
        {
            "GroupId": A,
            "SecurityGroupRuleDescriptions": [{"SecurityGroupRuleId": "sgr-1", "Description": "sessions from the app"}],
        },
    )
    update(
        ledger_stubber,
        A,
        6379,
        "SET #description = :d ADD #version :one",
        "attribute_exists(#pk)",
        {":d": "sessions from the app", ":one": 1},
    )
    answer = invoke(event)
    assert_success(answer)
    assert answer["Data"]["SecurityGroupRuleIds"] == "sgr-1"


def test_a_missing_serverless_cache_fails_without_touching_ec2_or_the_ledger(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
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


def test_ec2_refusing_names_the_target_group_and_withdraws_the_hold_it_took(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    first_authorize_answers(stubber, ec2_stubber, ledger_stubber, "UnauthorizedOperation")
    withdraw(ledger_stubber, A, 6379)  # refused outright: it made nothing, so the hold taken for it goes
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_failed(answer, "UnauthorizedOperation")
    assert A in answer["Reason"]
    assert answer["PhysicalResourceId"] == SESSIONS_ID


def create_the_ledger_refuses(api: Stubber, ec2: Stubber, ledger: Stubber) -> dict[str, Any]:
    """Send a Create for the sessions cache whose hold the ledger refuses; returns CloudFormation's answer."""
    serverless(api, [A])
    counted(ec2, A)
    hold_fresh(ledger, A, 6379, error="AccessDeniedException")
    return invoke(vpc_event(ServerlessCacheName="sessions"))


def test_the_ledger_refusing_a_create_fails_naming_the_table_before_any_ec2_change_and_reports_no_id_of_ours(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    answer = create_the_ledger_refuses(stubber, ec2_stubber, ledger_stubber)
    assert_failed(answer, f"the ownership ledger, DynamoDB table {TABLE}, refused")
    assert not answer["PhysicalResourceId"].startswith("cache-vpc-ingress:")


def test_the_ledger_throttling_or_meeting_another_transaction_is_retried_by_the_one_policy(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    ledger_stubber.add_client_error("transact_write_items", "ProvisionedThroughputExceededException", "", 400)
    ledger_stubber.add_client_error(
        "transact_write_items",
        "TransactionCanceledException",
        "",
        400,
        modeled_fields={"CancellationReasons": [{"Code": "TransactionConflict"}, {"Code": "None"}]},
    )
    counted(ec2_stubber, A)
    for port in (6379, 6380):
        hold_fresh(ledger_stubber, A, port)
        made(ledger_stubber, A, port, authorize(ec2_stubber, A, port))
    assert_success(invoke(vpc_event(ServerlessCacheName="sessions")))


def test_ec2_throttling_and_server_errors_are_retried_by_the_one_policy(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    hold_fresh(ledger_stubber, A, 6379)
    counted(ec2_stubber, A)
    ec2_stubber.add_client_error("authorize_security_group_ingress", "InternalError", "", 500)
    ec2_stubber.add_client_error("authorize_security_group_ingress", "RequestLimitExceeded", "", 503)
    made(ledger_stubber, A, 6379, authorize(ec2_stubber, A, 6379))
    hold_fresh(ledger_stubber, A, 6380)
    made(ledger_stubber, A, 6380, authorize(ec2_stubber, A, 6380))
    assert_success(invoke(vpc_event(ServerlessCacheName="sessions")))


# -- Delete ---------------------------------------------------------------------------


def revoke_then_forget(ec2: Stubber, ledger: Stubber, group: str, port: int, rule_id: str) -> None:
    """The last holder's release of a rule: EC2 revokes it by its id, then the ledger entry goes."""
    revoke(ec2, group, rule_id)
    forget(ledger, group, port)


def delete_succeeds_with_6380_unrecorded(ledger: Stubber, ec2: Stubber) -> None:
    """Send the Delete, whose port 6380 has no ledger entry: a rule the release before the ledger made for this id
    is looked for, none is there, and the Delete succeeds."""
    state(ledger, A, 6380, None, held=False)
    rules_of(ec2, A)
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_the_last_holder_revokes_by_the_recorded_id_under_its_lease_then_deletes_the_entry(
    ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    for port in (6379, 6380):
        last_holder_leases(ledger_stubber, A, port, 2, rule_id=f"sgr-{port}")
        revoke_then_forget(ec2_stubber, ledger_stubber, A, port, f"sgr-{port}")
    answer = invoke(delete_event(SESSIONS_ID))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", SESSIONS_ID)


def test_delete_only_lets_go_of_a_rule_another_resource_holds_or_that_was_there_before_any(
    ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    state(ledger_stubber, A, 6379, entry(holders=2, version=5, rule_id="sgr-1"), held=True)
    let_go(ledger_stubber, A, 6379, holders_after=1, version=5)
    state(ledger_stubber, A, 6380, entry(holders=1, version=3, origin="pre-existing", rule_id="sgr-2"), held=True)
    let_go(ledger_stubber, A, 6380, holders_after=0, version=3)
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_two_last_holders_letting_go_at_once_one_of_them_revokes(ec2_stubber: Stubber, ledger_stubber: Stubber) -> None:
    """Both read two holders; the other's transaction landed first, so this one's is refused and it looks again."""
    state(ledger_stubber, A, 6379, entry(holders=2, version=5, rule_id="sgr-1"), held=True)
    counted_params: dict[str, Any] = {"TransactItems": ANY}
    cancelled(ledger_stubber, "transact_write_items", counted_params, "None", "ConditionalCheckFailed")
    last_holder_leases(ledger_stubber, A, 6379, 6, rule_id="sgr-1")
    revoke_then_forget(ec2_stubber, ledger_stubber, A, 6379, "sgr-1")
    delete_succeeds_with_6380_unrecorded(ledger_stubber, ec2_stubber)


def test_delete_leaves_alone_rules_it_does_not_hold(ec2_stubber: Stubber, ledger_stubber: Stubber) -> None:
    state(ledger_stubber, A, 6379, entry(holders=1, version=1, rule_id="sgr-1"), held=False)
    delete_succeeds_with_6380_unrecorded(ledger_stubber, ec2_stubber)


def test_a_rule_whose_authorize_answer_was_lost_is_found_by_its_description_and_revoked(
    ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    last_holder_leases(ledger_stubber, A, 6379, 1, origin="authorizing")
    rules_of(ec2_stubber, A, rule("sgr-other", A, 6379, description="someone else's"))  # not shown yet
    rules_of(ec2_stubber, A, rule("sgr-1", A, 6379))
    revoke_then_forget(ec2_stubber, ledger_stubber, A, 6379, "sgr-1")
    delete_succeeds_with_6380_unrecorded(ledger_stubber, ec2_stubber)


def test_a_revoke_ec2_refuses_gives_the_lease_back_and_fails_for_the_retried_delete(
    ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    last_holder_leases(ledger_stubber, A, 6379, 2, rule_id="sgr-1")
    revoke(ec2_stubber, A, "sgr-1", error="UnauthorizedOperation")
    update(
        ledger_stubber,
        A,
        6379,
        "REMOVE #lease_until, #lease_holder ADD #version :one",
        "#lease_holder = :h",
        {":h": holder().key, ":one": 1},
    )
    assert_failed(invoke(delete_event(SESSIONS_ID)), "UnauthorizedOperation")
    # The retried Delete: no longer a holder, the entry has none and no lease: it finishes the release.
    state(ledger_stubber, A, 6379, entry(holders=0, version=3, rule_id="sgr-1"), held=False)
    lease(ledger_stubber, A, 6379, version=3, held=False)
    revoke_then_forget(ec2_stubber, ledger_stubber, A, 6379, "sgr-1")
    delete_succeeds_with_6380_unrecorded(ledger_stubber, ec2_stubber)


def test_the_ledger_unreachable_fails_a_delete_of_our_id_revoking_nothing(
    ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    ledger_stubber.add_client_error("get_item", "ResourceNotFoundException", "Requested resource not found", 400)
    answer = invoke(delete_event(SESSIONS_ID))
    assert_failed(answer, f"the ownership ledger, DynamoDB table {TABLE}, refused")
    assert "retry the stack operation" in answer["Reason"]


def test_delete_revokes_a_rule_the_release_before_the_ledger_made_for_this_id(
    ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    state(ledger_stubber, A, 6379, None, held=False)
    rules_of(ec2_stubber, A, rule("sgr-1", A, 6379))  # this resource's own description, as 0.1.0 wrote it
    lease_unrecorded(ledger_stubber, A, 6379, "sgr-1")  # so a Create of the rule meanwhile waits for the revoke
    revoke_then_forget(ec2_stubber, ledger_stubber, A, 6379, "sgr-1")
    state(ledger_stubber, A, 6380, None, held=False)
    rules_of(ec2_stubber, A, rule("sgr-2", A, 6380, description="opened by the on-call"))
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_delete_of_this_ids_0_1_0_rule_another_stack_held_first_hands_it_to_that_stack_to_revoke(
    ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    """Another stack's Create recorded the rule pre-existing; it carries this resource's default description, so
    0.1.0 made it for this resource: it is recorded made (the other stack, its holder, revokes it last)."""
    state(ledger_stubber, A, 6379, entry(holders=1, version=4, origin="pre-existing", rule_id="sgr-1"), held=False)
    rules_of(ec2_stubber, A, rule("sgr-1", A, 6379))
    update(
        ledger_stubber,
        A,
        6379,
        "SET #origin = :made, #rule_id = :id, #version = :next",
        "#version = :version",
        {":id": "sgr-1", ":made": "made", ":next": 5, ":version": 4},
    )
    delete_succeeds_with_6380_unrecorded(ledger_stubber, ec2_stubber)


def test_delete_when_the_group_is_gone_is_success(
    ec2_stubber: Stubber, ledger_stubber: Stubber, quick_settle: None
) -> None:
    for port in (6379, 6380):
        last_holder_leases(ledger_stubber, A, port, 1, rule_id=f"sgr-{port}")
        revoke(ec2_stubber, A, f"sgr-{port}", error="InvalidGroup.NotFound")
        forget(ledger_stubber, A, port)
    assert_success(invoke(delete_event(SESSIONS_ID)))


def test_delete_of_a_foreign_id_for_a_missing_cache_has_nothing_to_revoke(stubber: Stubber) -> None:
    serverless_missing(stubber, "sessions")
    answer = invoke(delete_event("cache-access-AppCacheAccess-1A2B3C4D5E6F"))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", "cache-access-AppCacheAccess-1A2B3C4D5E6F")


def test_a_rollback_delete_of_a_create_the_ledger_refused_succeeds_while_the_ledger_is_unreachable(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    created = create_the_ledger_refuses(stubber, ec2_stubber, ledger_stubber)
    assert_failed(created, "the ownership ledger")
    serverless(stubber, [A])
    ledger_stubber.add_client_error("get_item", "AccessDeniedException", "denied", 400)
    rollback = vpc_event("Delete", ServerlessCacheName="sessions")
    rollback["PhysicalResourceId"] = created["PhysicalResourceId"]
    answer = invoke(rollback)
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", created["PhysicalResourceId"])


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


# -- sources other than a security group ------------------------------------------------


def ranged_authorize_params(physical_id: str, source: dict[str, Any], port: int) -> dict[str, Any]:
    """The Authorize into A from a range or list, ``source`` being its IpPermission part, tagged for people."""
    return {
        "GroupId": A,
        "IpPermissions": [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **source}],
        "TagSpecifications": [
            {"ResourceType": "security-group-rule", "Tags": tag_list(rule_tags(TABLE, holder(physical_id)))}
        ],
    }


def ranged_event(**source: Any) -> dict[str, Any]:
    event = load_event("vpc-create.json")
    event["ResourceProperties"] = {"ServiceToken": event["ServiceToken"], "ServerlessCacheName": "sessions", **source}
    return event


def test_an_ipv6_range_is_sent_in_its_shortest_spelling_and_keyed_by_it(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    physical_id = f"cache-vpc-ingress:[2001:db8:ab::/48]:6379,6380:{A}"
    serverless(stubber, [A])
    ipv6 = {"Ipv6Ranges": [{"CidrIpv6": "2001:db8:ab::/48", "Description": DESCRIPTION}]}
    counted(ec2_stubber, A)
    for port in (6379, 6380):
        hold_fresh(ledger_stubber, A, port, physical_id=physical_id, source="[2001:db8:ab::/48]")
        made_rule = {**rule(f"sgr-{port}", A, port), "CidrIpv6": "2001:db8:ab::/48"}
        ec2_stubber.add_response(
            "authorize_security_group_ingress",
            {"Return": True, "SecurityGroupRules": [made_rule]},
            ranged_authorize_params(physical_id, ipv6, port),
        )
        ledger_stubber.add_response("update_item", {})
    answer = invoke(ranged_event(SourceCidrIpv6="2001:0DB8:00AB:0000::/48"))
    assert_success(answer)
    assert answer["PhysicalResourceId"] == physical_id
    assert (answer["Data"]["Source"], answer["Data"]["SourceCidrIpv6"]) == ("2001:db8:ab::/48", "2001:db8:ab::/48")


def test_a_prefix_list_ec2_does_not_know_fails_naming_it(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    physical_id = f"cache-vpc-ingress:pl-0123456789abcdef0:6379,6380:{A}"
    serverless(stubber, [A])
    hold_fresh(ledger_stubber, A, 6379, physical_id=physical_id, source="pl-0123456789abcdef0")
    listed = {"PrefixListIds": [{"PrefixListId": "pl-0123456789abcdef0", "Description": DESCRIPTION}]}
    counted(ec2_stubber, A)
    prefix_list_sizes(ec2_stubber, ["pl-0123456789abcdef0"])
    ec2_stubber.add_client_error(
        "authorize_security_group_ingress",
        "InvalidPrefixListID.NotFound",
        "The prefix list ID 'pl-0123456789abcdef0' does not exist",
        400,
        expected_params=ranged_authorize_params(physical_id, listed, 6379),
    )
    withdraw(ledger_stubber, A, 6379, physical_id=physical_id, source="pl-0123456789abcdef0")
    assert_failed(
        invoke(ranged_event(SourcePrefixListId="pl-0123456789abcdef0")),
        "SourcePrefixListId pl-0123456789abcdef0 does not exist in this account and region",
    )


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
    memorydb_stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    memorydb_cluster(memorydb_stubber, [B, A])
    counted(ec2_stubber, A, B)
    made_ids = make_in_each(ledger_stubber, ec2_stubber, (A, B), 6379, STORE_ID, "MemoryDBClusterName 'app-store'")
    answer = invoke(vpc_event(MemoryDBClusterName="app-store"))
    assert_success(answer)
    assert answer["PhysicalResourceId"] == STORE_ID
    assert (answer["Data"]["Ports"], answer["Data"]["SecurityGroupRuleIds"]) == ("6379", ",".join(made_ids))


def test_a_memorydb_name_spelt_in_capitals_is_looked_up_as_memorydb_keeps_it_in_lower_case(
    memorydb_stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    memorydb_cluster(memorydb_stubber, [A], asked="app-store")
    physical_id = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A}"
    hold_fresh(ledger_stubber, A, 6379, physical_id=physical_id, cache="MemoryDBClusterName 'App-Store'")
    counted(ec2_stubber, A)
    made(ledger_stubber, A, 6379, authorize(ec2_stubber, A, 6379, physical_id=physical_id))
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
    memorydb_stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    memorydb_refused(memorydb_stubber, "ThrottlingException", 400, message="Rate exceeded")
    memorydb_refused(memorydb_stubber, "InternalServerErrorException", 500)
    memorydb_cluster(memorydb_stubber, [A, B])
    counted(ec2_stubber, A, B)
    make_in_each(ledger_stubber, ec2_stubber, (A, B), 6379, STORE_ID, "MemoryDBClusterName 'app-store'")
    assert invoke(vpc_event(MemoryDBClusterName="app-store"))["PhysicalResourceId"] == STORE_ID


def assert_rollback_keeps(physical_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """Send event as the rollback Update back from targets [B] to physical_id; it must succeed keeping that id."""
    event["PhysicalResourceId"] = physical_id
    event["OldResourceProperties"] = {**event["ResourceProperties"], "TargetSecurityGroupIds": [B]}
    answer = invoke(event)
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", physical_id)
    return answer


def test_delete_lets_go_after_the_memorydb_cluster_is_gone_without_looking_it_up(
    memorydb_stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    """The id names the rules: the cluster, deleted by hand, is not looked up (nothing is queued for it)."""
    held = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A}"
    last_holder_leases(ledger_stubber, A, 6379, 2, rule_id="sgr-1", physical_id=held)
    revoke(ec2_stubber, A, "sgr-1")
    forget(ledger_stubber, A, 6379, physical_id=held)
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


def test_a_rollback_update_to_a_memorydb_cluster_deleted_meanwhile_makes_sure_only_of_what_its_id_holds(
    memorydb_stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    """The failed attempt narrowed to group B; the rollback's cluster is gone, so the held id's rules are made
    sure of as the ledger holds them for it, with no lookup to go by and no new hold: the rollback finishes."""
    held = f"cache-vpc-ingress:{SOURCE}@{ACCOUNT}:6379:{A}"
    memorydb_refused(memorydb_stubber, "ClusterNotFoundFault", 400, message="Cluster app-store not found")
    state(ledger_stubber, A, 6379, entry(holders=1, version=2, rule_id="sgr-1"), held=True, physical_id=held)
    authorize(ec2_stubber, A, 6379, physical_id=held, error="InvalidPermission.Duplicate")
    event = vpc_event("Update", MemoryDBClusterName="app-store")
    answer = assert_rollback_keeps(held, event)
    assert answer["Data"]["SecurityGroupRuleIds"] == "sgr-1"


def test_a_kept_held_id_the_ledger_says_it_does_not_hold_gains_nothing(
    memorydb_stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    """A crafted id kept by a rollback whose cluster is gone: no hold is taken, EC2 is asked nothing."""
    crafted = f"cache-vpc-ingress:0.0.0.0/0:6379:{A}"
    memorydb_refused(memorydb_stubber, "ClusterNotFoundFault", 400, message="Cluster app-store not found")
    state(ledger_stubber, A, 6379, None, held=False, physical_id=crafted, source="0.0.0.0/0")
    event = vpc_event("Update", MemoryDBClusterName="app-store")
    del event["ResourceProperties"]["SourceSecurityGroupId"]
    event["ResourceProperties"].update(SourceCidrIp="0.0.0.0/0", AllowAnyIpAddress="true")
    answer = assert_rollback_keeps(crafted, event)
    assert answer["Data"]["SecurityGroupRuleIds"] == ""


def test_an_ipv4_range_into_a_cache_reached_over_ipv6_only_fails_naming_both_without_touching_ec2(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A], network_type="ipv6")
    assert_failed(
        invoke(ranged_event(SourceCidrIp="10.20.0.0/16")),
        "SourceCidrIp 10.20.0.0/16 cannot reach ServerlessCacheName 'sessions': its NetworkType is ipv6",
    )


# -- each target group's quota of inbound rules, counted before any write ---------------

PREFIX_LIST = "pl-0123456789abcdef0"
LISTED_ID = f"cache-vpc-ingress:{PREFIX_LIST}:6379,6380:{A},{B}"
LISTED = {"PrefixListIds": [{"PrefixListId": PREFIX_LIST, "Description": DESCRIPTION}]}


def office_rules(group: str, count: int) -> list[dict[str, Any]]:
    """``count`` rules into ``group`` from IPv4 ranges, on port 22, as DescribeSecurityGroupRules shows them."""
    made = []
    for i in range(count):
        item = {**rule(f"sgr-{group[-1]}o{i}", group, 22), "CidrIpv4": f"10.{i}.0.0/16"}
        del item["ReferencedGroupInfo"]
        made.append(item)
    return made


def listed_rule(rule_id: str, group: str, port: int) -> dict[str, Any]:
    item = {**rule(rule_id, group, port), "PrefixListId": PREFIX_LIST}
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


def listed_authorize(ec2: Stubber, group: str, port: int, physical_id: str = LISTED_ID, error: str = "") -> None:
    """Expect the Authorize of one rule from the prefix list into ``group``, tagged for people."""
    params = {
        "GroupId": group,
        "IpPermissions": [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **LISTED}],
        "TagSpecifications": [
            {"ResourceType": "security-group-rule", "Tags": tag_list(rule_tags(TABLE, holder(physical_id)))}
        ],
    }
    if error:
        ec2.add_client_error("authorize_security_group_ingress", error, error, 400, expected_params=params)
        return
    made = [listed_rule(f"sgr-{group[-1]}{port}", group, port)]
    ec2.add_response("authorize_security_group_ingress", {"Return": True, "SecurityGroupRules": made}, params)


def test_a_prefix_list_on_a_two_port_serverless_cache_counts_its_size_twice_and_fails_before_any_write(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber, quotas_stubber: Stubber
) -> None:
    """21 rules in B, and a list of 20 entries on two ports: 61 IPv4 rules, past the quota Service Quotas will not
    tell (EC2's 60). Nothing is written, into A either, nor held: no Authorize and no ledger call is queued."""
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
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber, quotas_stubber: Stubber
) -> None:
    quota(quotas_stubber, 100.0)  # once: the second Create goes by what the sandbox keeps
    for _ in range(2):
        serverless(stubber, [A, B])
        counted(ec2_stubber, A, B, held={B: office_rules(B, 21)})
        prefix_list_sizes(ec2_stubber, [PREFIX_LIST], {PREFIX_LIST: 20})
        for group in (A, B):
            for port in (6379, 6380):
                ledger_stubber.add_response("transact_write_items", {})  # held: a fresh rule
                listed_authorize(ec2_stubber, group, port)
                ledger_stubber.add_response("update_item", {})  # made, with its id
        assert_success(invoke(ranged_event(SourcePrefixListId=PREFIX_LIST)))


def test_past_a_raised_quota_the_reason_names_that_quota(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber, quotas_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A, held={A: office_rules(A, 90)})
    prefix_list_sizes(ec2_stubber, [PREFIX_LIST], {PREFIX_LIST: 6})
    quota(quotas_stubber, 100.0)
    answer = invoke(ranged_event(SourcePrefixListId=PREFIX_LIST))
    assert_failed(answer, f"Security group {A} would hold 102 inbound IPv4 rules (12 of them added by this resource)")
    assert "past its quota of 100" in answer["Reason"]


def test_rules_that_exist_already_weigh_nothing_and_are_only_held(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber, quotas_stubber: Stubber
) -> None:
    """A holds 20 rules and the list's two (20 entries each): 60, full; the grant makes nothing, so it fits."""
    serverless(stubber, [A])
    physical_id = f"cache-vpc-ingress:{PREFIX_LIST}:6379,6380:{A}"
    theirs = [listed_rule(f"sgr-{p}", A, p) for p in (6379, 6380)]
    counted(ec2_stubber, A, held={A: [*office_rules(A, 20), *theirs]})
    prefix_list_sizes(ec2_stubber, [PREFIX_LIST], {PREFIX_LIST: 20})
    for port in (6379, 6380):
        hold_fresh(ledger_stubber, A, port, physical_id=physical_id, source=PREFIX_LIST, taken=True)
        state(
            ledger_stubber, A, port, entry(holders=1, version=3, rule_id=f"sgr-{port}"), False, physical_id, PREFIX_LIST
        )
        ledger_stubber.add_response("transact_write_items", {})  # joined
        listed_authorize(ec2_stubber, A, port, physical_id, error="InvalidPermission.Duplicate")
    answer = invoke(ranged_event(SourcePrefixListId=PREFIX_LIST))
    assert_success(answer)
    assert answer["Data"]["SecurityGroupRuleIds"] == "sgr-6379,sgr-6380"


def test_a_group_filled_by_another_writer_after_the_count_fails_with_the_quota_reason_and_holds_nothing(
    stubber: Stubber, ec2_stubber: Stubber, ledger_stubber: Stubber
) -> None:
    serverless(stubber, [A])
    counted(ec2_stubber, A)
    hold_fresh(ledger_stubber, A, 6379)
    authorize(ec2_stubber, A, 6379, error="RulesPerSecurityGroupLimitExceeded")
    withdraw(ledger_stubber, A, 6379)
    answer = invoke(vpc_event(ServerlessCacheName="sessions"))
    assert_failed(answer, f"security group {A} has no room for these rules within its quota of inbound rules")
    assert "another writer may have added rules since they were counted" in answer["Reason"]
    assert "higher quota in Service Quotas" in answer["Reason"]
