"""What template.yaml deploys and what the example consumer declares, read the way CloudFormation reads them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from cache_ingress.claims import TAG_PREFIX

ROOT = Path(__file__).resolve().parents[2]
#: Each API class of handler/cache_ingress/aws_api.py, and the IAM service its client calls.
API_SERVICES = {
    "ElastiCacheApi": "elasticache",
    "Ec2Api": "ec2",
    "MemoryDbApi": "memorydb",
    "ServiceQuotasApi": "servicequotas",
}
#: The resources each action may touch: this account and region, and only the kind of resource it needs.
SCOPES = {
    "elasticache:AuthorizeCacheSecurityGroupIngress": ["elasticache", "securitygroup:*"],
    "elasticache:RevokeCacheSecurityGroupIngress": ["elasticache", "securitygroup:*"],
    "elasticache:DescribeCacheSecurityGroups": ["elasticache", "securitygroup:*"],
    "elasticache:DescribeReplicationGroups": ["elasticache", "replicationgroup:*", "cluster:*", "serverlesscache:*"],
    "elasticache:DescribeCacheClusters": ["elasticache", "replicationgroup:*", "cluster:*", "serverlesscache:*"],
    "elasticache:DescribeServerlessCaches": ["elasticache", "replicationgroup:*", "cluster:*", "serverlesscache:*"],
    "ec2:AuthorizeSecurityGroupIngress": ["ec2", "security-group/*", "security-group-rule/*"],
    "ec2:RevokeSecurityGroupIngress": ["ec2", "security-group/*", "security-group-rule/*"],
    "ec2:UpdateSecurityGroupRuleDescriptionsIngress": ["ec2", "security-group/*", "security-group-rule/*"],
    "ec2:CreateTags": ["ec2", "security-group-rule/*"],
    "ec2:DeleteTags": ["ec2", "security-group-rule/*"],
    # MemoryDB's ARNs: arn:<partition>:memorydb:<region>:<account>:cluster/<name> (Service Authorization Reference).
    "memorydb:DescribeClusters": ["memorydb", "cluster/*"],
    # Service Quotas' ARNs: arn:<partition>:servicequotas:<region>:<account>:<service code>/<quota code>; only
    # the quota of rules per security group is read.
    "servicequotas:GetServiceQuota": ["servicequotas", "vpc/L-0EA8095F"],
}
#: Actions EC2 authorizes on no resource but "*" (the Service Authorization Reference lists no resource type).
UNSCOPED = {"ec2:DescribeSecurityGroupRules", "ec2:DescribeManagedPrefixLists"}


def calls_the_function_makes() -> set[str]:
    """IAM action names of every ``self.client.<method>`` call in aws_api.py, read from the source."""
    source = (ROOT / "handler" / "cache_ingress" / "aws_api.py").read_text()
    actions = set()
    for name, body in re.findall(r"^class (\w+)(.*?)(?=^class |\Z)", source, re.S | re.M):
        for method in re.findall(r"self\.client\.(\w+)", body):
            actions.add(f"{API_SERVICES[name]}:{''.join(part.title() for part in method.split('_'))}")
    return actions


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(ROOT / "template.yaml"))
    return loaded


@pytest.fixture(scope="module")
def consumer() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(ROOT / "examples" / "consumer.yaml"))
    return loaded


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    role = template["Resources"]["IngressRole"]["Properties"]
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_the_function_runs_a_current_python_on_arm64_built_without_docker(template: dict[str, Any]) -> None:
    function = template["Resources"]["IngressFunction"]
    assert function["Type"] == "AWS::Serverless::Function"
    assert function["Properties"]["Runtime"] in ("python3.12", "python3.13")
    assert function["Properties"]["Architectures"] == ["arm64"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert function["Properties"]["Handler"] == "app.lambda_handler"


def test_the_timeout_leaves_room_to_wait_for_elasticache(template: dict[str, Any]) -> None:
    assert 120 <= template["Resources"]["IngressFunction"]["Properties"]["Timeout"] <= 900


def test_the_role_grants_only_the_calls_the_function_makes(template: dict[str, Any]) -> None:
    actions = {a for s in statements(template) for a in as_list(s["Action"])}
    assert calls_the_function_makes() == set(SCOPES) | UNSCOPED
    assert actions == set(SCOPES) | UNSCOPED | {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert all(s["Effect"] == "Allow" for s in statements(template))
    assert not any("*" in a for a in actions)


def test_each_action_is_scoped_to_its_kind_of_resource_in_this_account_and_region(template: dict[str, Any]) -> None:
    for statement in statements(template):
        for action in as_list(statement["Action"]):
            if action.startswith("logs:") or action in UNSCOPED:
                continue
            service, *kinds = SCOPES[action]
            prefix = f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:"
            assert as_list(statement["Resource"]) == [{"Fn::Sub": prefix + kind} for kind in kinds], action


def test_logs_go_only_to_the_functions_own_log_group(template: dict[str, Any]) -> None:
    logs = [s for s in statements(template) if any(a.startswith("logs:") for a in as_list(s["Action"]))]
    assert [s["Resource"] for s in logs] == [{"Fn::GetAtt": ["IngressLogGroup", "Arn"]}]
    function = template["Resources"]["IngressFunction"]["Properties"]
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "IngressLogGroup"}


def test_no_resource_wildcard_but_where_ec2_allows_none_and_no_managed_policies(template: dict[str, Any]) -> None:
    role = template["Resources"]["IngressRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    wildcard = [s for s in statements(template) if "*" in as_list(s["Resource"])]
    assert [as_list(s["Action"]) for s in wildcard] == [sorted(UNSCOPED)]
    assert "Policies" not in template["Resources"]["IngressFunction"]["Properties"]  # SAM would add a broad role


def test_only_lambda_in_this_account_may_assume_the_role(template: dict[str, Any]) -> None:
    (trust,) = template["Resources"]["IngressRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_logs_are_kept_for_the_chosen_retention_and_level(template: dict[str, Any]) -> None:
    group = template["Resources"]["IngressLogGroup"]["Properties"]
    assert group["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert template["Parameters"]["LogLevel"]["Default"] == "INFO"
    variables = template["Resources"]["IngressFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}


def test_the_service_token_is_exported(template: dict[str, Any]) -> None:
    output = template["Outputs"]["ServiceToken"]
    assert output["Value"] == {"Fn::GetAtt": ["IngressFunction", "Arn"]}
    assert output["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-ServiceToken"}


def test_the_consumer_declares_the_resource_with_a_service_timeout_and_reads_its_attributes(
    consumer: dict[str, Any], template: dict[str, Any]
) -> None:
    resource = consumer["Resources"]["AppCacheIngress"]
    assert resource["Type"] == "Custom::CacheSecurityGroupIngress"
    assert 1 <= int(resource["Properties"]["ServiceTimeout"]) <= 3600
    assert resource["Properties"]["ServiceToken"] == {
        "Fn::ImportValue": {"Fn::Sub": "${ProviderStackName}-ServiceToken"}
    }
    read = {o["Value"]["Fn::GetAtt"][1] for o in consumer["Outputs"].values() if "Fn::GetAtt" in o["Value"]}
    assert read <= {"CacheSecurityGroupName", "EC2SecurityGroupName", "EC2SecurityGroupOwnerId", "Status"}
    assert read


def test_other_accounts_cannot_invoke_the_function_unless_a_parameter_opts_in(template: dict[str, Any]) -> None:
    permissions = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Lambda::Permission"}
    assert list(permissions) == ["CrossAccountInvoke"]
    permission = permissions["CrossAccountInvoke"]
    assert permission["Condition"] == "HasInvokerAccount"
    assert template["Conditions"]["HasInvokerAccount"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "InvokerAccountId"}, ""]}]
    }
    assert template["Parameters"]["InvokerAccountId"]["Default"] == ""
    assert permission["Properties"]["Principal"] == {"Ref": "InvokerAccountId"}
    assert permission["Properties"]["Action"] == "lambda:InvokeFunction"


def test_the_vpc_consumer_names_the_cache_alone_and_reads_attributes_the_function_returns(
    template: dict[str, Any],
) -> None:
    consumer: dict[str, Any] = cfn_yaml.load(str(ROOT / "examples" / "vpc-consumer.yaml"))
    properties = consumer["Resources"]["AppCacheAccess"]["Properties"]
    assert set(properties) == {"ServiceToken", "ServiceTimeout", "ReplicationGroupId", "SourceSecurityGroupId"}
    read = {o["Value"]["Fn::GetAtt"][1] for o in consumer["Outputs"].values() if "Fn::GetAtt" in o["Value"]}
    assert read
    assert read <= {"Port", "Ports", "TargetSecurityGroupIds", "SourceSecurityGroupId", "Description"}


def test_the_memorydb_consumer_names_the_cluster_alone_and_reads_attributes_the_function_returns() -> None:
    consumer: dict[str, Any] = cfn_yaml.load(str(ROOT / "examples" / "memorydb-consumer.yaml"))
    properties = consumer["Resources"]["AppStoreAccess"]["Properties"]
    assert set(properties) == {"ServiceToken", "ServiceTimeout", "MemoryDBClusterName", "SourceSecurityGroupId"}
    assert properties["MemoryDBClusterName"] == {"Ref": "ClusterName"}
    read = {o["Value"]["Fn::GetAtt"][1] for o in consumer["Outputs"].values() if "Fn::GetAtt" in o["Value"]}
    assert read
    assert read <= {"Port", "Ports", "TargetSecurityGroupIds", "SourceSecurityGroupId", "Description"}


def test_claims_are_written_only_with_this_resources_tag_keys_and_only_while_authorizing(
    template: dict[str, Any],
) -> None:
    (tagging,) = [s for s in statements(template) if "ec2:CreateTags" in as_list(s["Action"])]
    assert sorted(as_list(tagging["Action"])) == ["ec2:CreateTags", "ec2:DeleteTags"]
    assert tagging["Condition"] == {
        "StringEqualsIfExists": {"ec2:CreateAction": "AuthorizeSecurityGroupIngress"},
        "ForAllValues:StringLike": {"aws:TagKeys": f"{TAG_PREFIX}*"},
        "Null": {"aws:TagKeys": "false"},
    }


def test_tag_writes_must_name_their_keys_so_a_delete_tags_without_keys_cannot_wipe_a_rules_tags(
    template: dict[str, Any],
) -> None:
    """DeleteTags without ``Tags`` deletes every tag of the resource, and then the request has no aws:TagKeys.

    ``ForAllValues`` over an empty (absent) key set is true (IAM User Guide, "Multivalued context keys"), so
    the keys condition alone lets the role strip any person's or tool's tags off any rule. A ``Null``
    condition on aws:TagKeys makes the request name its keys, which the function always does.
    """
    (tagging,) = [s for s in statements(template) if "ec2:DeleteTags" in as_list(s["Action"])]
    assert tagging["Condition"].get("Null") == {"aws:TagKeys": "false"}
