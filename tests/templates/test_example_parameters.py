"""The example consumers' parameter constraints against the handler's own checks.

A value CloudFormation lets through a parameter's ``AllowedPattern`` and
length limits reaches the provider as a property; if the provider then
refused it, the consumer's stack would fail at Create instead of at the
parameter prompt. So for every parameter that feeds the custom resource,
values drawn from its pattern are put through the template the way
CloudFormation would (``Ref``, ``Fn::If`` on its conditions, ``AWS::NoValue``)
and parsed by the handler's own validation: each must be accepted.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from hypothesis import given
from hypothesis import strategies as st

from cache_ingress.errors import InvalidProperties
from tests.support import attribute_names, parse_request

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/consumer/5b6a8e10-0c1d-11ef-9a0b-0a1b2c3d4e5f"
#: What CloudFormation itself checks for these parameter types: an existing resource of that kind.
TYPED_SAMPLES = {"AWS::EC2::SecurityGroup::Id": "sg-0123456789abcdef0"}
#: What ``Ref`` of a resource the example makes itself gives, by the resource's type.
REF_SAMPLES = {"AWS::EC2::PrefixList": "pl-0123456789abcdef0", "AWS::EC2::SecurityGroup": "sg-0123456789abcdef0"}
_NO_VALUE = object()


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(path))
    return loaded


def custom_resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"].startswith("Custom::")
    }


def referenced(value: Any) -> set[str]:
    """The names every ``Ref`` inside ``value`` points at."""
    if isinstance(value, dict):
        found = {value["Ref"]} if isinstance(value.get("Ref"), str) else set()
        return found.union(*(referenced(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(referenced(v) for v in value))
    return set()


def feeding_parameters() -> list[tuple[str, str]]:
    """(example file, parameter) for every parameter a custom resource's properties read."""
    pairs = []
    for path in EXAMPLES:
        template = load(path)
        names = referenced(list(custom_resources(template).values()))
        pairs += [(path.name, name) for name in sorted(names & set(template["Parameters"]))]
    return pairs


def resolve(value: Any, parameters: dict[str, str], template: dict[str, Any]) -> Any:
    """``value`` as CloudFormation would send it: parameters, conditions and NoValue resolved."""
    if isinstance(value, list):
        return [v for v in (resolve(item, parameters, template) for item in value) if v is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        name = value["Ref"]
        if name == "AWS::NoValue":
            return _NO_VALUE
        return parameters[name] if name in parameters else REF_SAMPLES[template["Resources"][name]["Type"]]
    if "Fn::If" in value:
        condition, if_true, if_false = value["Fn::If"]
        chosen = if_true if condition_holds(condition, parameters, template) else if_false
        return resolve(chosen, parameters, template)
    if "Fn::ImportValue" in value:
        return "arn:aws:lambda:us-east-1:123456789012:function:cache-sg-ingress"
    return {k: v for k, v in ((k, resolve(v, parameters, template)) for k, v in value.items()) if v is not _NO_VALUE}


def condition_holds(name: str, parameters: dict[str, str], template: dict[str, Any]) -> bool:
    def holds(condition: dict[str, Any]) -> bool:
        if "Fn::Not" in condition:
            return not holds(condition["Fn::Not"][0])
        if "Fn::Equals" in condition:
            left, right = (resolve(side, parameters, template) for side in condition["Fn::Equals"])
            return bool(left == right)
        raise AssertionError(f"condition form not modelled by this test: {condition}")

    return holds(template["Conditions"][name])


def allowed(spec: dict[str, Any], value: str) -> bool:
    """What CloudFormation checks of a String parameter: the pattern (whole value) and the lengths."""
    pattern = spec.get("AllowedPattern")
    return (
        (pattern is None or re.fullmatch(pattern, value) is not None)
        and len(value) <= int(spec.get("MaxLength", 4096))
        and len(value) >= int(spec.get("MinLength", 0))
    )


def sample(spec: dict[str, Any]) -> str:
    """A value CloudFormation accepts for a parameter the test is not varying."""
    if "Default" in spec:
        return str(spec["Default"])
    if spec["Type"] in TYPED_SAMPLES:
        return TYPED_SAMPLES[spec["Type"]]
    return {"^[A-Za-z0-9-]+$": "app-cache-sg", "^[A-Za-z](-?[A-Za-z0-9])*$": "sessions"}.get(
        spec.get("AllowedPattern", ""), "app-servers"
    )


def what_the_handler_says(example: str, parameters: dict[str, str]) -> str | None:
    """None if the handler accepts the properties the example sends with ``parameters``, else its reason."""
    template = load(ROOT / "examples" / example)
    for properties in custom_resources(template).values():
        try:
            parse_request(resolve(properties, parameters, template), STACK_ID)
        except InvalidProperties as refused:
            return str(refused)
    return None


def defaults(example: str) -> dict[str, str]:
    return {name: sample(spec) for name, spec in load(ROOT / "examples" / example)["Parameters"].items()}


def test_every_example_feeds_the_provider_from_parameters() -> None:
    """The check below is not empty: every example's resources read their values from parameters."""
    assert {example for example, _ in feeding_parameters()} == {path.name for path in EXAMPLES}


@pytest.mark.parametrize(("example", "parameter"), feeding_parameters())
@given(data=st.data())
def test_a_value_the_parameter_accepts_the_handler_accepts(example: str, parameter: str, data: st.DataObject) -> None:
    spec = load(ROOT / "examples" / example)["Parameters"][parameter]
    if spec["Type"] != "String":
        value = sample(spec)  # CloudFormation itself checks these types against the account
    else:
        assert "AllowedPattern" in spec, f"{example}: {parameter} feeds the provider but accepts any string"
        pattern = st.from_regex(spec["AllowedPattern"], fullmatch=True)
        value = data.draw(pattern.filter(lambda v: allowed(spec, v)), label=parameter)
    reason = what_the_handler_says(example, {**defaults(example), parameter: value})
    assert reason is None, f"{example}: CloudFormation accepts {parameter}={value!r}, the handler says: {reason}"


def test_the_defaults_and_samples_are_accepted_by_both() -> None:
    for path in EXAMPLES:
        parameters = defaults(path.name)
        specs = load(path)["Parameters"]
        assert all(allowed(specs[name], value) for name, value in parameters.items()), path.name
        assert what_the_handler_says(path.name, parameters) is None, path.name


@pytest.mark.parametrize(
    ("example", "parameter", "named"),
    [
        ("vpc-consumer.yaml", "CacheName", "ReplicationGroupId"),
        ("memorydb-consumer.yaml", "ClusterName", "MemoryDBClusterName"),
        ("prefix-list-consumer.yaml", "CacheName", "ServerlessCacheName"),
    ],
)
@pytest.mark.parametrize("name", ["app--cache", "app-cache-", "1app", "a" * 41])
def test_a_cache_name_the_handler_refuses_the_vpc_examples_refuse_too(
    example: str, parameter: str, named: str, name: str
) -> None:
    spec = load(ROOT / "examples" / example)["Parameters"][parameter]
    assert not allowed(spec, name)
    reason = what_the_handler_says(example, {**defaults(example), parameter: name})
    assert reason is not None
    assert reason.startswith(f"{named} must start with a letter")


def got_attributes(value: Any) -> set[tuple[str, str]]:
    """(resource, attribute) for every ``Fn::GetAtt`` inside ``value``."""
    if isinstance(value, dict):
        found = set()
        if isinstance(value.get("Fn::GetAtt"), list):
            resource, attribute = value["Fn::GetAtt"]
            found.add((resource, attribute))
        return found.union(*(got_attributes(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(got_attributes(v) for v in value))
    return set()


@pytest.mark.parametrize("example", [path.name for path in EXAMPLES])
def test_every_attribute_an_example_reads_is_one_its_resource_returns(example: str) -> None:
    """A ``!GetAtt`` of an attribute the provider does not return fails the consumer's stack after the grant
    (CloudFormation: "Vendor response doesn't contain ... key"), so each is held to what the handler returns
    for the properties the example sends, with its parameters' defaults or samples."""
    template = load(ROOT / "examples" / example)
    resources = custom_resources(template)
    read = got_attributes(template)
    assert {resource for resource, _ in read} & set(resources), f"{example} reads no attribute of its resource"
    for name, properties in resources.items():
        request = parse_request(resolve(properties, defaults(example), template), STACK_ID)
        returned = attribute_names(request)
        unknown = sorted(attribute for resource, attribute in read if resource == name and attribute not in returned)
        assert not unknown, f"{example}: {name} returns no {', '.join(unknown)}; it returns {sorted(returned)}"
