"""The EC2 front's eventual consistency, seen through a real boto3 EC2 client: reads that lag writes, and groups
and rules that are NotFound a moment after they are made, as EC2 answers (EC2 API Reference, "Eventual
consistency in the Amazon EC2 API": "the result of an API command you run that affects your Amazon EC2
resources might not be immediately visible to all subsequent commands you run"; a resource just made may
answer ``InvalidGroup.NotFound`` or ``InvalidSecurityGroupRuleId.NotFound``). Both are off unless a test
turns them on; moto itself, asked directly, always has the latest state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from offline.ec2_front import Ec2Front
from offline.moto_backend import MotoBackend, source_of
from tests.support import Servers

LAG = 2.0  # long enough that the reads right after a write are made within it, even on a loaded machine
PORT = 6379
CLAIM = {"Key": "cache-ingress:claim:s1", "Value": "AppCacheIngress"}


@pytest.fixture
def front(servers: Servers, moto: MotoBackend) -> Ec2Front:
    """The function's EC2 endpoint, with no fault, no call, no lag and nothing NotFound (the ``moto`` fixture)."""
    return servers.ec2


@pytest.fixture
def groups(moto: MotoBackend) -> dict[str, str]:
    return moto.security_groups("cache", "web", "api")


def client(front: Ec2Front) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=front.url, config=config)


def permission(source: str, description: str = "web") -> dict[str, Any]:
    pair = {"GroupId": source, "Description": description}
    return {"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT, "UserIdGroupPairs": [pair]}


def authorize(ec2: Any, group: str, source: str, tags: list[dict[str, str]] | None = None) -> str:
    """Let ``source`` into ``group`` on PORT: the new rule's id."""
    specs = [{"ResourceType": "security-group-rule", "Tags": tags}] if tags else []
    made = ec2.authorize_security_group_ingress(
        GroupId=group, IpPermissions=[permission(source)], TagSpecifications=specs
    )
    rule_id: str = made["SecurityGroupRules"][0]["SecurityGroupRuleId"]
    return rule_id


def error_of(call: Callable[[], Any]) -> str | None:
    """The code ``call`` fails with, or None if it succeeds."""
    try:
        call()
    except ClientError as err:
        return str(err.response["Error"]["Code"])
    return None


def read(ec2: Any, group: str) -> dict[str, Any]:
    """What each read says of the TCP rules into ``group``: source -> (description, tags), per read."""
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group]}])["SecurityGroupRules"]
    (described,) = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    rule_ids = [rule["SecurityGroupRuleId"] for rule in rules if not rule["IsEgress"]]
    tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": rule_ids or ["sgr-none"]}])["Tags"]
    return {
        "rules": {
            source_of(r): (r.get("Description"), {t["Key"]: t["Value"] for t in r.get("Tags", [])})
            for r in rules
            if r.get("IpProtocol") == "tcp"
        },
        "permissions": {
            pair["GroupId"]: pair.get("Description")
            for p in described["IpPermissions"]
            for pair in p.get("UserIdGroupPairs", [])
        },
        "tags": {(t["ResourceId"], t["Key"]): t["Value"] for t in tags},
    }


def eventually(condition: Callable[[], bool], within: float = 10.0) -> float:
    """Polls ``condition`` until it holds (at most ``within`` seconds): when it first held, on the monotonic clock."""
    ends = time.monotonic() + within
    while not condition():
        assert time.monotonic() < ends, "the condition never held"
        time.sleep(0.05)
    return time.monotonic()


def test_without_a_lag_a_read_shows_the_write_before_it(front: Ec2Front, groups: dict[str, str]) -> None:
    ec2 = client(front)
    rule = authorize(ec2, groups["cache"], groups["web"], [CLAIM])
    assert read(ec2, groups["cache"]) == {
        "rules": {groups["web"]: ("web", {CLAIM["Key"]: CLAIM["Value"]})},
        "permissions": {groups["web"]: "web"},
        "tags": {(rule, CLAIM["Key"]): CLAIM["Value"]},
    }


def test_a_rule_made_shows_in_no_read_until_the_lag_is_over(
    front: Ec2Front, moto: MotoBackend, groups: dict[str, str]
) -> None:
    ec2 = client(front)
    cache = groups["cache"]
    front.set_read_lag(LAG)
    rule = authorize(ec2, cache, groups["web"], [CLAIM])
    (made,) = front.calls("AuthorizeSecurityGroupIngress")

    assert read(ec2, cache) == {"rules": {}, "permissions": {}, "tags": {}}
    assert error_of(lambda: ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule])) == (
        "InvalidSecurityGroupRuleId.NotFound"
    )
    assert moto.rule_tags(cache) == {(groups["web"], PORT): {CLAIM["Key"]: CLAIM["Value"]}}  # moto has it already

    seen = eventually(lambda: bool(read(ec2, cache)["rules"]))
    assert seen - made.arrived >= LAG
    assert read(ec2, cache) == {
        "rules": {groups["web"]: ("web", {CLAIM["Key"]: CLAIM["Value"]})},
        "permissions": {groups["web"]: "web"},
        "tags": {(rule, CLAIM["Key"]): CLAIM["Value"]},
    }
    assert ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule])["SecurityGroupRules"]


def test_a_rule_revoked_still_shows_as_it_was_until_the_lag_is_over(
    front: Ec2Front, moto: MotoBackend, groups: dict[str, str]
) -> None:
    ec2 = client(front)
    cache, web, api = groups["cache"], groups["web"], groups["api"]
    rule = authorize(moto.client("ec2"), cache, web, [CLAIM])  # made in moto directly: there before the lag
    authorize(moto.client("ec2"), cache, api)
    before = read(ec2, cache)
    front.set_read_lag(LAG)
    ec2.revoke_security_group_ingress(GroupId=cache, SecurityGroupRuleIds=[rule])
    (revoked,) = front.calls("RevokeSecurityGroupIngress")

    assert read(ec2, cache) == before
    assert before["rules"][web] == ("web", {CLAIM["Key"]: CLAIM["Value"]})
    (shown,) = ec2.describe_security_group_rules(SecurityGroupRuleIds=[rule])["SecurityGroupRules"]
    assert (shown["SecurityGroupRuleId"], shown["ReferencedGroupInfo"]["GroupId"]) == (rule, web)
    assert set(moto.rule_tags(cache)) == {(api, PORT)}  # moto has taken it back already

    gone = eventually(lambda: web not in read(ec2, cache)["rules"])
    assert gone - revoked.arrived >= LAG
    assert read(ec2, cache) == {
        "rules": {api: ("web", {})},
        "permissions": {api: "web"},
        "tags": {},
    }


def test_tags_made_and_deleted_show_as_they_were_until_the_lag_is_over(
    front: Ec2Front, moto: MotoBackend, groups: dict[str, str]
) -> None:
    ec2 = client(front)
    cache, web = groups["cache"], groups["web"]
    rule = authorize(moto.client("ec2"), cache, web, [CLAIM])
    front.set_read_lag(LAG)
    ec2.create_tags(Resources=[rule], Tags=[{"Key": "cache-ingress:claim:s2", "Value": "Other"}])
    ec2.delete_tags(Resources=[rule], Tags=[{"Key": CLAIM["Key"]}])
    (deleted,) = front.calls("DeleteTags")

    assert read(ec2, cache)["rules"] == {web: ("web", {CLAIM["Key"]: CLAIM["Value"]})}
    assert read(ec2, cache)["tags"] == {(rule, CLAIM["Key"]): CLAIM["Value"]}
    assert moto.rule_tags(cache) == {(web, PORT): {"cache-ingress:claim:s2": "Other"}}

    settled = eventually(lambda: read(ec2, cache)["tags"] == {(rule, "cache-ingress:claim:s2"): "Other"})
    assert settled - deleted.arrived >= LAG
    assert read(ec2, cache)["rules"] == {web: ("web", {"cache-ingress:claim:s2": "Other"})}


def test_a_group_named_not_found_answers_so_until_its_time_is_over(
    front: Ec2Front, moto: MotoBackend, groups: dict[str, str]
) -> None:
    ec2 = client(front)
    cache, web = groups["cache"], groups["web"]
    ends = time.monotonic() + LAG
    front.not_found_for(web, LAG)

    assert error_of(lambda: authorize(ec2, cache, web)) == "InvalidGroup.NotFound"  # as the source
    front.not_found_for(cache, LAG)
    assert error_of(lambda: ec2.describe_security_groups(GroupIds=[cache])) == "InvalidGroup.NotFound"
    assert moto.ingress(cache) == set()  # refused before moto
    assert [(c.status, c.error) for c in front.calls()] == [(400, "InvalidGroup.NotFound")] * 2

    eventually(lambda: error_of(lambda: authorize(ec2, cache, web)) is None)
    assert time.monotonic() >= ends
    assert {source for source, *_ in moto.ingress(cache)} == {web}


def test_groups_and_rules_made_through_the_front_are_not_found_for_a_while(
    front: Ec2Front, moto: MotoBackend, groups: dict[str, str]
) -> None:
    ec2 = client(front)
    front.new_resources_not_found_for(LAG)
    vpc = moto.client("ec2").describe_security_groups(GroupIds=[groups["cache"]])["SecurityGroups"][0]["VpcId"]
    fresh = ec2.create_security_group(GroupName="fresh", Description="made just now", VpcId=vpc)["GroupId"]
    assert error_of(lambda: authorize(ec2, fresh, groups["web"])) == "InvalidGroup.NotFound"
    rule = authorize(ec2, groups["cache"], groups["web"])
    tag = [{"Key": "k", "Value": "v"}]
    assert error_of(lambda: ec2.create_tags(Resources=[rule], Tags=tag)) == "InvalidSecurityGroupRuleId.NotFound"
    assert error_of(lambda: ec2.revoke_security_group_ingress(GroupId=groups["api"], SecurityGroupRuleIds=[rule])) == (
        "InvalidSecurityGroupRuleId.NotFound"
    )

    eventually(lambda: error_of(lambda: ec2.create_tags(Resources=[rule], Tags=tag)) is None)
    assert moto.rule_tags(groups["cache"]) == {(groups["web"], PORT): {"k": "v"}}
    eventually(lambda: error_of(lambda: authorize(ec2, fresh, groups["web"])) is None)
    assert {source for source, *_ in moto.ingress(fresh)} == {groups["web"]}


def test_a_reset_turns_both_off(front: Ec2Front, groups: dict[str, str]) -> None:
    front.set_read_lag(LAG)
    front.not_found_for(groups["web"], 60)
    front.new_resources_not_found_for(60)
    front.reset()
    ec2 = client(front)
    rule = authorize(ec2, groups["cache"], groups["web"])
    assert read(ec2, groups["cache"])["rules"] == {groups["web"]: ("web", {})}
    assert error_of(lambda: ec2.create_tags(Resources=[rule], Tags=[{"Key": "k", "Value": "v"}])) is None
