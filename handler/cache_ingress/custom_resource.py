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

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from crhelper import CfnResource

from .errors import ResourceError
from .response_body import FAILED, physical_id_or_fallback, response_body, text
from .response_delivery import put_response
from .timing import Deadline

REQUEST_TYPES = ("Create", "Update", "Delete")
#: Time kept back from the handler's work for sending the answer: a quarter of
#: the invocation's time, at most 10 s.
ANSWER_RESERVE_FRACTION = 0.25
MAX_ANSWER_RESERVE_S = 10.0
#: The last moment to still be sending, before the Lambda itself is stopped.
FINAL_MARGIN_S = 0.2

# crhelper logs the whole event (ResponseURL included) at DEBUG; its records
# below INFO are dropped whatever level the function runs at.
logging.getLogger("crhelper").setLevel(logging.INFO)


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
        self._response_url = text(self._event.get("ResponseURL"))
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
