"""Answering CloudFormation: crhelper's CfnResource with its traps closed.

crhelper 2.0.12 gives the decorator wiring and the request flow; this module
changes what it does around them:

* no lambda/events/logs clients at import and no root logger at DEBUG
  (``CfnResource.__init__`` does both; polling, their only user, is not used);
* nothing logs the event or the ResponseURL, a bearer credential;
* Delete is answered at once (no ``sleep_on_delete``);
* exactly one answer per invocation, even when the deadline backstop and the
  handler race, always with a non-empty PhysicalResourceId;
* the body fits CloudFormation's 4096 bytes, cutting the Reason's tail, not
  its head;
* the PUT has a socket timeout, treats an HTTP error status as a failure and
  retries a bounded number of times within the deadline;
* under ``sam local invoke`` the body is printed, since the sample
  ResponseURL leads nowhere.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from crhelper import CfnResource

from .lifecycle import Deadline
from .rules import ResourceError

SUCCESS = "SUCCESS"
FAILED = "FAILED"
REQUEST_TYPES = ("Create", "Update", "Delete")

MAX_BODY_BYTES = 4096
MAX_PHYSICAL_ID = 1024
#: Time kept back from the handler's work for sending the answer: a quarter of
#: the invocation's time, at most 10 s.
ANSWER_RESERVE_FRACTION = 0.25
MAX_ANSWER_RESERVE_S = 10.0
#: The last moment to still be sending, before the Lambda itself is stopped.
FINAL_MARGIN_S = 0.2
PUT_ATTEMPTS = 5
PUT_ATTEMPT_TIMEOUT_S = 5.0
TRUNCATION_MARK = " [...]"

# crhelper logs the whole event (ResponseURL included) at DEBUG; its records
# below INFO are dropped whatever level the function runs at.
logging.getLogger("crhelper").setLevel(logging.INFO)


def response_body(
    event: Mapping[str, Any],
    status: str,
    physical_id: str,
    reason: str = "",
    data: Mapping[str, Any] | None = None,
) -> bytes:
    """The JSON CloudFormation receives, at most 4096 bytes.

    A Reason that does not fit keeps its head, where the cause is stated. The
    physical id is never empty: CloudFormation rejects an answer without one.
    """
    body: dict[str, Any] = {
        "Status": status,
        "PhysicalResourceId": physical_id_or_fallback(physical_id, event),
        "StackId": _text(event.get("StackId")),
        "RequestId": _text(event.get("RequestId")),
        "LogicalResourceId": _text(event.get("LogicalResourceId")),
        "NoEcho": False,
        "Data": dict(data or {}),
    }
    if reason or status == FAILED:
        body["Reason"] = reason or "the request failed"
    encoded = _encode(body)
    if len(encoded) > MAX_BODY_BYTES and "Reason" in body:
        body["Reason"] = _cut_to_fit(body, body["Reason"])
        encoded = _encode(body)
    if len(encoded) > MAX_BODY_BYTES:
        body.update(Status=FAILED, Data={}, Reason="the response did not fit CloudFormation's 4096 bytes")
        encoded = _encode(body)
    return encoded


def physical_id_or_fallback(physical_id: Any, event: Mapping[str, Any]) -> str:
    """The id to report: ours, else the request's, else one made from the request's fields."""
    for candidate in (physical_id, event.get("PhysicalResourceId")):
        if isinstance(candidate, str) and candidate:
            return _cut_bytes(candidate, MAX_PHYSICAL_ID)
    logical = _text(event.get("LogicalResourceId")) or "resource"
    request = _text(event.get("RequestId")) or "request"
    return _cut_bytes(f"{logical}-{request}", MAX_PHYSICAL_ID)


def _cut_bytes(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore") or "resource"


def _cut_to_fit(body: dict[str, Any], reason: str) -> str:
    budget = MAX_BODY_BYTES - len(_encode({**body, "Reason": ""}))
    low, high = 0, len(reason)
    while low < high:  # the longest head whose JSON encoding fits
        mid = (low + high + 1) // 2
        if len(_encode_str(reason[:mid] + TRUNCATION_MARK)) - 2 <= budget:
            low = mid
        else:
            high = mid - 1
    return reason[:low] + TRUNCATION_MARK


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _encode_str(text: str) -> bytes:
    return json.dumps(text).encode()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def put_response(
    url: str,
    body: bytes,
    time_left: Callable[[], float],
    logger: Any,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """PUT the body to the presigned URL; True once CloudFormation's store accepted it.

    Network errors and 5xx/429 answers are retried with jittered backoff, at
    most ``PUT_ATTEMPTS`` times and never past ``time_left``. Other HTTP errors
    (an expired or altered URL) are final. The URL is never logged.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        logger.error("the ResponseURL is not an https URL; no answer can be sent")
        return False
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    context = _tls_context()
    headers = {"Content-Type": "", "Content-Length": str(len(body))}
    for attempt in range(1, PUT_ATTEMPTS + 1):
        timeout = min(PUT_ATTEMPT_TIMEOUT_S, time_left())
        if timeout <= 0:
            break
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=context)
        try:
            connection.request("PUT", target, body=body, headers=headers)
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as err:
            logger.warning("sending the response failed", extra={"attempt": attempt, "error": type(err).__name__})
        else:
            if 200 <= status < 300:
                logger.debug("response delivered", extra={"attempt": attempt, "http_status": status})
                return True
            if status < 500 and status not in (408, 429):
                logger.error("the response URL refused the answer", extra={"http_status": status})
                return False
            logger.warning("the response URL answered an error", extra={"attempt": attempt, "http_status": status})
        finally:
            connection.close()
        pause = min(0.25 * 2**attempt, 4.0) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret  # nosec B311
        if attempt == PUT_ATTEMPTS or time_left() < pause + 0.1:
            break
        sleep(pause)
    logger.error("the response could not be delivered", extra={"attempts": attempt})
    return False


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying context per sandbox: loading the CA bundle costs more than the PUT itself."""
    return ssl.create_default_context()


class CustomResource(CfnResource):
    """crhelper's CfnResource, answering exactly once, in time, without leaking the ResponseURL."""

    def __init__(self, logger: Any) -> None:
        # CfnResource.__init__ is not called on purpose: it creates three boto3
        # clients that only polling uses and sets the root logger to DEBUG.
        self._logger = logger
        self._create_func = self._update_func = self._delete_func = None
        self._poll_create_func = self._poll_update_func = self._poll_delete_func = None
        self._timer: threading.Timer | None = None
        self._init_failed = None
        self._sleep_on_delete = 0
        self._ssl_verify = None
        self._sam_local = None
        self._send_response = False
        # Reentrant: the backstop holds it across its staleness check and its _send.
        self._answer_lock = threading.RLock()
        self._answer: bytes | None = None
        self._invocation = 0
        self._event: dict[str, Any] = {}
        self._context: Any = None
        self._response_url = ""
        self._end = 0.0
        self.deadline = Deadline(0.0)
        self.Status = ""
        self.Reason = ""
        self.PhysicalResourceId = ""
        self.StackId = self.RequestId = self.LogicalResourceId = ""
        self.RequestType = ""
        self.Data: dict[str, Any] = {}
        self.NoEcho = False

    @property
    def answer(self) -> dict[str, Any] | None:
        """The body of the last invocation's answer, None if it had nothing to answer to."""
        return json.loads(self._answer) if self._answer else None

    def __call__(self, event: Any, context: Any) -> None:
        """Run one request and answer it once."""
        with self._answer_lock:
            self._invocation += 1
            self._answer = None
        self._event = event if isinstance(event, dict) else {}
        self._response_url = _text(self._event.get("ResponseURL"))
        self.PhysicalResourceId = ""
        self.Data = {}
        remaining = _remaining_seconds(context)
        self._end = time.monotonic() + remaining
        reserve = min(MAX_ANSWER_RESERVE_S, remaining * ANSWER_RESERVE_FRACTION)
        self.deadline = Deadline(remaining - reserve)
        if not self._response_url:
            self._logger.error("the event has no ResponseURL: CloudFormation cannot be answered")
            return
        problem = _envelope_problem(self._event)
        if problem:
            self._send(FAILED, problem)
        else:
            super().__call__(self._event, context)

    # crhelper hooks -------------------------------------------------------

    def generate_physical_id(self, event: Mapping[str, Any]) -> str:
        """crhelper's id for a request that set none (a Create that failed before naming its ingress)."""
        return physical_id_or_fallback("", event)

    def _log_setup(self, event: Any, context: Any) -> None:
        """Logging is configured by the powertools Logger, not by crhelper."""

    def _wait_for_cwlogs(self, sleep: Any = None) -> None:
        """Answer a Delete at once: the logs reach CloudWatch without crhelper's 120 s pause."""

    def _set_timeout(self) -> None:
        """The backstop: answer FAILED when the work overruns its deadline (a hung API call)."""
        delay = max(0.0, self.deadline.remaining())
        self._timer = threading.Timer(delay, self._timeout, args=(self._invocation,))
        self._timer.daemon = True
        self._timer.start()

    def _timeout(self, invocation: int | None = None) -> None:
        with self._answer_lock:
            if invocation is not None and invocation != self._invocation:
                return  # a timer of an earlier invocation that lost the race with its cancel()
            if self._answer is None:
                self._logger.error("the deadline came before the work finished; answering FAILED")
            self._send(
                FAILED,
                "the function ran out of time waiting for ElastiCache; "
                "retry the stack operation, or raise the function's Timeout",
            )

    def _wrap_function(self, func: Callable[[dict[str, Any], Any], Any] | None) -> None:
        """Run the request's handler; any exception becomes FAILED with its message as Reason."""
        try:
            result = func(self._event, self._context) if func else ""
        except ResourceError as err:
            self._logger.warning("request failed", extra={"reason": str(err), "error": type(err).__name__})
            self.Status, self.Reason = FAILED, str(err)
        except Exception as err:  # one place turns every other failure into a FAILED answer too
            self._logger.exception("request failed unexpectedly")
            self.Status, self.Reason = FAILED, f"{type(err).__name__}: {err}"
        else:
            self.PhysicalResourceId = result

    def _send(self, status: str | None = None, reason: str = "", send_response: Any = None) -> None:
        """Answer, unless this invocation has already.

        The lock is held for the whole delivery: when the backstop timer is
        sending, the handler's own late answer waits for that PUT to finish
        instead of returning, since Lambda freezes the sandbox, threads and
        all, as soon as the handler returns.
        """
        with self._answer_lock:
            if self._answer is not None:
                return
            body = response_body(
                self._event,
                status or self.Status or FAILED,
                self.PhysicalResourceId,
                reason if status else self.Reason,
                {} if (status or self.Status) == FAILED else self.Data,
            )
            self._answer = body
            if os.environ.get("AWS_SAM_LOCAL"):
                print(body.decode())  # noqa: T201 - sam local invoke shows what CloudFormation would receive
                return
            put_response(self._response_url, body, lambda: self._end - FINAL_MARGIN_S - time.monotonic(), self._logger)


def _remaining_seconds(context: Any) -> float:
    try:
        return float(context.get_remaining_time_in_millis()) / 1000.0
    except (AttributeError, TypeError, ValueError):
        return 60.0  # no Lambda context (a hand-made call): a conservative budget


def _envelope_problem(event: Mapping[str, Any]) -> str:
    """What is wrong with the request itself, before its properties are looked at."""
    request_type = event.get("RequestType")
    if request_type not in REQUEST_TYPES:
        return f"RequestType must be one of {', '.join(REQUEST_TYPES)}, got {request_type!r}"[:300]
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        if not isinstance(event.get(key), str) or not event.get(key):
            return f"the request has no {key}"
    return ""
