"""moto, as ``offline/moto_backend.py`` corrects it, answers as the EC2 API Reference and the DynamoDB Developer
Guide describe.

Every test here drives moto's server over HTTP with boto3, and fails on plain
moto 5.2.5 (without the correction it names). The EC2 pages cited are in the
Amazon EC2 API Reference, https://docs.aws.amazon.com/AWSEC2/latest/APIReference/:
the action's page, the data type's page, and "Error codes for the Amazon EC2
API" (errors-overview.html) for the error codes; the DynamoDB pages in its
Developer Guide.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.responses import DynamoHandler
from moto.ec2.models.security_groups import SecurityGroupBackend, SecurityGroupRule
from moto.ec2.responses.security_groups import SecurityGroups
from moto.memorydb.models import MemoryDBCluster
from moto.memorydb.responses import MemoryDBResponse

from offline import moto_backend
from offline.ledger_table import LEDGER_TABLE
from offline.moto_backend import MotoBackend

OWNER = "123456789012"
PORT = 6379
SUBNET = "10.0.0.0/24"
TAGS = [{"ResourceType": "security-group-rule", "Tags": [{"Key": "stack", "Value": "s1"}]}]


@pytest.fixture
def ec2(moto: MotoBackend) -> Any:
    return moto.client("ec2")


def from_group(source: str, port: int = PORT, description: str | None = None) -> dict[str, Any]:
    pair = {"GroupId": source, **({"Description": description} if description else {})}
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "UserIdGroupPairs": [pair]}


def from_cidr(cidr: str = SUBNET, port: int = PORT, description: str | None = None) -> dict[str, Any]:
    ip_range = {"CidrIp": cidr, **({"Description": description} if description else {})}
    return {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [ip_range]}


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def ingress_rules(ec2: Any, group_id: str) -> list[dict[str, Any]]:
    """DescribeSecurityGroupRules: the group's ingress rules."""
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    return [rule for rule in rules["SecurityGroupRules"] if not rule["IsEgress"]]


def rule_tags(ec2: Any) -> list[dict[str, str]]:
    tags: list[dict[str, str]] = ec2.describe_tags(
        Filters=[{"Name": "resource-type", "Values": ["security-group-rule"]}]
    )["Tags"]
    return tags


def descriptions_by_rules(ec2: Any, group_id: str) -> dict[str, str | None]:
    """DescribeSecurityGroupRules: source (group id or CIDR) -> the rule's Description."""
    return {
        rule.get("ReferencedGroupInfo", {}).get("GroupId") or rule["CidrIpv4"]: rule.get("Description")
        for rule in ingress_rules(ec2, group_id)
    }


def descriptions_by_group(ec2: Any, group_id: str) -> dict[str, str | None]:
    """DescribeSecurityGroups: source (group id or CIDR) -> the description its entry in IpPermissions shows."""
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    described: dict[str, str | None] = {}
    for permission in group["IpPermissions"]:
        for pair in permission.get("UserIdGroupPairs", []):
            described[pair["GroupId"]] = pair.get("Description")
        for ip_range in permission.get("IpRanges", []):
            described[ip_range["CidrIp"]] = ip_range.get("Description")
    return described


# AuthorizeSecurityGroupIngress (API_AuthorizeSecurityGroupIngress.html): the call adds the rules its
# IpPermissions name, tagged per TagSpecifications; a rule that already exists is InvalidPermission.Duplicate
# (errors-overview.html), and then EC2 adds none of them. Plain moto adds those before the duplicate, tagged.


@pytest.mark.parametrize("shape", ["two permissions", "two pairs in one permission"])
def test_authorize_naming_one_existing_rule_adds_and_tags_none(moto: MotoBackend, ec2: Any, shape: str) -> None:
    groups = moto.security_groups("cache", "web", "api")
    cache, web, api = groups["cache"], groups["web"], groups["api"]
    ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=[from_group(web)])
    before = ingress_rules(ec2, cache)
    if shape == "two permissions":
        permissions = [from_group(api), from_group(web)]
    else:
        permissions = [{**from_group(api), "UserIdGroupPairs": [{"GroupId": api}, {"GroupId": web}]}]

    with pytest.raises(ClientError) as excinfo:
        ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=permissions, TagSpecifications=TAGS)

    assert error_of(excinfo) == ("InvalidPermission.Duplicate", 400)
    assert ingress_rules(ec2, cache) == before
    assert moto.ingress(cache) == {(web, OWNER, PORT, "")}
    assert rule_tags(ec2) == []


def test_authorize_that_fails_leaves_the_same_call_free_to_succeed_later(moto: MotoBackend, ec2: Any) -> None:
    """Nothing of the failed call is left behind: once the duplicate is revoked, the same call adds both, tagged."""
    groups = moto.security_groups("cache", "web", "api")
    cache, web, api = groups["cache"], groups["web"], groups["api"]
    ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=[from_group(web)])
    permissions = [from_group(api, description="api"), from_group(web, description="web")]
    with pytest.raises(ClientError):
        ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=permissions, TagSpecifications=TAGS)
    ec2.revoke_security_group_ingress(GroupId=cache, IpPermissions=[from_group(web)])

    ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=permissions, TagSpecifications=TAGS)

    assert moto.ingress(cache) == {(api, OWNER, PORT, "api"), (web, OWNER, PORT, "web")}
    rule_ids = {rule["SecurityGroupRuleId"] for rule in ingress_rules(ec2, cache)}
    assert {tag["ResourceId"] for tag in rule_tags(ec2)} == rule_ids


def test_authorize_answers_with_every_rule_it_added(moto: MotoBackend, ec2: Any) -> None:
    """API_AuthorizeSecurityGroupIngress.html: SecurityGroupRules, "information about the inbound (ingress)
    security group rules that were added"; plain moto lists only the last permission's."""
    groups = moto.security_groups("cache", "web")
    cache, web = groups["cache"], groups["web"]
    permissions = [from_group(web, port=6379), from_group(web, port=6380)]
    answer = ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=permissions, TagSpecifications=TAGS)
    added = {(rule["FromPort"], rule["SecurityGroupRuleId"]) for rule in answer["SecurityGroupRules"]}
    held = {(rule["FromPort"], rule["SecurityGroupRuleId"]) for rule in ingress_rules(ec2, cache)}
    assert added == held
    assert {port for port, _ in added} == {6379, 6380}


# UpdateSecurityGroupRuleDescriptionsIngress (API_UpdateSecurityGroupRuleDescriptionsIngress.html) updates the
# description of existing rules, named by IpPermissions or by id in SecurityGroupRuleDescriptions. A rule the
# group does not have is InvalidPermission.NotFound, an unknown rule id InvalidSecurityGroupRuleId.NotFound
# (errors-overview.html). Plain moto answers success for both and changes nothing; it ignores
# SecurityGroupRuleDescriptions altogether.


@pytest.mark.parametrize("missing", ["another port", "another source", "one of two"])
def test_update_description_of_a_rule_not_there_is_not_found(moto: MotoBackend, ec2: Any, missing: str) -> None:
    groups = moto.security_groups("cache", "web", "api")
    cache, web, api = groups["cache"], groups["web"], groups["api"]
    ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=[from_group(web, description="old")])
    permissions = {
        "another port": [from_group(web, PORT + 1, "new")],
        "another source": [from_group(api, PORT, "new")],
        "one of two": [from_group(web, PORT, "new"), from_group(web, PORT + 1, "new")],
    }[missing]

    with pytest.raises(ClientError) as excinfo:
        ec2.update_security_group_rule_descriptions_ingress(GroupId=cache, IpPermissions=permissions)

    assert error_of(excinfo) == ("InvalidPermission.NotFound", 400)
    assert moto.ingress(cache) == {(web, OWNER, PORT, "old")}  # the call changed nothing


@pytest.mark.parametrize("known_too", [False, True])
def test_update_description_of_an_unknown_rule_id_is_not_found(moto: MotoBackend, ec2: Any, known_too: bool) -> None:
    groups = moto.security_groups("cache", "web")
    cache, web = groups["cache"], groups["web"]
    ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=[from_group(web, description="old")])
    (known,) = ingress_rules(ec2, cache)
    descriptions = [{"SecurityGroupRuleId": "sgr-0123456789abcdef0", "Description": "new"}]
    if known_too:
        descriptions.insert(0, {"SecurityGroupRuleId": known["SecurityGroupRuleId"], "Description": "new"})

    with pytest.raises(ClientError) as excinfo:
        ec2.update_security_group_rule_descriptions_ingress(GroupId=cache, SecurityGroupRuleDescriptions=descriptions)

    assert error_of(excinfo) == ("InvalidSecurityGroupRuleId.NotFound", 400)
    assert moto.ingress(cache) == {(web, OWNER, PORT, "old")}


def test_update_description_by_rule_id_changes_what_both_describes_report(moto: MotoBackend, ec2: Any) -> None:
    groups = moto.security_groups("cache", "web")
    cache, web = groups["cache"], groups["web"]
    ec2.authorize_security_group_ingress(
        GroupId=cache, IpPermissions=[from_group(web, description="old"), from_cidr(description="subnet")]
    )
    (web_rule,) = [r for r in ingress_rules(ec2, cache) if r.get("ReferencedGroupInfo", {}).get("GroupId") == web]

    ec2.update_security_group_rule_descriptions_ingress(
        GroupId=cache,
        SecurityGroupRuleDescriptions=[{"SecurityGroupRuleId": web_rule["SecurityGroupRuleId"], "Description": "new"}],
    )

    expected = {web: "new", SUBNET: "subnet"}
    assert descriptions_by_rules(ec2, cache) == expected
    assert descriptions_by_group(ec2, cache) == expected


def test_update_description_by_ip_permissions_changes_it(moto: MotoBackend, ec2: Any) -> None:
    """The form the handler uses: the rule is named without its old description (not part of what identifies it)."""
    groups = moto.security_groups("cache", "web")
    cache, web = groups["cache"], groups["web"]
    ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=[from_group(web, description="old")])

    ec2.update_security_group_rule_descriptions_ingress(GroupId=cache, IpPermissions=[from_group(web, PORT, "new")])

    assert moto.ingress(cache) == {(web, OWNER, PORT, "new")}
    assert descriptions_by_rules(ec2, cache) == {web: "new"}


# DescribeSecurityGroupRules (API_DescribeSecurityGroupRules.html) answers SecurityGroupRule items
# (API_SecurityGroupRule.html), whose Description is the rule's description, whatever its source. Plain moto
# reports it for CIDR rules only; DescribeSecurityGroups (API_DescribeSecurityGroups.html) shows it for both.


def test_describe_security_group_rules_reports_each_rules_description(moto: MotoBackend, ec2: Any) -> None:
    groups = moto.security_groups("cache", "web", "api")
    cache, web, api = groups["cache"], groups["web"], groups["api"]
    ec2.authorize_security_group_ingress(
        GroupId=cache,
        IpPermissions=[
            {**from_group(web), "UserIdGroupPairs": [{"GroupId": web, "Description": "from web"}, {"GroupId": api}]},
            from_cidr(description="from the subnet"),
        ],
    )

    expected = {web: "from web", api: None, SUBNET: "from the subnet"}
    assert descriptions_by_rules(ec2, cache) == expected
    assert descriptions_by_group(ec2, cache) == expected


# SecurityGroupRule (API_SecurityGroupRule.html): Description is the rule's whatever its source, a
# prefix list's included (PrefixListId names that source); UpdateSecurityGroupRuleDescriptionsIngress by rule id
# changes it. Plain moto keeps a prefix list's id only, and drops the description it was given.


def from_prefix_list(prefix_list: str, description: str) -> dict[str, Any]:
    entry = {"PrefixListId": prefix_list, "Description": description}
    return {"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT, "PrefixListIds": [entry]}


def test_a_rule_from_a_prefix_list_keeps_its_description(moto: MotoBackend, ec2: Any) -> None:
    cache = moto.security_groups("cache")["cache"]
    agents = moto.prefix_list("build-agents", ["10.8.0.0/16"])
    made = ec2.authorize_security_group_ingress(
        GroupId=cache, IpPermissions=[from_prefix_list(agents, "from the build agents")]
    )["SecurityGroupRules"]
    assert [(rule["PrefixListId"], rule.get("Description")) for rule in made] == [(agents, "from the build agents")]

    ec2.update_security_group_rule_descriptions_ingress(
        GroupId=cache,
        SecurityGroupRuleDescriptions=[{"SecurityGroupRuleId": made[0]["SecurityGroupRuleId"], "Description": "ci"}],
    )
    held = ingress_rules(ec2, cache)
    assert [(rule["PrefixListId"], rule.get("Description")) for rule in held] == [(agents, "ci")]


# AuthorizeSecurityGroupIngress (API_AuthorizeSecurityGroupIngress.html, PrefixListId in API_PrefixListId.html):
# the prefix list must exist; an unknown id is InvalidPrefixListID.NotFound (errors-overview.html), "The prefix
# list ID 'pl-...' does not exist", and the call adds nothing. Plain moto adds a rule from any pl- id.


def test_authorize_from_a_prefix_list_that_does_not_exist_is_not_found(moto: MotoBackend, ec2: Any) -> None:
    cache = moto.security_groups("cache")["cache"]
    with pytest.raises(ClientError) as excinfo:
        ec2.authorize_security_group_ingress(
            GroupId=cache, IpPermissions=[from_cidr(), from_prefix_list("pl-0123456789abcdef0", "nobody's")]
        )
    assert error_of(excinfo) == ("InvalidPrefixListID.NotFound", 400)
    assert "pl-0123456789abcdef0" in excinfo.value.response["Error"]["Message"]
    assert ingress_rules(ec2, cache) == []


# A rule's CIDR as EC2 keeps it: EC2 masks an IPv4 range's host bits (10.0.0.7/24 is kept as 10.0.0.0/24;
# ansible/ansible#25403) and reports IPv6 ranges in lower case (hashicorp/terraform-provider-aws#25588),
# so two spellings of one range are one rule: the second is InvalidPermission.Duplicate. The API Reference
# does not say; those threads do, from EC2's answers. Plain moto keeps each spelling as a rule of its own.


@pytest.mark.parametrize(
    ("spelled", "kept"),
    [
        ("10.0.0.7/24", "10.0.0.0/24"),
        ("2001:DB8:AB::/48", "2001:db8:ab::/48"),
        ("2001:0db8:00ab::/48", "2001:db8:ab::/48"),
    ],
)
def test_a_cidr_is_kept_as_ec2_keeps_it_and_another_spelling_of_it_is_the_same_rule(
    moto: MotoBackend, ec2: Any, spelled: str, kept: str
) -> None:
    cache = moto.security_groups("cache")["cache"]
    key = "CidrIpv6" if ":" in spelled else "CidrIp"
    ranges = "Ipv6Ranges" if ":" in spelled else "IpRanges"

    def permission(cidr: str) -> dict[str, Any]:
        return {"IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT, ranges: [{key: cidr}]}

    ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=[permission(spelled)])
    assert [rule.get("CidrIpv4") or rule.get("CidrIpv6") for rule in ingress_rules(ec2, cache)] == [kept]
    with pytest.raises(ClientError) as excinfo:
        ec2.authorize_security_group_ingress(GroupId=cache, IpPermissions=[permission(kept)])
    assert error_of(excinfo) == ("InvalidPermission.Duplicate", 400)
    ec2.revoke_security_group_ingress(GroupId=cache, IpPermissions=[permission(spelled)])
    assert ingress_rules(ec2, cache) == []


# MemoryDB API Reference, Cluster: NetworkType, "'ipv4' for IPv4 only, 'ipv6' for IPv6 only, or 'dual-stack'";
# CreateCluster: NetworkType, "If not specified, the default is 'ipv4'".
@pytest.mark.parametrize(("asked", "reported"), [({}, "ipv4"), ({"NetworkType": "dual_stack"}, "dual_stack")])
def test_a_memorydb_cluster_reports_its_network_type(moto: MotoBackend, asked: dict[str, str], reported: str) -> None:
    memorydb = moto.client("memorydb")
    memorydb.create_cluster(ClusterName="typed", NodeType="db.t4g.small", ACLName="open-access", **asked)
    (cluster,) = memorydb.describe_clusters(ClusterName="typed")["Clusters"]
    assert cluster["NetworkType"] == reported


# DynamoDB (Developer Guide, https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/): a conditional
# write checks and writes as one step ("Conditional writes" in WorkingWithItems.html: "a conditional write
# succeeds only if the item attributes meet one or more expected conditions"; optimistic locking builds on it),
# and "TransactWriteItems ... The actions are completed atomically so that either all of them succeed or none of
# them succeeds", isolated from every other write: "SERIALIZABLE isolation is ensured between ... any
# transactional operation and any standard write operation (PutItem, UpdateItem, or DeleteItem)"
# (transaction-apis.html, "Isolation levels for DynamoDB transactions"). Plain moto serves requests in threads
# without a lock: a conditional UpdateItem checks, then writes, so two increments that saw the same count both
# succeed; a TransactWriteItems copies each table it names and, if a condition fails, puts the copy back,
# undoing every write to that table that was answered in between.

COUNTER = {"pk": {"S": "counter"}, "sk": {"S": "n"}}


def increment_until(dynamodb: Any, successes: int) -> int:
    """Optimistic locking: read the count, write the next one only if the count is still what was read; read
    again when it was not."""
    done = 0
    while done < successes:
        seen = dynamodb.get_item(TableName=LEDGER_TABLE, Key=COUNTER, ConsistentRead=True)["Item"]["n"]["N"]
        try:
            dynamodb.update_item(
                TableName=LEDGER_TABLE,
                Key=COUNTER,
                UpdateExpression="SET n = :next",
                ConditionExpression="n = :seen",
                ExpressionAttributeValues={":next": {"N": str(int(seen) + 1)}, ":seen": {"N": seen}},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            continue
        done += 1
    return done


@pytest.fixture
def threads_interleaved() -> Iterator[None]:
    """The interpreter switches threads every 10 microseconds instead of every 5 milliseconds: a check and its
    write, a few steps apart in moto's code, are then often split by another request, as on a server of many
    cores (at 5 ms they almost never are, and plain moto would pass by luck)."""
    was = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(was)


@pytest.mark.usefixtures("threads_interleaved")
def test_conditional_writes_are_atomic_under_concurrent_requests(moto: MotoBackend) -> None:
    """Four writers each count forty with optimistic locking: every success is one more, none overwrites another."""
    dynamodb = moto.client("dynamodb")
    dynamodb.put_item(TableName=LEDGER_TABLE, Item={**COUNTER, "n": {"N": "0"}})
    with ThreadPoolExecutor(4) as pool:
        successes = sum(pool.map(lambda _: increment_until(dynamodb, 40), range(4)))
    final = dynamodb.get_item(TableName=LEDGER_TABLE, Key=COUNTER, ConsistentRead=True)["Item"]["n"]["N"]
    assert (successes, int(final)) == (160, 160)


@pytest.mark.usefixtures("threads_interleaved")
def test_a_failed_transaction_undoes_no_write_made_by_another_request(moto: MotoBackend) -> None:
    """Two requesters send a transaction that always fails while a third writes other items one at a time, until
    the transactions have been refused 200 times: every write answered is still held, and the refused put is not."""
    dynamodb = moto.client("dynamodb")
    failing = [
        {"Put": {"TableName": LEDGER_TABLE, "Item": {"pk": {"S": "claim"}, "sk": {"S": "never"}}}},
        {"ConditionCheck": {"TableName": LEDGER_TABLE, "Key": COUNTER, "ConditionExpression": "attribute_exists(pk)"}},
    ]
    refusals: list[str] = []
    written = threading.Event()

    def fail_transactions() -> None:
        while not written.is_set():
            try:
                dynamodb.transact_write_items(TransactItems=failing)
            except ClientError as err:
                refusals.append(err.response["Error"]["Code"])
            else:
                refusals.append("succeeded")

    def write() -> list[str]:
        """The items written, each answered: what DynamoDB holds from then on."""
        done: list[str] = []
        try:
            while len(refusals) < 200 and len(done) < 3000:
                dynamodb.put_item(TableName=LEDGER_TABLE, Item={"pk": {"S": f"write#{len(done)}"}, "sk": {"S": "-"}})
                done.append(f"write#{len(done)}")
        finally:
            written.set()
        return done

    with ThreadPoolExecutor(3) as pool:
        refusing = [pool.submit(fail_transactions) for _ in range(2)]
        acknowledged = pool.submit(write).result()
        for future in refusing:
            future.result()

    held = {
        item["pk"]["S"]
        for page in dynamodb.get_paginator("scan").paginate(TableName=LEDGER_TABLE, ConsistentRead=True)
        for item in page["Items"]
    }
    assert [pk for pk in acknowledged if pk not in held] == []
    assert "claim" not in held
    assert set(refusals) == {"TransactionCanceledException"}


def corrected() -> list[object]:
    """What the corrections replace in moto."""
    return [
        SecurityGroupRule.__init__,
        SecurityGroupRule.__eq__,
        vars(SecurityGroupRule)["description"],
        SecurityGroupBackend._iterate_security_rules,
        SecurityGroups.authorize_security_group_ingress,
        SecurityGroups.update_security_group_rule_descriptions_ingress,
        SecurityGroups._process_rules_from_querystring,
        MemoryDBResponse.create_cluster,
        MemoryDBCluster.to_dict,
        DynamoHandler.call_action,
    ]


def test_the_corrections_apply_once(moto: MotoBackend) -> None:
    """MotoBackend.start() has applied them; applying them again wraps nothing twice."""
    applied = corrected()
    moto_backend._correct_moto()
    assert corrected() == applied
    assert applied[1] is moto_backend._rule_identity
    assert applied[4] is moto_backend._authorize_ingress
