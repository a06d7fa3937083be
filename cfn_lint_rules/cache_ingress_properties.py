"""cfn-lint rule E9101: what the provider would refuse in a stack's cache ingress resources, found before deploy.

cfn-lint checks a custom resource's properties only through rules it is given
(``--override-spec`` no longer reaches ``Custom::`` types in cfn-lint v1), so a
misspelt or misplaced property would otherwise show only at deploy time, in a
FAILED reason. This rule hands each resource's properties, as CloudFormation
would send them, to the checks the function itself runs before any AWS call
(:meth:`cache_ingress.modes.Modes.request`: the mode switch, then that mode's
``parse_properties``), and reports each refusal word for word at the property
it names. The checks are imported from ``handler/`` beside this folder, so the
rule and the function cannot disagree.

Only literal values are checked. What an intrinsic function gives is known at
deploy time alone, so such a property takes in turn each of its samples (values
the function accepts) and a refusal counts only if it comes whatever they are.
``Fn::If`` is played out for every condition scenario, as cfn-lint's own rules do.

Usage: ``cfn-lint --append-rules <this folder> -- template.yaml`` (``--append-rules`` takes several folders).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from itertools import product
from pathlib import Path
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch

# cfn-lint loads this file from a path, not as part of a package: the function's checks come from handler/ beside it.
HANDLER = str(Path(__file__).resolve().parent.parent / "handler")
if HANDLER not in sys.path:
    sys.path.append(HANDLER)

from cache_ingress import classic_rules, vpc_rules  # noqa: E402
from cache_ingress.errors import InvalidProperties  # noqa: E402
from cache_ingress.modes import vpc_mode  # noqa: E402

#: Always checked: the resource type's name, and the name it had before.
TYPES = ("Custom::CacheIngress", "Custom::CacheSecurityGroupIngress")
#: Any other custom resource is checked when its ServiceToken imports an export of this name's ending:
#: the provider stack exports ``<stack name>-ServiceToken`` (template.yaml's Outputs).
EXPORT_SUFFIX = "-ServiceToken"
#: The StackId the checks read the stack's account from (the default owner of a source group).
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/linted/00000000-0000-0000-0000-000000000000"
#: Values the function accepts for each property, whatever the others hold, to stand in for an intrinsic
#: function's. AllowAnyIpAddress has two: a CIDR of all addresses needs "true", any other source "false".
SAMPLES: dict[str, tuple[Any, ...]] = {
    "ServiceToken": ("arn:aws:lambda:us-east-1:123456789012:function:cache-ingress",),
    "ServiceTimeout": ("300",),
    "CacheSecurityGroupName": ("sample",),
    "EC2SecurityGroupName": ("sample",),
    "EC2SecurityGroupOwnerId": ("123456789012",),
    "ReplicationGroupId": ("sample",),
    "CacheClusterId": ("sample",),
    "ServerlessCacheName": ("sample",),
    "MemoryDBClusterName": ("sample",),
    "SourceSecurityGroupId": ("sg-0123456789abcdef0",),
    "SourceCidrIp": ("10.0.0.0/16",),
    "SourceCidrIpv6": ("2001:db8::/56",),
    "SourcePrefixListId": ("pl-0123456789abcdef0",),
    "SourceSecurityGroupOwnerId": ("123456789012",),
    "AllowAnyIpAddress": ("false", "true"),
    "Port": ("6379",),
    "TargetSecurityGroupIds": (["sg-0123456789abcdef0"],),
    "Description": ("sample",),
}


class CacheIngressProperties(CloudFormationLintRule):  # type: ignore[misc]  # cfn-lint ships no type hints
    id = "E9101"
    shortdesc = "Cache ingress properties the provider would refuse"
    description = (
        "Checks the properties of Custom::CacheIngress and Custom::CacheSecurityGroupIngress resources, and of "
        "custom resources whose ServiceToken imports a '-ServiceToken' export, with the provider's own checks: "
        "what it would answer FAILED at deploy time. Literal values only: an intrinsic function's is not checked."
    )
    source_url = "https://github.com/OWNER/cache-sg-ingress#checking-templates-before-deploy"
    tags: ClassVar[list[str]] = ["resources", "custom"]

    def match(self, cfn: Any) -> list[Any]:
        matches = []
        for name, resource in cfn.get_resources().items():
            properties = resource.get("Properties")
            if not isinstance(properties, Mapping) or not is_ours(resource["Type"], properties):
                continue
            scenarios = cfn.get_object_without_conditions(properties)
            found: dict[tuple[tuple[Any, ...], str], list[Mapping[str, bool] | None]] = {}
            for scenario in scenarios:
                for where, message in refusals(scenario["Object"], logical_id=str(name)):
                    path = ("Resources", name, "Properties", *where)
                    found.setdefault((path, message), []).append(scenario["Scenario"])
            for (path, message), when in found.items():
                # A refusal in some of the condition scenarios only says in which.
                matches.append(RuleMatch(list(path), message + (_when(when[0]) if len(when) < len(scenarios) else "")))
        return matches


def is_ours(resource_type: Any, properties: Mapping[str, Any]) -> bool:
    """One of the types, or a custom resource whose ServiceToken imports the provider's export."""
    if resource_type in TYPES:
        return True
    if resource_type != "AWS::CloudFormation::CustomResource" and not str(resource_type).startswith("Custom::"):
        return False
    token = properties.get("ServiceToken")
    return isinstance(token, Mapping) and list(token) == ["Fn::ImportValue"] and _imported(token["Fn::ImportValue"])


def _imported(name: Any) -> bool:
    """Whether an export's name, a literal or an ``Fn::Sub`` (either form), ends as the provider's does."""
    if isinstance(name, Mapping) and list(name) == ["Fn::Sub"]:
        name = name["Fn::Sub"][0] if isinstance(name["Fn::Sub"], list) and name["Fn::Sub"] else name["Fn::Sub"]
    return isinstance(name, str) and name.endswith(EXPORT_SUFFIX)


def refusals(properties: Mapping[str, Any], logical_id: str) -> Iterator[tuple[list[str | int], str]]:
    """Where and why the function refuses the properties: its refusal, then the next once that one is fixed, and so on.

    The first is the function's own answer to these properties. The property a
    refusal names is then taken as fixed (any of its samples) to find the next,
    until one names no known property (an unknown name is most likely a typo,
    fixed by renaming it) or one already taken as fixed.
    """
    sent = {str(name): value for name, value in properties.items()}
    unchecked = {name for name, value in sent.items() if is_intrinsic(value) and name in SAMPLES}
    said: set[str] = set()
    while (message := _refusal(sent, unchecked, logical_id)) is not None and message not in said:
        said.add(message)
        where = subject(message, list(sent))
        yield where, message
        if not where or where[0] in unchecked or where[0] not in SAMPLES:
            return
        unchecked.add(str(where[0]))


def _refusal(sent: Mapping[str, Any], unchecked: set[str], logical_id: str) -> str | None:
    """The refusal of the first samples when every choice of the unchecked properties' samples is refused, else None."""
    names = sorted(unchecked)
    first: str | None = None
    for values in product(*(SAMPLES[name] for name in names)):
        given = {**{name: as_sent(value) for name, value in sent.items()}, **dict(zip(names, values, strict=True))}
        try:
            parse(given, logical_id)
        except InvalidProperties as refused:
            first = first or str(refused)
        else:
            return None
    return first


def parse(properties: Mapping[str, Any], logical_id: str) -> None:
    """What ``Modes.request`` does with ResourceProperties before any AWS call; raises InvalidProperties."""
    if vpc_mode(properties):
        vpc_rules.parse_properties(properties, STACK_ID, logical_id)
    else:
        classic_rules.parse_properties(properties, STACK_ID)


def _when(scenario: Mapping[str, bool] | None) -> str:
    """Which conditions a refusal comes under, as the match says it."""
    held = " and ".join(f"{name} is {str(value).lower()}" for name, value in (scenario or {}).items())
    return f" (when condition {held})" if held else ""


def is_intrinsic(value: Any) -> bool:
    """A ``Ref`` or ``Fn::`` function, or a list holding one: what it gives is known at deploy time only."""
    if isinstance(value, list):
        return any(is_intrinsic(item) for item in value)
    if not isinstance(value, Mapping) or len(value) != 1:
        return False
    return re.fullmatch(r"Ref|Fn::\w+", str(next(iter(value)))) is not None


def as_sent(value: Any) -> Any:
    """A template's value as CloudFormation sends it to a custom resource: every number and boolean as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, list):
        return [as_sent(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): as_sent(item) for key, item in value.items()}
    return value


def subject(message: str, names: list[str]) -> list[str | int]:
    """The property a refusal is about: the first of ``names`` it mentions, with the list index it gives, if any."""
    mentions = []
    for name in names:
        found = re.search(rf"(?<!\w){re.escape(name)}(?!\w)(?:\[([0-9]+)\])?", message)
        if found:
            mentions.append((found.start(), name, found.group(1)))
    if not mentions:
        return []
    _, name, index = min(mentions)
    return [name] if index is None else [name, int(index)]
