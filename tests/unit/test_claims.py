"""Claims as tags: what a rule carries and what that says about who holds it."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cache_ingress.claims import (
    CLAIM_PREFIX,
    PRE_EXISTING_KEY,
    REVOKING_KEY,
    Claim,
    HeldRule,
    claim_tags,
    held_rules,
    revoking_tags,
)
from cache_ingress.sources import Source, SourceKind
from offline.harness import CLAIM_TAG_PREFIX

STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/cache-access/5b6a8e10-0c1d-11ef-9a0b-0a1b2c3d4e5f"
SOURCE = "sg-0a1b2c3d4e5f60718"
ID = f"cache-vpc-ingress:{SOURCE}@123456789012:6379:sg-0000000a"


def held(*tags: tuple[str, str], description: str = "d") -> HeldRule:
    return HeldRule("sgr-1", "sg-0000000a", 6379, description, tuple(sorted(tags)))


def test_a_claim_names_its_stack_and_resource_for_a_person_and_fits_ec2s_tag_limits() -> None:
    claim = Claim(STACK, "AppCacheAccess", ID)
    assert claim.key.startswith(CLAIM_PREFIX)
    assert len(claim.key) <= 128
    assert claim.value == "stack cache-access, resource AppCacheAccess"


@given(stack=st.text(max_size=300), logical=st.text(max_size=300), physical=st.text(max_size=1100))
def test_any_claim_fits_ec2s_tag_limits(stack: str, logical: str, physical: str) -> None:
    claim = Claim(stack, logical, physical)
    assert len(claim.key) <= 128
    assert len(claim.value) <= 256


def test_each_instance_has_its_own_claim_an_old_and_a_new_id_included() -> None:
    claims = {
        Claim(STACK, "AppCacheAccess", ID).key,
        Claim(STACK, "AppCacheAccess", ID.replace("6379", "6380")).key,
        Claim(STACK, "OtherAccess", ID).key,
        Claim(STACK.replace("cache-access", "other-stack"), "AppCacheAccess", ID).key,
    }
    assert len(claims) == 4


def test_a_rule_nobody_claims_yet_is_marked_pre_existing_when_claimed() -> None:
    claim = Claim(STACK, "AppCacheAccess", ID)
    assert set(claim_tags(claim, held(), None)) == {claim.key, PRE_EXISTING_KEY}
    other = Claim(STACK, "OtherAccess", ID)
    assert set(claim_tags(claim, held((other.key, other.value)), None)) == {claim.key}


def test_a_rule_the_release_before_claims_made_is_written_down_as_that_ids_claim() -> None:
    claim, earlier = Claim(STACK, "AppCacheAccess", ID), Claim(STACK, "AppCacheAccess", "old-id")
    assert set(claim_tags(claim, held(), earlier)) == {claim.key, earlier.key}


def test_a_rule_is_unclaimed_once_its_last_claim_goes_unless_it_predates_the_claims() -> None:
    claim, other = Claim(STACK, "AppCacheAccess", ID), Claim(STACK, "OtherAccess", ID)
    assert held((claim.key, "v")).unclaimed_once(claim)
    assert not held((claim.key, "v"), (other.key, "v")).unclaimed_once(claim)
    assert not held((claim.key, "v"), (PRE_EXISTING_KEY, "v")).unclaimed_once(claim)


def test_only_an_untagged_rule_with_this_resources_description_counts_as_made_by_the_earlier_release() -> None:
    assert held(description="ours").made_by_earlier_release("ours")
    assert not held(description="by hand").made_by_earlier_release("ours")
    assert not held((PRE_EXISTING_KEY, "v"), description="ours").made_by_earlier_release("ours")


def test_a_revoking_mark_expires_at_the_time_it_carries() -> None:
    ((key, value),) = revoking_tags(1000.0).items()
    marked = held((key, value))
    assert key == REVOKING_KEY
    assert marked.revoking(999.0)
    assert not marked.revoking(1001.0)
    assert not held((REVOKING_KEY, "not a time")).revoking(0.0)


def item(port: int, **changes: Any) -> dict[str, Any]:
    base = {
        "SecurityGroupRuleId": f"sgr-{port}",
        "GroupId": "sg-0000000a",
        "IsEgress": False,
        "IpProtocol": "tcp",
        "FromPort": port,
        "ToPort": port,
        "ReferencedGroupInfo": {"GroupId": SOURCE, "UserId": "123456789012"},
        "Tags": [{"Key": "k", "Value": "v"}],
    }
    return {**base, **changes}


def test_only_tcp_ingress_on_one_port_from_the_source_group_and_owner_is_the_rule() -> None:
    answer = [
        item(6379),
        item(6380, IsEgress=True),
        item(6381, IpProtocol="udp"),
        item(6382, ToPort=6390),
        item(6383, ReferencedGroupInfo={"GroupId": "sg-0ffffffffffffffff", "UserId": "123456789012"}),
        item(6384, ReferencedGroupInfo={"GroupId": SOURCE, "UserId": "210987654321"}),
        item(6385, CidrIpv4="10.0.0.0/8", ReferencedGroupInfo=None),
        item(6386),
    ]
    found = held_rules(answer, Source(SourceKind.SECURITY_GROUP, SOURCE, "123456789012"), range(6379, 6386))
    assert list(found) == [6379]
    assert found[6379].tags == (("k", "v"),)


def test_the_demo_reads_claims_by_the_prefix_the_handler_writes() -> None:
    assert CLAIM_TAG_PREFIX == CLAIM_PREFIX


def test_a_revoking_mark_outlives_the_lambda_not_only_its_deadline() -> None:
    """A Revoke sent before the deadline may land until the Lambda ends, up to the answer reserve later."""
    from cache_ingress.timing import MAX_ANSWER_RESERVE_S
    from cache_ingress.vpc_lifecycle import REVOKING_MARK_GRACE_S

    assert REVOKING_MARK_GRACE_S >= MAX_ANSWER_RESERVE_S + 5.0
