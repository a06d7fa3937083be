"""The body CloudFormation receives: its size, its Reason and its physical id."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from cache_ingress.response_body import FAILED, SUCCESS, TRUNCATION_MARK, physical_id_or_fallback, response_body

EVENT = {
    "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/1",
    "RequestId": "req-1",
    "LogicalResourceId": "Ingress",
    "PhysicalResourceId": "from-the-request",
}


def test_success_body_carries_the_fields_cloudformation_needs() -> None:
    body = json.loads(response_body(EVENT, SUCCESS, "our-id", data={"Status": "authorized"}))
    assert body == {
        "Status": "SUCCESS",
        "PhysicalResourceId": "our-id",
        "StackId": EVENT["StackId"],
        "RequestId": "req-1",
        "LogicalResourceId": "Ingress",
        "NoEcho": False,
        "Data": {"Status": "authorized"},
    }


def test_a_long_reason_keeps_its_head_and_the_body_fits_4096_bytes() -> None:
    reason = "CacheSecurityGroupName is required. " + "detail " * 2000
    raw = response_body(EVENT, FAILED, "id", reason)
    body = json.loads(raw)
    assert len(raw) <= 4096
    assert body["Reason"].startswith("CacheSecurityGroupName is required.")
    assert body["Reason"].endswith(TRUNCATION_MARK)


@given(st.text(max_size=6000), st.text(min_size=0, max_size=1500))
def test_any_reason_and_id_fit(reason: str, physical_id: str) -> None:
    raw = response_body(EVENT, FAILED, physical_id, reason)
    body = json.loads(raw)
    assert len(raw) <= 4096
    assert body["PhysicalResourceId"]
    assert len(body["PhysicalResourceId"].encode()) <= 1024


def test_a_failure_without_a_reason_still_says_it_failed() -> None:
    assert json.loads(response_body(EVENT, FAILED, "id"))["Reason"]


def test_the_physical_id_is_never_empty() -> None:
    assert physical_id_or_fallback("", EVENT) == "from-the-request"
    assert physical_id_or_fallback(None, {"LogicalResourceId": "L", "RequestId": "r"}) == "L-r"
    assert physical_id_or_fallback("", {}) == "resource-request"
    assert len(physical_id_or_fallback("x" * 5000, EVENT)) == 1024


@given(
    st.text(min_size=1000, max_size=5000),
    st.text(max_size=5000),
    st.text(st.characters(max_codepoint=0x1F), max_size=2000),
    st.text(max_size=2000),
)
def test_envelope_fields_too_long_for_the_body_are_cut_to_fit(
    stack_id: str, request_id: str, logical_id: str, physical_id: str
) -> None:
    event = {"StackId": stack_id, "RequestId": request_id, "LogicalResourceId": logical_id}
    raw = response_body(event, SUCCESS, physical_id, data={"Status": "authorized"})
    body = json.loads(raw)
    assert len(raw) <= 4096
    assert body["StackId"] == stack_id[: len(body["StackId"])]
    assert body["PhysicalResourceId"]


def test_envelope_fields_that_fit_are_echoed_whole() -> None:
    event = {**EVENT, "LogicalResourceId": "L" * 255}
    assert json.loads(response_body(event, SUCCESS, "id"))["LogicalResourceId"] == "L" * 255
