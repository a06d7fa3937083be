"""Whatever arrives, the function answers once: a clear FAILED for bad input (a harmless SUCCESS for Delete), no crash."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cache_ingress import vpc_rules
from cache_ingress.errors import InvalidProperties
from cache_ingress.modes import ALL_PROPERTIES
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.support import handle, load_event, parse_request, servers

KNOWN = ["CacheSecurityGroupName", "EC2SecurityGroupName", "EC2SecurityGroupOwnerId"]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=6,
)
nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(max_codepoint=0x1F), max_size=10),  # control characters
    st.text(min_size=256, max_size=5000),
    st.sampled_from(["", " ", "\u00e9t\u00e9", "AKIAIOSFODNN7EXAMPLE", "1234-5678-901", "default", "a:b", "web\u200b"]),
)
property_values = st.one_of(nasty_text, json_values)
properties = (
    st.dictionaries(
        st.one_of(
            st.sampled_from([*KNOWN, "ServiceToken", "ServiceTimeout", "EC2SecurityGroupOwnerID"]), st.text(max_size=20)
        ),
        property_values,
        max_size=5,
    )
    | json_values
)
FUZZ = settings(
    max_examples=1000 if os.environ.get("HYPOTHESIS_PROFILE") == "thorough" else 80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def fresh_event(
    standin: ElastiCacheStandIn, prefix: str, request_type: str, props: Any, groups: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A ``request_type`` event (``prefix`` picks the mode's samples) with ``props``, to a stand-in holding only
    ``groups``: each example starts from the same world."""
    standin.reset()
    for group in groups:
        standin.add_group(group)
    name = "update.json" if request_type == "Update" else "create.json"
    return load_event(prefix + name, ResourceProperties=props)


def _answer(event: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The one answer to ``event``, checked as CloudFormation would take it, and how many API calls it made.

    The calls are those that reached AWS: the ElastiCache stand-in's record and the EC2 and MemoryDB fronts'.
    """
    calls_before = _calls_made()
    (put,) = handle(event, seconds=10).puts
    assert len(put.body) <= 4096
    body: dict[str, Any] = json.loads(put.body)
    assert body["PhysicalResourceId"]
    assert len(body["PhysicalResourceId"].encode()) <= 1024
    return body, _calls_made() - calls_before


def _calls_made() -> int:
    running = servers()
    return len(running.standin.calls()) + len(running.ec2.calls()) + len(running.memorydb.calls())


def _refused_without_a_call(body: dict[str, Any], calls: int, names: tuple[str, ...]) -> None:
    assert body["Status"] == "FAILED"
    assert calls == 0
    reason = body["Reason"]
    assert "ResourceProperties" in reason or "unknown property" in reason or any(n in reason for n in names), reason


def _valid(props: Any, stack_id: str) -> bool:
    try:
        parse_request(props, stack_id, "AppCacheIngress")
    except InvalidProperties:
        return False
    return True


@FUZZ
@given(props=properties, request_type=st.sampled_from(["Create", "Update"]))
def test_any_properties_get_one_answer_and_bad_ones_make_no_call(
    standin: ElastiCacheStandIn, receiver: ResponseReceiver, props: Any, request_type: str
) -> None:
    event = fresh_event(standin, "", request_type, props, groups=("app-cache-sg",))
    body, calls = _answer(event)
    if not _valid(props, event["StackId"]):
        _refused_without_a_call(body, calls, (*ALL_PROPERTIES, "ServiceTimeout"))


@FUZZ
@given(props=properties)
def test_a_delete_with_any_properties_and_a_foreign_id_is_harmless(
    standin: ElastiCacheStandIn, receiver: ResponseReceiver, props: Any
) -> None:
    standin.reset()
    standin.add_group("app-cache-sg")
    event = load_event("delete-after-failed-create.json", ResourceProperties=props)
    body, calls = _answer(event)
    assert body["Status"] == "SUCCESS"
    assert body["PhysicalResourceId"] == event["PhysicalResourceId"]
    if not _valid(props, event["StackId"]):
        assert calls == 0


@FUZZ
@given(
    name=st.sampled_from(["create.json", "update.json", "update-replace.json", "delete.json"]),
    missing=st.sets(
        st.sampled_from(
            [
                "PhysicalResourceId",
                "OldResourceProperties",
                "ServiceToken",
                "ResourceProperties",
                "RequestId",
                "LogicalResourceId",
                "StackId",
                "ResourceType",
            ]
        )
    ),
    extra=st.dictionaries(st.text(max_size=10), json_values, max_size=2),
)
def test_events_missing_fields_are_still_answered(
    standin: ElastiCacheStandIn, receiver: ResponseReceiver, name: str, missing: set[str], extra: dict[str, Any]
) -> None:
    standin.reset()
    standin.add_group("app-cache-sg")
    event = {**extra, **load_event(name)}
    for key in missing:
        event.pop(key, None)
    body, _ = _answer(event)
    envelope_broken = {"RequestId", "LogicalResourceId", "StackId"} & missing
    if envelope_broken:
        assert body["Status"] == "FAILED"
        assert "the request has no" in body["Reason"]
    elif event["RequestType"] == "Delete":
        assert body["Status"] == "SUCCESS"


vpc_values = st.one_of(
    nasty_text,
    json_values,
    st.sampled_from(
        ["app-cache", "App-Store", "sg-0a1b2c3d4e5f60718", "SG-0A1B2C3D", "6379", "0", "65536", "2109-8765-4321"]
    ),
    st.sampled_from(["10.0.0.0/8", "10.0.0.1/8", "0.0.0.0/0", "::/0", "2001:DB8::/32", "fe80::%1/64", "10.0.0.1"]),
    st.sampled_from(["pl-0123abcd", "PL-0123456789ABCDEF0", "pl-", "true", "false", "TRUE", "yes"]),
    st.lists(st.sampled_from(["sg-0000000a", "sg-0a1b2c3d4e5f60718", "web", ""]), max_size=4),
)
vpc_properties = st.dictionaries(
    st.sampled_from(
        [*vpc_rules.KNOWN_PROPERTIES, *vpc_rules.KNOWN_PROPERTIES, "CacheSecurityGroupName", "ServiceTimeout"]
    ),
    vpc_values,
    min_size=1,
    max_size=6,
)


@FUZZ
@given(props=vpc_properties, request_type=st.sampled_from(["Create", "Update"]))
def test_any_vpc_properties_get_one_answer_and_bad_ones_a_reason_naming_a_property_and_no_call(
    standin: ElastiCacheStandIn, receiver: ResponseReceiver, props: Any, request_type: str
) -> None:
    event = fresh_event(standin, "vpc-", request_type, props)
    body, calls = _answer(event)
    if not _valid(props, event["StackId"]):
        _refused_without_a_call(body, calls, (*ALL_PROPERTIES, "ServiceTimeout"))


def test_the_fuzzed_answers_count_memorydb_lookups_as_calls(
    standin: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
    """The call count the tests above rely on sees a MemoryDB lookup (here one for a cluster that is not there),
    as the MemoryDB front logged it."""
    props = {"MemoryDBClusterName": "no-such-cluster", "SourceSecurityGroupId": "sg-0a1b2c3d4e5f60718"}
    body, calls = _answer(load_event("vpc-create.json", ResourceProperties=props))
    assert (body["Status"], calls) == ("FAILED", 1)
    assert body["Reason"].startswith("MemoryDBClusterName 'no-such-cluster' not found")
