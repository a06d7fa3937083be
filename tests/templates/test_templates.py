"""What template.yaml deploys and what the example consumer declares, read the way CloudFormation reads them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from hypothesis import given
from hypothesis import strategies as st

from cache_ingress.vpc_holds import TAG_PREFIX

ROOT = Path(__file__).resolve().parents[2]
#: Each API class of handler/cache_ingress/aws_api.py, and the IAM service its client calls.
API_SERVICES = {
    "ElastiCacheApi": "elasticache",
    "Ec2Api": "ec2",
    "MemoryDbApi": "memorydb",
    "ServiceQuotasApi": "servicequotas",
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
    # Service Quotas' ARNs: arn:<partition>:servicequotas:<region>:<account>:<service code>/<quota code>; only
    # the quota of rules per security group is read.
    "servicequotas:GetServiceQuota": ["servicequotas", "vpc/L-0EA8095F"],
}
#: Actions EC2 authorizes on no resource but "*" (the Service Authorization Reference lists no resource type).
UNSCOPED = {"ec2:DescribeSecurityGroupRules", "ec2:DescribeManagedPrefixLists"}
#: The managed-group limit, with a value and with any value of the key.
LIMIT = {"ManagedGroupTagKey": "platform:managed", "ManagedGroupTagValue": "cache-ingress"}
LIMIT_ANY_VALUE = {"ManagedGroupTagKey": "platform:managed"}
ORGANIZATION = {"InvokerOrganizationId": "o-a1b2c3d4e5"}
#: Every choice of the parameters that shape the role or the resource policy.
CHOICES = [
    {},
    {"InvokerAccountId": "111122223333"},
    ORGANIZATION,
    LIMIT,
    LIMIT_ANY_VALUE,
    {**ORGANIZATION, **LIMIT, "InvokerAccountId": "111122223333"},
]
_NO_VALUE = object()


#: The ledger's item-level actions, each on the ledger table alone.
LEDGER_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
#: What only the scheduled check calls (DriftCheckSchedule): the role has them only when the schedule is on.
DRIFT_CHECK_ACTIONS = {"cloudformation:DescribeStacks", "dynamodb:Query", "dynamodb:Scan"}
DRIFT_CHECK_CONDITION = "HasDriftCheck"
#: The scheduled check turned on.
DRIFT_CHECK_ON = {"DriftCheckSchedule": "rate(1 hour)"}


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


def conditions(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, bool]:
    """Each condition of the template, true or false, for ``parameters`` (the rest at their defaults)."""
    values = {name: spec.get("Default", "") for name, spec in template["Parameters"].items()} | parameters

    def holds(expression: Any) -> Any:
        if not isinstance(expression, dict):
            return expression
        ((function, argument),) = expression.items()
        if function == "Ref":
            return values[argument]
        if function == "Fn::Equals":
            return holds(argument[0]) == holds(argument[1])
        if function == "Fn::Not":
            return not holds(argument[0])
        raise AssertionError(f"the test cannot evaluate {function} in a condition")

    return {name: bool(holds(expression)) for name, expression in template["Conditions"].items()}


def render(value: Any, template: dict[str, Any], parameters: dict[str, str]) -> Any:
    """``value`` as CloudFormation deploys it for ``parameters``: ``Fn::If`` chosen, ``AWS::NoValue`` dropped,
    parameters put in, and a policy written as JSON text (``Fn::Sub``) read back as the object it stands for.

    Pseudo parameters stay as they are: an ARN in the text reads back as the ``Fn::Sub`` the object policies
    write, so both compare alike. Other references and functions are left as written.
    """
    values = {name: spec.get("Default", "") for name, spec in template["Parameters"].items()} | parameters
    if isinstance(value, list):
        return [v for v in (render(item, template, parameters) for item in value) if v is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if value.get("Ref") == "AWS::NoValue":
        return _NO_VALUE
    if isinstance(value.get("Ref"), str) and value["Ref"] in values:
        return values[value["Ref"]]
    if "Fn::If" in value:
        name, then, otherwise = value["Fn::If"]
        return render(then if conditions(template, parameters)[name] else otherwise, template, parameters)
    sub = value.get("Fn::Sub")
    if isinstance(sub, list) and sub[0].lstrip().startswith("{"):
        text, variables = sub
        known = values | {k: render(v, template, parameters) for k, v in variables.items()}
        filled = re.sub(r"\$\{(\w+)\}", lambda m: str(known[m.group(1)]), text)
        return as_sub(json.loads(filled))
    return {k: render(v, template, parameters) for k, v in value.items()}


def as_sub(value: Any) -> Any:
    """Strings of a JSON policy that still name pseudo parameters, as the ``Fn::Sub`` they are inside."""
    if isinstance(value, dict):
        return {k: as_sub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_sub(v) for v in value]
    return {"Fn::Sub": value} if isinstance(value, str) and "${AWS::" in value else value


def policies(template: dict[str, Any], parameters: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The role's inline policies as deployed with ``parameters`` (none: every parameter at its default)."""
    rendered: list[dict[str, Any]] = render(
        template["Resources"]["IngressRole"]["Properties"]["Policies"], template, parameters or {}
    )
    return rendered


def statements(
    template: dict[str, Any], parameters: dict[str, str] | None = None, effect: str | None = None
) -> list[dict[str, Any]]:
    found = [s for policy in policies(template, parameters) for s in policy["PolicyDocument"]["Statement"]]
    return [s for s in found if effect is None or s["Effect"] == effect]


def deployed_resources(template: dict[str, Any], parameters: dict[str, str]) -> set[str]:
    """The logical ids CloudFormation creates with ``parameters``: those whose condition holds, or have none."""
    holds = conditions(template, parameters)
    return {name for name, resource in template["Resources"].items() if holds.get(resource.get("Condition"), True)}


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


def test_lambda_neither_retries_an_event_nor_delivers_one_older_than_cloudformations_longest_wait(
    template: dict[str, Any],
) -> None:
    """A retry after a timeout would act twice; an event held past ServiceTimeout's maximum (3600 s) has no reader.

    Lambda's defaults are two retries and six hours in the queue.
    """
    config = template["Resources"]["IngressFunction"]["Properties"]["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 0
    assert 60 <= config["MaximumEventAgeInSeconds"] <= 3600


def test_the_role_grants_only_the_calls_the_function_makes(template: dict[str, Any]) -> None:
    """The scheduled check's calls only when its schedule is on; the rest always."""
    always = set(SCOPES) | UNSCOPED | LEDGER_ACTIONS
    assert calls_the_function_makes() == always | DRIFT_CHECK_ACTIONS | NO_PERMISSION_NEEDED
    logs = {"logs:CreateLogStream", "logs:PutLogEvents"}
    for drift_check, granted in ((False, always), (True, always | DRIFT_CHECK_ACTIONS)):
        deployed = statements(template, DRIFT_CHECK_ON if drift_check else {})
        actions = {a for s in deployed for a in as_list(s["Action"])}
        assert actions == granted | logs, drift_check
        assert all(s["Effect"] == "Allow" for s in deployed)
        assert not any("*" in a for a in actions)


def test_each_action_is_scoped_to_its_kind_of_resource_in_this_account_and_region(template: dict[str, Any]) -> None:
    scopes = {**SCOPES, "cloudformation:DescribeStacks": ["cloudformation", "stack/*"]}
    for statement in statements(template, DRIFT_CHECK_ON):
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
    wildcard = [s for s in statements(template, DRIFT_CHECK_ON) if "*" in as_list(s["Resource"])]
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
    assert resource["Type"] == "Custom::CacheIngress"
    assert 1 <= int(resource["Properties"]["ServiceTimeout"]) <= 3600
    assert resource["Properties"]["ServiceToken"] == {
        "Fn::ImportValue": {"Fn::Sub": "${ProviderStackName}-ServiceToken"}
    }
    read = {o["Value"]["Fn::GetAtt"][1] for o in consumer["Outputs"].values() if "Fn::GetAtt" in o["Value"]}
    assert read <= {"CacheSecurityGroupName", "EC2SecurityGroupName", "EC2SecurityGroupOwnerId", "Status"}
    assert read


def test_other_accounts_cannot_invoke_the_function_unless_a_parameter_opts_in(template: dict[str, Any]) -> None:
    permissions = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Lambda::Permission"}
    assert sorted(permissions) == ["CrossAccountInvoke", "DriftCheckInvoke", "OrganizationInvoke"]
    assert not deployed_resources(template, {}) & set(permissions)
    permission = permissions["CrossAccountInvoke"]
    assert permission["Condition"] == "HasInvokerAccount"
    assert template["Conditions"]["HasInvokerAccount"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "InvokerAccountId"}, ""]}]
    }
    assert template["Parameters"]["InvokerAccountId"]["Default"] == ""
    assert permission["Properties"]["Principal"] == {"Ref": "InvokerAccountId"}
    assert permission["Properties"]["Action"] == "lambda:InvokeFunction"


def test_an_organization_may_invoke_the_function_only_when_its_id_is_given(template: dict[str, Any]) -> None:
    """Principal "*" with PrincipalOrgID: every principal of the organization's accounts, none outside it
    (Lambda Developer Guide, "Granting function access to an organization"; the statement's condition is
    aws:PrincipalOrgID). Without the id the grant does not exist, and "*" alone would be anyone."""
    permission = template["Resources"]["OrganizationInvoke"]
    assert permission["Condition"] == "HasInvokerOrganization"
    assert template["Conditions"]["HasInvokerOrganization"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "InvokerOrganizationId"}, ""]}]
    }
    parameter = template["Parameters"]["InvokerOrganizationId"]
    assert parameter["Default"] == ""
    assert parameter["AllowedPattern"] == "^$|^o-[a-z0-9]{10,32}$"
    assert permission["Properties"] == {
        "FunctionName": {"Fn::GetAtt": ["IngressFunction", "Arn"]},
        "Action": "lambda:InvokeFunction",
        "Principal": "*",
        "PrincipalOrgID": {"Ref": "InvokerOrganizationId"},
    }


@pytest.mark.parametrize(
    ("parameters", "granted"),
    [
        ({}, set()),
        ({"InvokerAccountId": "111122223333"}, {"CrossAccountInvoke"}),
        (ORGANIZATION, {"OrganizationInvoke"}),
        ({**ORGANIZATION, "InvokerAccountId": "111122223333"}, {"CrossAccountInvoke", "OrganizationInvoke"}),
        (LIMIT, set()),
    ],
)
def test_each_invoke_grant_follows_its_own_parameter_alone(
    template: dict[str, Any], parameters: dict[str, str], granted: set[str]
) -> None:
    permissions = {k for k, v in template["Resources"].items() if v["Type"] == "AWS::Lambda::Permission"}
    assert deployed_resources(template, parameters) & permissions == granted


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
        for s in statements(template, DRIFT_CHECK_ON)
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


def ingress_changes_on_groups() -> set[str]:
    """The role's calls that change a security group's rules: those scoped to security groups."""
    return {action for action, (_, *kinds) in SCOPES.items() if "security-group/*" in kinds}


def test_with_the_parameters_empty_the_role_holds_its_grants_alone(template: dict[str, Any]) -> None:
    """The limit is off by default, and then the role is the one policy it always was, written as objects."""
    (policy,) = policies(template)
    assert policy["PolicyName"] == "cache-security-group-ingress"
    written = template["Resources"]["IngressRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    # As written, but for the scheduled check's statements, which are off by default too.
    assert policy["PolicyDocument"]["Statement"] == [s for s in written if "Fn::If" not in s]
    assert {s["Effect"] for s in statements(template, ORGANIZATION)} == {"Allow"}


@pytest.mark.parametrize("parameters", CHOICES)
def test_no_parameter_changes_what_the_role_is_granted(template: dict[str, Any], parameters: dict[str, str]) -> None:
    """The limit takes away with explicit denies; it never rewrites a grant (so the checks above hold for all)."""
    assert statements(template, parameters, "Allow") == statements(template)


@pytest.mark.parametrize(("parameters", "value"), [(LIMIT, "cache-ingress"), (LIMIT_ANY_VALUE, "*")])
def test_the_limit_refuses_ingress_changes_on_every_group_without_the_tag(
    template: dict[str, Any], parameters: dict[str, str], value: str
) -> None:
    """EC2 checks Authorize-, Revoke- and UpdateSecurityGroupRuleDescriptionsIngress on the group whose rules
    change (the security-group resource, with aws:ResourceTag; Service Authorization Reference). StringNotLike
    is true for a group without the key at all, so the deny refuses it; "*" lets any value of the key through.

    The deny names the group's ARN alone: an Authorize that tags its rules is checked on the new
    security-group-rule too, which carries only its own request's tags, never the group's, so a tag condition
    there would refuse every Create, on managed groups as well.
    """
    (deny,) = [s for s in statements(template, parameters, "Deny") if s["Sid"] == "IngressOnlyOnManagedGroups"]
    assert set(as_list(deny["Action"])) == ingress_changes_on_groups()
    assert ingress_changes_on_groups() == {
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
    }
    assert deny["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/*"
    }
    assert deny["Condition"] == {"StringNotLike": {"aws:ResourceTag/platform:managed": value}}


def test_the_limit_takes_away_cache_security_group_grants_and_nothing_that_lets_access_go(
    template: dict[str, Any],
) -> None:
    """Cache security groups cannot be held to an EC2 group's tag, so under the limit EC2-Classic mode may not
    authorize at all; revoking stays, so a Delete or rollback of an ingress given before still finishes."""
    denied = {a for s in statements(template, LIMIT, "Deny") for a in as_list(s["Action"])}
    assert denied == ingress_changes_on_groups() | {"elasticache:AuthorizeCacheSecurityGroupIngress"}
    (classic,) = [s for s in statements(template, LIMIT, "Deny") if s["Sid"] == "NoCacheSecurityGroupGrants"]
    assert "Condition" not in classic
    assert classic["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:elasticache:${AWS::Region}:${AWS::AccountId}:securitygroup:*"
    }


def test_the_limit_is_on_exactly_when_the_key_is_given(template: dict[str, Any]) -> None:
    assert template["Conditions"]["LimitsToManagedGroups"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ManagedGroupTagKey"}, ""]}]
    }
    assert template["Parameters"]["ManagedGroupTagKey"]["Default"] == ""
    assert template["Parameters"]["ManagedGroupTagValue"]["Default"] == ""
    assert not statements(template, {"ManagedGroupTagValue": "cache-ingress"}, "Deny")


def test_a_tag_value_without_its_key_is_refused_before_anything_deploys(template: dict[str, Any]) -> None:
    """Otherwise the value would be dropped silently and the function left open to every group."""
    (rule,) = template["Rules"].values()
    assert rule["RuleCondition"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ManagedGroupTagValue"}, ""]}]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ManagedGroupTagKey"}, ""]}]}
    assert "ManagedGroupTagKey" in assertion["AssertDescription"]


def tag_pattern(template: dict[str, Any], name: str) -> str:
    pattern: str = template["Parameters"][name]["AllowedPattern"]
    return pattern


@pytest.mark.parametrize("name", ["ManagedGroupTagKey", "ManagedGroupTagValue"])
@pytest.mark.parametrize("text", ['a"b', "a\\b", "a*", "a?", "${aws:username}", "a\nb"])
def test_a_tag_parameter_cannot_break_the_policy_text_or_widen_its_condition(
    template: dict[str, Any], name: str, text: str
) -> None:
    """A quote or backslash would break (or rewrite) the JSON text, * and ? are StringNotLike wildcards,
    ${...} an IAM policy variable: none is in EC2's tag alphabet, and the parameters refuse them."""
    assert re.fullmatch(tag_pattern(template, name), text) is None


@given(data=st.data())
def test_every_tag_the_parameters_accept_is_the_one_the_condition_names(
    template: dict[str, Any], data: st.DataObject
) -> None:
    key = data.draw(st.from_regex(tag_pattern(template, "ManagedGroupTagKey"), fullmatch=True).filter(bool))
    value = data.draw(st.from_regex(tag_pattern(template, "ManagedGroupTagValue"), fullmatch=True))
    parameters = {"ManagedGroupTagKey": key, "ManagedGroupTagValue": value}
    (deny,) = [s for s in statements(template, parameters, "Deny") if s["Sid"] == "IngressOnlyOnManagedGroups"]
    assert deny["Condition"] == {"StringNotLike": {f"aws:ResourceTag/{key}": value or "*"}}
