"""Property parsing, the physical id and the meaning of ElastiCache's error codes: pure rules, no I/O."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cache_ingress import classic_rules
from cache_ingress.classic_rules import Ingress
from cache_ingress.errors import InvalidProperties
from cache_ingress.outcomes import Outcome

STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/cache-access/5b6a8e10"
VALID = {"CacheSecurityGroupName": "app-cache-sg", "EC2SecurityGroupName": "app-servers"}

cache_names = st.text(
    st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"), min_size=1, max_size=255
)
ec2_names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=255).filter(str.strip)
owners = st.from_regex(r"\A[0-9]{12}\Z")


def test_an_owner_given_as_a_json_number_is_read_like_its_digits() -> None:
    ingress = classic_rules.parse_properties({**VALID, "EC2SecurityGroupOwnerId": 210987654321}, STACK)
    assert ingress.owner_id == "210987654321"


def test_owner_defaults_to_the_stacks_account() -> None:
    assert classic_rules.parse_properties(VALID, STACK) == Ingress("app-cache-sg", "app-servers", "123456789012")


def test_service_token_and_timeout_are_ignored() -> None:
    props = {**VALID, "ServiceToken": "arn:aws:lambda:us-east-1:1:function:f", "ServiceTimeout": "300"}
    assert classic_rules.parse_properties(props, STACK).owner_id == "123456789012"


@pytest.mark.parametrize("owner", ["210987654321", "2109-8765-4321", " 2109-8765-4321 "])
def test_owner_spellings_give_one_ingress_and_one_id(owner: str) -> None:
    ingress = classic_rules.parse_properties({**VALID, "EC2SecurityGroupOwnerId": owner}, STACK)
    assert ingress.owner_id == "210987654321"
    assert ingress.physical_id == "cache-sg-ingress:app-cache-sg:210987654321:app-servers"


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"EC2SecurityGroupName": "app"}, "CacheSecurityGroupName is required"),
        ({"CacheSecurityGroupName": "c"}, "EC2SecurityGroupName is required"),
        ({**VALID, "CacheSecurityGroupName": ""}, "CacheSecurityGroupName must not be empty"),
        ({**VALID, "EC2SecurityGroupName": "   "}, "EC2SecurityGroupName must not be empty"),
        ({**VALID, "CacheSecurityGroupName": 7}, "CacheSecurityGroupName must be a string, got a number"),
        ({**VALID, "EC2SecurityGroupName": ["a"]}, "EC2SecurityGroupName must be a string, got a list"),
        ({**VALID, "EC2SecurityGroupName": {"a": 1}}, "EC2SecurityGroupName must be a string, got a map"),
        ({**VALID, "CacheSecurityGroupName": True}, "CacheSecurityGroupName must be a string, got a boolean"),
        ({**VALID, "CacheSecurityGroupName": "a" * 256}, "CacheSecurityGroupName must be at most 255 characters"),
        ({**VALID, "EC2SecurityGroupName": "x" * 300}, "EC2SecurityGroupName must be at most 255 characters"),
        ({**VALID, "CacheSecurityGroupName": "my cache"}, "CacheSecurityGroupName may hold only letters"),
        ({**VALID, "EC2SecurityGroupName": "caf\u00e9"}, "EC2SecurityGroupName may hold only printable ASCII"),
        ({**VALID, "EC2SecurityGroupName": "a\nb"}, "EC2SecurityGroupName may hold only printable ASCII"),
        ({**VALID, "EC2SecurityGroupOwnerId": "12345"}, "EC2SecurityGroupOwnerId must be a 12-digit AWS account"),
        (
            {**VALID, "EC2SecurityGroupOwnerId": 12345678901.0},
            "EC2SecurityGroupOwnerId must be a 12-digit AWS account number, got a number",
        ),
        (
            {**VALID, "EC2SecurityGroupOwnerId": "١٢٣٤٥٦٧٨٩٠١٢"},
            "EC2SecurityGroupOwnerId must be a 12-digit AWS account number",
        ),
        ({**VALID, "EC2SecurityGroupOwnerId": "１２３４５６７８９０１２"}, "(digits 0-9)"),  # noqa: RUF001
        ({**VALID, "EC2SecurityGroupOwnerId": "AKIAIOSFODNN7EXAMPLE"}, "not an access key id"),
        ({**VALID, "EC2SecurityGroupOwnerId": "ASIAY34FZKBOKMUTVV7A"}, "not an access key id"),
        ({**VALID, "EC2SecurityGroupOwnerID": "123456789012"}, "did you mean EC2SecurityGroupOwnerId?"),
        ({**VALID, "CacheSecurityGroup": "x"}, "did you mean CacheSecurityGroupName?"),
        ({**VALID, "Colour": "blue"}, "unknown property 'Colour'. Known properties:"),
    ],
)
def test_bad_properties_are_refused_with_a_reason_naming_the_property(
    properties: dict[str, Any], expected: str
) -> None:
    with pytest.raises(InvalidProperties, match=None) as caught:
        classic_rules.parse_properties(properties, STACK)
    assert expected in str(caught.value)


@pytest.mark.parametrize("properties", [None, [], "CacheSecurityGroupName=x", 3])
def test_properties_that_are_not_a_map_are_refused(properties: Any) -> None:
    with pytest.raises(InvalidProperties, match="ResourceProperties must be a map"):
        classic_rules.parse_properties(properties, STACK)


def test_without_owner_a_stack_id_that_names_no_account_is_refused() -> None:
    with pytest.raises(InvalidProperties, match="set EC2SecurityGroupOwnerId"):
        classic_rules.parse_properties(VALID, "not-an-arn")


@given(cache_names, ec2_names, owners)
def test_physical_id_decodes_back_to_exactly_the_ingress(cache: str, ec2: str, owner: str) -> None:
    ingress = Ingress(cache, ec2, owner)
    assert classic_rules.parse_physical_id(ingress.physical_id) == ingress
    assert 0 < len(ingress.physical_id.encode()) <= 1024


@given(cache_names, ec2_names, owners)
def test_valid_properties_round_trip_through_the_id(cache: str, ec2: str, owner: str) -> None:
    ingress = classic_rules.parse_properties(
        {"CacheSecurityGroupName": cache, "EC2SecurityGroupName": ec2, "EC2SecurityGroupOwnerId": owner}, STACK
    )
    assert classic_rules.parse_physical_id(ingress.physical_id) == ingress


def test_punctuation_in_ec2_group_names_survives_the_id() -> None:
    ingress = Ingress("c", "web: a/b | 100% #1 :", "123456789012")
    assert ingress.physical_id == "cache-sg-ingress:c:123456789012:web: a/b | 100% #1 :"
    assert classic_rules.parse_physical_id(ingress.physical_id) == ingress


@pytest.mark.parametrize(
    "physical_id",
    [
        "cache-access_AppCacheIngress_K3X9Q2PL",  # crhelper's random id after a failed Create
        "AppCacheIngress-6c1e1b6e",
        "cache-sg-ingress:c:12345:web",  # owner not 12 digits
        "cache-sg-ingress:c d:123456789012:web",
        "cache-sg-ingress:c:123456789012",
        "cache-sg-ingress:c:123456789012:",
        "",
        None,
    ],
)
def test_ids_not_minted_here_are_recognised(physical_id: Any) -> None:
    assert classic_rules.parse_physical_id(physical_id) is None


@pytest.mark.parametrize(
    ("code", "message", "authorize", "revoke"),
    [
        ("AuthorizationAlreadyExists", "", Outcome.DONE, Outcome.FAILED),
        ("AuthorizationNotFound", "", Outcome.FAILED, Outcome.DONE),
        ("CacheSecurityGroupNotFound", "", Outcome.FAILED, Outcome.DONE),
        ("InvalidCacheSecurityGroupState", "", Outcome.BUSY, Outcome.BUSY),
        ("Throttling", "Rate exceeded", Outcome.BUSY, Outcome.BUSY),
        (
            "InvalidParameterValue",
            classic_rules.CLASSIC_RETIRED_HINT + " in this API version",
            Outcome.NOT_PERMITTED,
            Outcome.DONE,
        ),
        ("InvalidParameterValue", "Invalid AWS account number", Outcome.FAILED, Outcome.FAILED),
        ("InvalidParameterCombination", "", Outcome.FAILED, Outcome.FAILED),
        ("AccessDenied", "", Outcome.FAILED, Outcome.FAILED),
    ],
)
def test_what_each_error_code_means(code: str, message: str, authorize: Outcome, revoke: Outcome) -> None:
    assert classic_rules.authorize_outcome(code, message) is authorize
    assert classic_rules.revoke_outcome(code, message) is revoke


def test_the_retired_classic_reason_points_to_this_resources_vpc_mode() -> None:
    reason = classic_rules.not_permitted_reason("Use of cache security groups is not permitted")
    assert "EC2-Classic, which AWS retired in August 2023" in reason
    for name in ("ReplicationGroupId", "CacheClusterId", "ServerlessCacheName", "SourceSecurityGroupId"):
        assert name in reason
    assert "AWS::EC2::SecurityGroupIngress" not in reason  # another resource type would lose the cache lookup
    assert reason.endswith("ElastiCache said: Use of cache security groups is not permitted")
