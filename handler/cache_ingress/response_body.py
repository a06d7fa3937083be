"""The answer CloudFormation receives, as a pure function of the request and the outcome.

CloudFormation rejects a body over 4096 bytes and an answer without a
PhysicalResourceId (or one over 1 KB), so the body is cut to fit here, where
a test can reach every edge without a network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SUCCESS = "SUCCESS"
FAILED = "FAILED"

MAX_BODY_BYTES = 4096
MAX_PHYSICAL_ID = 1024
TRUNCATION_MARK = " [...]"
NO_FIT = "the response did not fit CloudFormation's 4096 bytes"
#: What each echoed field may take of the body, JSON-encoded, when the event's fields alone would not fit.
#: Together with the rest of a FAILED body they stay under 4096 bytes; CloudFormation's own are far shorter.
ENVELOPE_BUDGETS = {"PhysicalResourceId": 1100, "StackId": 900, "RequestId": 900, "LogicalResourceId": 900}


def response_body(
    event: Mapping[str, Any],
    status: str,
    physical_id: str,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
    *,
    logs: str = "",
) -> bytes:
    """The JSON CloudFormation receives, at most 4096 bytes.

    A FAILED Reason ends with ``logs``, where the rest of the story is
    (:func:`where_the_logs_are`). A Reason that does not fit keeps its head,
    where the cause is stated, and that ending; what goes is the middle. The
    physical id is never empty: CloudFormation rejects an answer without one.
    """
    body: dict[str, Any] = {
        "Status": status,
        "PhysicalResourceId": physical_id_or_fallback(physical_id, event),
        "StackId": text(event.get("StackId")),
        "RequestId": text(event.get("RequestId")),
        "LogicalResourceId": text(event.get("LogicalResourceId")),
        "NoEcho": False,
        "Data": dict(data or {}),
    }
    ending = logs if status == FAILED else ""
    if reason or status == FAILED:
        body["Reason"] = (reason or "the request failed") + ending
    encoded = _encode(body)
    if len(encoded) > MAX_BODY_BYTES and "Reason" in body:
        body["Reason"] = _cut_to_fit(body, reason or "the request failed", ending)
        encoded = _encode(body)
    if len(encoded) > MAX_BODY_BYTES:
        body.update(Status=FAILED, Data={}, Reason=NO_FIT + logs)
        encoded = _encode(body)
    if len(encoded) > MAX_BODY_BYTES:
        # Only an event no CloudFormation sends gets here (its ids are far shorter): cut its fields to fit.
        body["Reason"] = NO_FIT
        for key, budget in ENVELOPE_BUDGETS.items():
            body[key] = _cut_encoded(body[key], budget)
        encoded = _encode(body)
    return encoded


def where_the_logs_are(context: Any) -> str:
    """`` (logs: <group>, stream <stream>, request <id>)`` from the Lambda context; what it lacks is left out."""
    parts = [
        f"{label}{value}"
        for label, name in (
            ("logs: ", "log_group_name"),
            ("stream ", "log_stream_name"),
            ("request ", "aws_request_id"),
        )
        if isinstance(value := getattr(context, name, None), str) and value
    ]
    return f" ({', '.join(parts)})" if parts else ""


def physical_id_or_fallback(physical_id: Any, event: Mapping[str, Any]) -> str:
    """The id to report: ours, else the request's, else one made from the request's fields."""
    for candidate in (physical_id, event.get("PhysicalResourceId")):
        if isinstance(candidate, str) and candidate:
            return _cut_bytes(candidate, MAX_PHYSICAL_ID)
    logical = text(event.get("LogicalResourceId")) or "resource"
    request = text(event.get("RequestId")) or "request"
    return _cut_bytes(f"{logical}-{request}", MAX_PHYSICAL_ID)


def _cut_bytes(value: str, limit: int) -> str:
    return value.encode()[:limit].decode(errors="ignore") or "resource"


def _cut_to_fit(body: dict[str, Any], reason: str, ending: str) -> str:
    """The longest head of ``reason`` that fits with the truncation mark and ``ending`` after it."""
    budget = MAX_BODY_BYTES - len(_encode({**body, "Reason": ""}))
    low, high = 0, len(reason)
    while low < high:  # the longest head whose JSON encoding fits
        mid = (low + high + 1) // 2
        if len(_encode_str(reason[:mid] + TRUNCATION_MARK + ending)) - 2 <= budget:
            low = mid
        else:
            high = mid - 1
    return reason[:low] + TRUNCATION_MARK + ending


def _cut_encoded(value: str, budget: int) -> str:
    """The longest head of ``value`` whose JSON string encoding (quotes aside) takes at most ``budget`` bytes."""
    low, high = 0, len(value)
    while low < high:
        mid = (low + high + 1) // 2
        if len(_encode_str(value[:mid])) - 2 <= budget:
            low = mid
        else:
            high = mid - 1
    return value[:low] or "resource"


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _encode_str(value: str) -> bytes:
    return json.dumps(value).encode()


def text(value: Any) -> str:
    """A string field of the event, or empty when it is missing or not a string."""
    return value if isinstance(value, str) else ""
