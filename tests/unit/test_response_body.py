"""The body CloudFormation receives: its size, its Reason and its physical id."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from cache_ingress.response_body import (
    FAILED,
    SUCCESS,
    TRUNCATION_MARK,
    physical_id_or_fallback,
    response_body,
    where_the_logs_are,
)

LOGS = " (logs: /aws/lambda/x, stream 2026/12/06/[$LATEST]abc, request 1234-5678)"
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


class Context:
    """The Lambda context's log attributes, as the runtime sets them."""

    log_group_name = "/aws/lambda/x"
    log_stream_name = "2026/12/06/[$LATEST]abc"
    aws_request_id = "1234-5678"


def test_where_the_logs_are_names_the_group_the_stream_and_the_request() -> None:
    assert where_the_logs_are(Context()) == LOGS


def test_where_the_logs_are_leaves_out_what_the_context_lacks() -> None:
    class RequestOnly:
        aws_request_id = "1234-5678"
        log_group_name = ""

    assert where_the_logs_are(RequestOnly()) == " (request 1234-5678)"
    assert where_the_logs_are(None) == ""


def test_a_failed_reason_ends_with_where_the_logs_are_and_a_success_carries_no_pointer() -> None:
    assert json.loads(response_body(EVENT, FAILED, "id", "Port must be a number", logs=LOGS))["Reason"] == (
        "Port must be a number" + LOGS
    )
    assert json.loads(response_body(EVENT, FAILED, "id", logs=LOGS))["Reason"] == "the request failed" + LOGS
    assert "Reason" not in json.loads(response_body(EVENT, SUCCESS, "id", logs=LOGS))


def test_a_long_reason_loses_its_middle_keeping_its_head_and_where_the_logs_are() -> None:
    reason = "CacheSecurityGroupName is required. " + "detail " * 2000
    raw = response_body(EVENT, FAILED, "id", reason, logs=LOGS)
    body = json.loads(raw)
    assert len(raw) <= 4096
    assert body["Reason"].startswith("CacheSecurityGroupName is required. detail")
    assert body["Reason"].endswith(TRUNCATION_MARK + LOGS)
    assert len(raw) > 4096 - 10  # what was cut is only what had to be


def test_a_success_too_big_to_send_fails_pointing_at_the_logs() -> None:
    body = json.loads(response_body(EVENT, SUCCESS, "id", data={"Big": "x" * 5000}, logs=LOGS))
    assert (body["Status"], body["Reason"]) == (FAILED, "the response did not fit CloudFormation's 4096 bytes" + LOGS)


#: What log group and stream names, request ids and ids of ours are made of (no character JSON escapes).
NAME_CHARACTERS = st.sampled_from("abcXYZ0189/._-#$[]:, ()@")


@given(st.text(max_size=6000), st.text(NAME_CHARACTERS, max_size=1024), st.text(NAME_CHARACTERS, max_size=1100))
def test_any_reason_keeps_any_pointer_to_the_logs_and_fits(reason: str, physical_id: str, logs: str) -> None:
    """The pointer is at most about 1.1 KB: a log group and a stream name of 512 characters each, a request id."""
    raw = response_body(EVENT, FAILED, physical_id, reason, logs=logs)
    assert len(raw) <= 4096
    assert json.loads(raw)["Reason"].endswith(logs)
