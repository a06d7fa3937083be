"""What template.yaml deploys and what the example consumer declares, read the way CloudFormation reads them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from cache_ingress.vpc_holds import TAG_PREFIX

ROOT = Path(__file__).resolve().parents[2]
#: Each API class of handler/cache_ingress/aws_api.py, and the IAM service its client calls.
API_SERVICES = {
    "ElastiCacheApi": "elasticache",
    "Ec2Api": "ec2",
    "MemoryDbApi": "memorydb",
    "LedgerApi": "dynamodb",
    "CloudFormationApi": "cloudformation",
    "IdentityApi": "sts",
}
#: Calls IAM lets anyone make: STS GetCallerIdentity ("No permissions are required", STS API Reference).
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity"}
#: DynamoDB has no TransactWriteItems action: each write a transaction holds is authorized as its own action
#: (DynamoDB Developer Guide, "Using IAM with DynamoDB transactions"). Here, the kinds of write aws_api.py
#: puts in one (the key of its TransactItems entry) and the action each is authorized as.
TRANSACTION_WRITES = {'"Put"': "dynamodb:PutItem", '"Update"': "dynamodb:UpdateItem", '"Delete"': "dynamodb:DeleteItem"}
#: An Authorize that tags the rules it makes (TagSpecifications) needs ec2:CreateTags as well (EC2 User Guide,
#: "Grant permission to tag resources during creation").
TAG_ON_CREATE = ("TagSpecifications=", "ec2:CreateTags")
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
    # MemoryDB's ARNs: arn:<partition>:memorydb:<region>:<account>:cluster/<name> (Service Authorization Reference).
    "memorydb:DescribeClusters": ["memorydb", "cluster/*"],
}
#: Actions EC2 authorizes on no resource but "*" (the Service Authorization Reference lists no resource type).
UNSCOPED = {"ec2:DescribeSecurityGroupRules"}


#: The ledger's item-level actions, each on the ledger table alone.
LEDGER_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
#: What only the scheduled check calls (DriftCheckSchedule): the role has them only when the schedule is on.
DRIFT_CHECK_ACTIONS = {"cloudformation:DescribeStacks", "dynamodb:Query", "dynamodb:Scan"}
DRIFT_CHECK_CONDITION = "HasDriftCheck"


def calls_the_function_makes() -> set[str]:
    """IAM action names of every ``self.client.<method>`` call in aws_api.py, read from the source.

    A transaction counts as the writes the source puts in one (:data:`TRANSACTION_WRITES`); tags given to a
    rule as it is made count as ec2:CreateTags (:data:`TAG_ON_CREATE`).
    """
    source = (ROOT / "handler" / "cache_ingress" / "aws_api.py").read_text()
    actions = set()
    for name, body in re.findall(r"^class (\w+)(.*?)(?=^class |\Z)", source, re.S | re.M):
        for method in re.findall(r"self\.client\.(\w+)", body):
            actions.add(f"{API_SERVICES[name]}:{''.join(part.title() for part in method.split('_'))}")
    if "dynamodb:TransactWriteItems" in actions:
        actions.remove("dynamodb:TransactWriteItems")
        actions |= {action for word, action in TRANSACTION_WRITES.items() if f"return {{{word}:" in source}
    if TAG_ON_CREATE[0] in source:
        actions.add(TAG_ON_CREATE[1])
    return actions


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(ROOT / "template.yaml"))
    return loaded


@pytest.fixture(scope="module")
def consumer() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(ROOT / "examples" / "consumer.yaml"))
    return loaded


def statements(template: dict[str, Any], *, drift_check: bool = False) -> list[dict[str, Any]]:
    """The role's statements as deployed: with the scheduled check on (``drift_check``) or off (the default)."""
    role = template["Resources"]["IngressRole"]["Properties"]
    found = []
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                condition, when_on, when_off = statement["Fn::If"]
                assert condition == DRIFT_CHECK_CONDITION
                assert when_off == {"Ref": "AWS::NoValue"}
                if drift_check:
                    found.append(when_on)
            else:
                found.append(statement)
    return found


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
    """The scheduled check's calls only when its schedule is on; the rest always."""
    always = set(SCOPES) | UNSCOPED | LEDGER_ACTIONS
    assert calls_the_function_makes() == always | DRIFT_CHECK_ACTIONS | NO_PERMISSION_NEEDED
    logs = {"logs:CreateLogStream", "logs:PutLogEvents"}
    for drift_check, granted in ((False, always), (True, always | DRIFT_CHECK_ACTIONS)):
        actions = {a for s in statements(template, drift_check=drift_check) for a in as_list(s["Action"])}
        assert actions == granted | logs, drift_check
        assert all(s["Effect"] == "Allow" for s in statements(template, drift_check=drift_check))
        assert not any("*" in a for a in actions)


def test_each_action_is_scoped_to_its_kind_of_resource_in_this_account_and_region(template: dict[str, Any]) -> None:
    scopes = {**SCOPES, "cloudformation:DescribeStacks": ["cloudformation", "stack/*"]}
    for statement in statements(template, drift_check=True):
        for action in as_list(statement["Action"]):
            if action.startswith(("logs:", "dynamodb:")) or action in UNSCOPED:
                continue
            service, *kinds = scopes[action]
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
    wildcard = [s for s in statements(template, drift_check=True) if "*" in as_list(s["Resource"])]
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
    assert sorted(permissions) == ["CrossAccountInvoke", "DriftCheckInvoke"]
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


def test_tags_are_written_only_with_this_resources_keys_and_only_as_authorize_makes_a_rule(
    template: dict[str, Any],
) -> None:
    """No tag is written on a rule that exists, and none deleted: ownership is in the ledger, not on the rule."""
    (tagging,) = [s for s in statements(template) if "ec2:CreateTags" in as_list(s["Action"])]
    assert as_list(tagging["Action"]) == ["ec2:CreateTags"]
    assert tagging["Condition"] == {
        "StringEquals": {"ec2:CreateAction": "AuthorizeSecurityGroupIngress"},
        "ForAllValues:StringLike": {"aws:TagKeys": f"{TAG_PREFIX}*"},
    }


def test_the_ledger_is_read_and_written_item_by_item_on_its_own_table_and_named_to_the_function(
    template: dict[str, Any],
) -> None:
    ledger = [s for s in statements(template) if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    assert [set(as_list(s["Action"])) for s in ledger] == [LEDGER_ACTIONS]
    assert [s["Resource"] for s in ledger] == [{"Fn::GetAtt": ["OwnershipLedger", "Arn"]}]
    variables = template["Resources"]["IngressFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["LEDGER_TABLE"] == {"Ref": "OwnershipLedger"}


def test_the_ledger_indexes_are_read_only_by_the_scheduled_check_and_only_the_by_cache_one(
    template: dict[str, Any],
) -> None:
    """A query or scan of the by-cache index, never of the table: the check lists caches and reads each one."""
    reads = [
        s
        for s in statements(template, drift_check=True)
        if {"dynamodb:Query", "dynamodb:Scan"} & set(as_list(s["Action"]))
    ]
    assert [set(as_list(s["Action"])) for s in reads] == [{"dynamodb:Query", "dynamodb:Scan"}]
    assert [s["Resource"] for s in reads] == [{"Fn::Sub": "${OwnershipLedger.Arn}/index/by-cache"}]
    indexes = template["Resources"]["OwnershipLedger"]["Properties"]["GlobalSecondaryIndexes"]
    assert "by-cache" in [index["IndexName"] for index in indexes]


def test_the_scheduled_check_is_off_unless_a_schedule_is_given_and_never_repairs_unless_asked(
    template: dict[str, Any],
) -> None:
    parameters = template["Parameters"]
    assert parameters["DriftCheckSchedule"]["Default"] == ""
    assert (parameters["RepairDrift"]["Default"], parameters["RepairDrift"]["AllowedValues"]) == (
        "false",
        ["true", "false"],
    )
    assert template["Conditions"][DRIFT_CHECK_CONDITION] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "DriftCheckSchedule"}, ""]}]
    }
    rule = template["Resources"]["DriftCheckRule"]
    assert (rule["Type"], rule["Condition"]) == ("AWS::Events::Rule", DRIFT_CHECK_CONDITION)
    assert rule["Properties"]["ScheduleExpression"] == {"Ref": "DriftCheckSchedule"}
    assert [t["Arn"] for t in rule["Properties"]["Targets"]] == [{"Fn::GetAtt": ["IngressFunction", "Arn"]}]
    assert "Input" not in rule["Properties"]["Targets"][0]  # the function is sent EventBridge's Scheduled Event
    invoke = template["Resources"]["DriftCheckInvoke"]
    assert invoke["Condition"] == DRIFT_CHECK_CONDITION
    assert invoke["Properties"]["Principal"] == "events.amazonaws.com"
    assert invoke["Properties"]["SourceArn"] == {"Fn::GetAtt": ["DriftCheckRule", "Arn"]}
    variables = template["Resources"]["IngressFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["REPAIR_DRIFT"] == {"Ref": "RepairDrift"}


def test_the_ledger_table_is_an_output_the_operators_command_reads(template: dict[str, Any]) -> None:
    from cache_ingress.cli import DEFAULT_STACK, LEDGER_OUTPUT

    assert template["Outputs"][LEDGER_OUTPUT]["Value"] == {"Ref": "OwnershipLedger"}
    samconfig = (ROOT / "samconfig.toml").read_text()
    assert f'stack_name = "{DEFAULT_STACK}"' in samconfig
