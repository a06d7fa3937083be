"""The cfn-lint rule E9101 (cfn_lint_rules/) as a user's pipeline runs it, held to the function's own answers.

One cfn-lint run, the way the README tells a user to add it (``cfn-lint --append-rules cfn_lint_rules``),
over the bad consumer (one mistake a resource, tests/templates/bad-consumer.yaml), the good one (what must
pass: values known only at deploy time, condition scenarios, YAML numbers and booleans, other providers'
resources) and every example. What it reports for each bad resource is then compared with the FAILED
reason the function gives for the same properties, as CloudFormation sends them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from cache_ingress.errors import InvalidProperties
from cache_ingress.modes import ALL_PROPERTIES
from cache_ingress.properties import IGNORED_PROPERTIES
from cache_ingress.sources import SOURCE_PROPERTIES
from cache_ingress.vpc_rules import CACHE_PROPERTIES
from cfn_lint_rules.cache_ingress_properties import SAMPLES, refusals
from tests.support import parse_request

ROOT = Path(__file__).resolve().parents[2]
BAD = Path("tests/templates/bad-consumer.yaml")
GOOD = Path("tests/templates/good-consumer.yaml")
EXAMPLES = sorted(path.relative_to(ROOT) for path in (ROOT / "examples").glob("*.yaml"))
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/consumer/5b6a8e10-0c1d-11ef-9a0b-0a1b2c3d4e5f"
UNKNOWN = "Known properties: CacheSecurityGroupName, EC2SecurityGroupName"

#: Each bad resource: where each refusal points (below its Properties) and what it says, in the order found.
EXPECTED: dict[str, list[tuple[tuple[str | int, ...], str]]] = {
    "MisspeltProperty": [
        (("ReplicationGroupID",), "unknown property 'ReplicationGroupID' (did you mean ReplicationGroupId?)")
    ],
    "MisplacedClassicProperty": [(("EC2SecurityGroupName",), "EC2SecurityGroupName (EC2-Classic cache security")],
    "NoCache": [((), "to name the cache; none is set")],
    "TwoCaches": [(("ReplicationGroupId",), "to name the cache; got ReplicationGroupId and CacheClusterId")],
    "NoSource": [((), "to name who is let in; none is set")],
    "TwoSources": [(("SourceSecurityGroupId",), "who is let in; got SourceSecurityGroupId and SourceCidrIp")],
    "EveryIpv4Address": [(("SourceCidrIp",), 'lets in every address on the internet; set AllowAnyIpAddress to "true"')],
    "EveryIpv6Address": [(("SourceCidrIpv6",), "SourceCidrIpv6 ::/0 lets in every address on the internet")],
    "AllowAnyForAGroup": [
        (("AllowAnyIpAddress",), "AllowAnyIpAddress applies only to SourceCidrIp and SourceCidrIpv6")
    ],
    "AllowAnyNotABoolean": [(("AllowAnyIpAddress",), 'AllowAnyIpAddress must be "true" or "false", got \'yes\'')],
    "GroupNameForId": [(("SourceSecurityGroupId",), "(the group's id, not its name), got 'app-servers'")],
    "HostBitsSet": [(("SourceCidrIp",), "has bits set past its prefix length; its network is 10.0.0.0/8")],
    "AddressWithoutPrefix": [(("SourceCidrIp",), "add the prefix length, 10.1.2.3/32 for this one address")],
    "MalformedPrefixList": [(("SourcePrefixListId",), "must be a managed prefix list id such as pl-")],
    "PortOutOfRange": [(("Port",), "Port must be a TCP port number from 1 to 65535, got '70000'")],
    "PortNotANumber": [(("Port",), "Port must be a TCP port number from 1 to 65535 in the digits 0-9, got 'redis'")],
    "ServiceTimeoutTooLong": [(("ServiceTimeout",), "ServiceTimeout must be a number of seconds from 1 to 3600")],
    "TargetGroupByName": [(("TargetSecurityGroupIds", 1), "TargetSecurityGroupIds[1] must be a security group id")],
    "NoTargetGroups": [(("TargetSecurityGroupIds",), "TargetSecurityGroupIds must not be empty")],
    "CacheNameWithADigitFirst": [(("MemoryDBClusterName",), "MemoryDBClusterName must start with a letter")],
    "OwnerOfARange": [(("SourceSecurityGroupOwnerId",), "applies only to SourceSecurityGroupId; remove it")],
    "OwnerTooShort": [(("SourceSecurityGroupOwnerId",), "must be a 12-digit AWS account number")],
    "DescriptionWithAngleBrackets": [(("Description",), "(what EC2 accepts); found '<>'")],
    "ClassicUnderscore": [(("CacheSecurityGroupName",), "may hold only letters, digits and hyphens")],
    "ClassicWithoutEc2Group": [((), "EC2SecurityGroupName is required")],
    "GenericTypeMisspelt": [(("SourceSecurityGroupID",), "(did you mean SourceSecurityGroupId?)")],
    "OwnTypeNameThroughSub": [(("Prot",), f"unknown property 'Prot' (did you mean Port?). {UNKNOWN}")],
    "TwoMistakes": [(("SourceCidrIp",), "has bits set past its prefix length"), (("Port",), "got '0'")],
    "PortBesideIntrinsics": [(("Port",), "Port must be a TCP port number from 1 to 65535, got '99999'")],
    "BranchOfAnIf": [(("SourceCidrIp",), "lets in every address on the internet; ")],
}


@pytest.fixture(scope="module")
def matches() -> list[dict[str, Any]]:
    """What ``cfn-lint --format json --append-rules cfn_lint_rules`` reports for every template, in one run."""
    run = subprocess.run(
        [CFN_LINT, "--format", "json", "--append-rules", "cfn_lint_rules", "--", BAD, GOOD, *EXAMPLES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, f"cfn-lint exit {run.returncode} (2: errors only): {run.stderr}"
    found: list[dict[str, Any]] = json.loads(run.stdout)
    return found


def reported(matches: list[dict[str, Any]], resource: str) -> list[tuple[tuple[str | int, ...], str]]:
    """(path below the resource's Properties, message) of each match on a bad resource, in the order reported."""
    return [
        (tuple(match["Location"]["Path"][3:]), match["Message"])
        for match in matches
        if match["Filename"] == str(BAD) and match["Location"]["Path"][:2] == ["Resources", resource]
    ]


def resources(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(ROOT / path))
    return dict(loaded["Resources"])


def as_cloudformation_sends(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Literal properties as the function receives them: each number and boolean a string, the ServiceToken an ARN."""

    def sent(value: Any) -> Any:
        if isinstance(value, bool):
            return str(value).lower()
        return [sent(item) for item in value] if isinstance(value, list) else str(value)

    values = {name: sent(value) for name, value in properties.items()}
    return {**values, "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:cache-ingress"}


def test_every_match_on_the_bad_template_is_the_rules(matches: list[dict[str, Any]]) -> None:
    on_bad = [match for match in matches if match["Filename"] == str(BAD)]
    assert on_bad, "the rule found nothing: was it loaded?"
    assert {match["Rule"]["Id"] for match in on_bad} == {"E9101"}, "the bad template has mistakes of another kind"
    assert set(resources(BAD)) == set(EXPECTED), (
        "each bad resource needs its expected refusals, and each one a resource"
    )


@pytest.mark.parametrize("resource", EXPECTED)
def test_each_mistake_is_reported_at_its_property_in_the_functions_words(
    matches: list[dict[str, Any]], resource: str
) -> None:
    found = reported(matches, resource)
    assert [where for where, _ in found] == [where for where, _ in EXPECTED[resource]], found
    for (_, message), (_, words) in zip(found, EXPECTED[resource], strict=True):
        assert words in message


def test_a_refusal_under_one_condition_says_which(matches: list[dict[str, Any]]) -> None:
    [(_, message)] = reported(matches, "BranchOfAnIf")
    assert message.endswith("(when condition Never is true)")


@pytest.mark.parametrize(
    "resource",
    [
        name
        for name, resource in resources(BAD).items()
        if not any(isinstance(value, dict) for key, value in resource["Properties"].items() if key != "ServiceToken")
    ],
)
def test_the_rule_and_the_function_refuse_the_same_properties_alike(
    matches: list[dict[str, Any]], resource: str
) -> None:
    properties = as_cloudformation_sends(resources(BAD)[resource]["Properties"])
    with pytest.raises(InvalidProperties) as refused:
        parse_request(properties, STACK_ID, logical_id=resource)
    assert reported(matches, resource)[0][1] == str(refused.value)


def test_the_good_template_and_every_example_pass(matches: list[dict[str, Any]]) -> None:
    assert [match for match in matches if match["Filename"] != str(BAD)] == []


@pytest.mark.parametrize("resource", ["YamlScalars", "NumericNames"])
def test_the_function_accepts_the_good_templates_literal_resources_too(resource: str) -> None:
    """YAML numbers and booleans, as CloudFormation sends them: what the rule lets through, the function accepts."""
    parse_request(as_cloudformation_sends(resources(GOOD)[resource]["Properties"]), STACK_ID, logical_id=resource)


def test_every_property_the_function_knows_has_a_sample_for_a_value_known_at_deploy_time() -> None:
    assert set(SAMPLES) == {*ALL_PROPERTIES, *IGNORED_PROPERTIES}, "add a sample the function accepts to SAMPLES"


@pytest.mark.parametrize(("cache", "source"), list(product(CACHE_PROPERTIES, SOURCE_PROPERTIES)))
def test_the_samples_pass_in_every_vpc_resource_they_can_stand_in(cache: str, source: str) -> None:
    owner = {"SourceSecurityGroupOwnerId": {"Ref": "Owner"}} if source == "SourceSecurityGroupId" else {}
    names = (cache, source, "AllowAnyIpAddress", "Port", "TargetSecurityGroupIds", "Description", *IGNORED_PROPERTIES)
    assert list(refusals({**{name: {"Ref": name} for name in names}, **owner}, logical_id="Access")) == []


def test_the_samples_pass_in_a_classic_resource() -> None:
    names = ("CacheSecurityGroupName", "EC2SecurityGroupName", "EC2SecurityGroupOwnerId", *IGNORED_PROPERTIES)
    assert list(refusals({name: {"Fn::ImportValue": name} for name in names}, logical_id="Access")) == []


def test_the_rule_loads_where_only_cfn_lint_is_installed() -> None:
    """A pipeline's cfn-lint has no boto3, crhelper or powertools: the rule uses only the pure checks."""
    script = (
        "import sys; from cfnlint.helpers import load_plugins; print([rule.id for rule in load_plugins(sys.argv[1])]); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'botocore', 'crhelper', 'aws_lambda_powertools'}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script, "cfn_lint_rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert run.stdout.splitlines() == ["['E9101']", "[]"]
