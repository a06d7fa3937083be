"""The one switch between the modes: properties and physical ids pick the mode that serves them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from cache_ingress.classic_rules import Ingress
from cache_ingress.errors import InvalidProperties
from cache_ingress.modes import Granted, Request
from cache_ingress.protocol import Change, Instance, Result
from cache_ingress.sources import Source, SourceKind
from cache_ingress.timing import Deadline
from cache_ingress.vpc_rules import RuleSet
from tests.support import OFFLINE_MODES

STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/cache-access/5b6a8e10"
CLASSIC = {"CacheSecurityGroupName": "cache-sg", "EC2SecurityGroupName": "app"}
VPC = {"ReplicationGroupId": "app-cache", "SourceSecurityGroupId": "sg-0a1b2c3d4e5f60718"}
VPC_ID = RuleSet.of(
    Source(SourceKind.SECURITY_GROUP, "sg-0a1b2c3d4e5f60718", "123456789012"), [6379], ["sg-0000000a"]
).physical_id


def request(properties: Any) -> Request[Any, Any]:
    return OFFLINE_MODES.request(properties, stack_id=STACK, logical_id="Access")


def test_classic_properties_choose_the_classic_mode() -> None:
    chosen = request(CLASSIC)
    assert chosen.mode is OFFLINE_MODES.classic
    assert chosen.value == Ingress("cache-sg", "app", "123456789012")


def test_a_cache_name_chooses_the_vpc_mode() -> None:
    assert request(VPC).mode is OFFLINE_MODES.vpc


def test_properties_of_both_modes_are_refused_naming_each_side() -> None:
    with pytest.raises(
        InvalidProperties,
        match=r"CacheSecurityGroupName, EC2SecurityGroupName \(EC2-Classic.*cannot be mixed with ReplicationGroupId",
    ):
        request({**CLASSIC, **VPC})


def test_an_unknown_property_lists_the_names_of_both_modes() -> None:
    with pytest.raises(InvalidProperties, match=r"Known properties: CacheSecurityGroupName.*ReplicationGroupId"):
        request({**VPC, "Prot": "6379"})


def test_many_unknown_properties_list_the_known_names_once() -> None:
    with pytest.raises(InvalidProperties) as caught:
        request({**VPC, **{f"Extra{i}": "x" for i in range(40)}, "Prot": "6379"})
    message = str(caught.value)
    assert message.count("CacheSecurityGroupName") == 1
    assert "unknown property 'Prot' (did you mean Port?)" in message
    assert "and 36 more" in message
    assert len(message) < 1000


def test_each_id_goes_back_to_the_mode_that_minted_it() -> None:
    classic = OFFLINE_MODES.granted("cache-sg-ingress:cache-sg:123456789012:app")
    vpc = OFFLINE_MODES.granted(VPC_ID)
    assert classic is not None
    assert classic.mode is OFFLINE_MODES.classic
    assert vpc is not None
    assert vpc.mode is OFFLINE_MODES.vpc
    assert vpc.physical_id == VPC_ID


@pytest.mark.parametrize("physical_id", ["", "AppCacheIngress-1a2b3c", "cache-vpc-ingress:sg-1@1:0:sg-2"])
def test_an_id_no_mode_minted_grants_nothing(physical_id: str) -> None:
    assert OFFLINE_MODES.granted(physical_id) is None


class Recorder:
    """A mode that only records what it is asked to compare with, to see what crosses between modes."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def parse_properties(self, properties: Mapping[str, Any], *, stack_id: str, logical_id: str) -> Any:
        return properties

    def parse_physical_id(self, physical_id: str) -> Any:
        return None

    def resolve(self, request: Any, *, deadline: Deadline) -> Any:
        return request

    def grant(
        self,
        granted: Any,
        *,
        request: Any,
        instance: Instance,
        deadline: Deadline,
        undo_on_failure: bool,
        on_held: Callable[[], None],
    ) -> Result:
        return Result(Change.AUTHORIZED)

    def reassert(self, granted: Any, *, request: Any, instance: Instance, deadline: Deadline) -> Result:
        return Result(Change.ALREADY_PRESENT)

    def release(self, granted: Any, *, instance: Instance, deadline: Deadline) -> Result:
        return Result(Change.REVOKED)

    def left_by_failed_update(self, attempted: Any, *, request: Any, physical_id: str, deadline: Deadline) -> Any:
        self.asked.append(request)
        return None

    def could_name(self, request: Any, granted: Any) -> bool:
        self.asked.append(granted)
        return True

    def same_asked(self, one: Any, other: Any) -> bool:
        self.asked.append(other)
        return True


def test_a_rollback_across_modes_compares_the_failed_attempt_with_nothing() -> None:
    mode, other = Recorder(), Recorder()
    deadline = Deadline(5)
    Request(mode, "attempt").left_by_failed_update(now=Request(other, "now"), physical_id="x", deadline=deadline)
    Request(mode, "attempt").left_by_failed_update(now=Request(mode, "now"), physical_id="x", deadline=deadline)
    assert mode.asked == [None, "now"]


def test_a_request_of_another_mode_never_names_nor_asks_the_same() -> None:
    mode, other = Recorder(), Recorder()
    assert not Request(mode, "a").could_name(Granted(other, "b"))
    assert not Request(mode, "a").same_asked(Request(other, "b"))
    assert Request(mode, "a").could_name(Granted(mode, "b"))
    assert Request(mode, "a").same_asked(Request(mode, "c"))
    assert (mode.asked, other.asked) == (["b", "c"], [])
