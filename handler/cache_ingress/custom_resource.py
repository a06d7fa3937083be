"""Answering CloudFormation: crhelper's CfnResource with its traps closed.

crhelper 2.0.12 gives the decorator wiring and the request flow; this module
changes what it does around them:

* no lambda/events/logs clients at import and no root logger at DEBUG
  (``CfnResource.__init__`` does both; polling, their only user, is not used);
* nothing logs the event or the ResponseURL, a bearer credential;
* Delete is answered at once (no ``sleep_on_delete``);
* exactly one answer per invocation, even when the deadline backstop and the
  handler race, always with a non-empty PhysicalResourceId;
* the body fits CloudFormation's 4096 bytes, cutting the Reason's middle:
  its head states the cause, and every FAILED Reason ends with where the logs
  are (group, stream, request id);
* the PUT has a socket timeout, treats an HTTP error status as a failure and
  retries a bounded number of times within the deadline;
* the deadline (:class:`~cache_ingress.timing.Deadline`, where its story is
  told) is closed the moment the answer is decided; a request that comes
  after CloudFormation stopped waiting is answered FAILED and nothing else;
* a ResponseURL that is not https is refused before any AWS call; under
  ``sam local invoke`` the body is printed, since the sample ResponseURL
  leads nowhere;
* botocore, boto3 and urllib3 log at INFO at most, whatever the root level:
  at DEBUG they log every request's ``Authorization`` header and session token.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from crhelper import CfnResource

from .errors import InvalidProperties, ResourceError
from .properties import service_timeout_of
from .response_body import FAILED, physical_id_or_fallback, response_body, text, where_the_logs_are
from .response_delivery import put_response
from .response_url import url_times
from .timing import Deadline, service_timeout

REQUEST_TYPES = ("Create", "Update", "Delete")

#: Loggers whose DEBUG records hold secrets: crhelper logs the whole event
#: (ResponseURL included); botocore logs every request's headers (the
#: ``Authorization`` header with the access key id, ``X-Amz-Security-Token``)
#: and urllib3 the URLs it opens. Their records below INFO are dropped
#: whatever level the function (or the root logger) runs at.
QUIET_LOGGERS = ("crhelper", "botocore", "boto3", "urllib3")


def hold_loggers_at_info() -> None:
    """Each logger in :data:`QUIET_LOGGERS` at INFO, unless it is already set higher."""
    for name in QUIET_LOGGERS:
        held = logging.getLogger(name)
        if held.level < logging.INFO:
            held.setLevel(logging.INFO)


hold_loggers_at_info()


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
        self._logs = ""
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
        hold_loggers_at_info()  # again: something may have lowered them since the import
        self._event = event if isinstance(event, dict) else {}
        self._response_url = text(self._event.get("ResponseURL"))
        deadline = Deadline.for_invocation(
            _remaining_seconds(context), service_timeout(self._event), url=url_times(self._response_url)
        )
        with self._answer_lock:
            self._invocation += 1
            self._answer = None
            self.deadline = deadline
        self._logs = where_the_logs_are(context)
        self.PhysicalResourceId = ""
        self.Data = {}
        if not self._response_url:
            self._logger.error("the event has no ResponseURL: CloudFormation cannot be answered")
            return
        if not _answerable(self._response_url):
            self._logger.error("the event's ResponseURL is not an https URL: no answer can be sent, nothing is done")
            return
        problem = _envelope_problem(self._event)
        if problem:
            self._send(FAILED, problem)
        elif deadline.expired:
            self._logger.warning(
                "the request came after CloudFormation stopped waiting: answering FAILED, changing nothing",
                extra={
                    "request_type": self._event.get("RequestType"),
                    "late_by_s": round(deadline.late_by or 0.0, 1),
                    "limit": deadline.limit,
                },
            )
            self._send(FAILED, deadline.expired_reason())
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
        """The backstop: answer FAILED when the work overruns every bound (a call no read timeout cuts)."""
        delay = max(0.0, self.deadline.backstop_time_left())
        self._timer = threading.Timer(delay, self._timeout, args=(self._invocation,))
        self._timer.daemon = True
        self._timer.start()

    def _timeout(self, invocation: int | None = None) -> None:
        with self._answer_lock:
            if invocation is not None and invocation != self._invocation:
                return  # a timer of an earlier invocation that lost the race with its cancel()
            if self._answer is None:
                self._logger.error(
                    "the deadline came before the work finished; answering FAILED", extra={"limit": self.deadline.limit}
                )
            self._send(FAILED, self.deadline.late_reason())

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
            self.deadline.answered()  # from here on, no AWS call starts
            body = response_body(
                self._event,
                status or self.Status or FAILED,
                self.PhysicalResourceId,
                reason if status else self.Reason,
                {} if (status or self.Status) == FAILED else self.Data,
                logs=self._logs,
            )
            self._answer = body
            if os.environ.get("AWS_SAM_LOCAL"):
                print(body.decode())  # noqa: T201 - sam local invoke shows what CloudFormation would receive
                return
            put_response(self._response_url, body, self.deadline.answer_time_left, self._logger)


def _remaining_seconds(context: Any) -> float:
    try:
        return float(context.get_remaining_time_in_millis()) / 1000.0
    except (AttributeError, TypeError, ValueError):
        return 60.0  # no Lambda context (a hand-made call): a conservative budget


def _answerable(url: str) -> bool:
    """An https URL with a host; under ``sam local invoke`` (which prints the answer) any URL."""
    if os.environ.get("AWS_SAM_LOCAL"):
        return True
    try:
        parts = urlsplit(url)
        return parts.scheme == "https" and bool(parts.hostname)
    except ValueError:  # a malformed host, such as an unclosed IPv6 bracket
        return False


def _envelope_problem(event: Mapping[str, Any]) -> str:
    """What is wrong with the request itself, before its properties are looked at."""
    request_type = event.get("RequestType")
    if request_type not in REQUEST_TYPES:
        return f"RequestType must be one of {', '.join(REQUEST_TYPES)}, got {request_type!r}"[:300]
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        if not isinstance(event.get(key), str) or not event.get(key):
            return f"the request has no {key}"
    if request_type != "Delete":
        # A Delete with a bad one proceeds as if it were not set: refusing it would strand the stack.
        try:
            service_timeout_of(event)
        except InvalidProperties as err:
            return str(err)
    return ""
