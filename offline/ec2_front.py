"""EC2 on loopback with faults: moto's server behind a front that throttles, fails, drops or slows calls.

moto plays EC2's security groups and rules, but it cannot be told to throttle
or to fail; the function's EC2 client talks to this front instead, which takes
the same fault plan as the other loopback servers (:mod:`offline.faults`),
answers injected faults in EC2's own error format (``RequestLimitExceeded``,
``InternalError``, ``Unavailable``), records every call with when it arrived and
when it was answered, and forwards the rest to moto unchanged. A dropped call
never reaches moto; a slowed one reaches it only after its wait, as a request
the service applies after the client gave up on it.
"""

from __future__ import annotations

import threading
import time
import uuid
from xml.sax.saxutils import escape  # used to write XML; nothing here parses any  # nosec B406

from offline.faults import Fault, FaultPlan
from offline.query_protocol import Call, QueryService, forward

#: The EC2 actions that change something; the rest only look.
WRITES = frozenset(
    {
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
        "UpdateSecurityGroupRuleDescriptionsIngress",
        "CreateTags",
        "DeleteTags",
    }
)


class Ec2Front(FaultPlan, QueryService):
    thread_name = "ec2-front"

    def __init__(self, upstream: str = "", region: str = "us-east-1") -> None:
        """``upstream``: moto's server, where every call that is not faulted goes."""
        super().__init__()
        self.upstream = upstream
        self.region = region
        self._lock = threading.Lock()
        self._calls: list[Call] = []

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
        self.clear_faults()

    def calls(self, action: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if action is None or c.action == action]

    def writes(self) -> list[Call]:
        """Every call that changes something, in the order they arrived."""
        return [c for c in self.calls() if c.action in WRITES]

    def handle(self, form: dict[str, str]) -> tuple[int, str | None]:
        arrived = time.monotonic()
        action = form.get("Action", "")
        fault = self.take_fault(action)
        if fault is not None:
            time.sleep(fault.wait)
        status, body, error = self._answer(form, fault)
        params = {k: v for k, v in form.items() if k not in ("Action", "Version")}
        with self._lock:
            self._calls.append(Call(action, params, status, error, arrived, time.monotonic()))
        return status, body

    def _answer(self, form: dict[str, str], fault: Fault | None) -> tuple[int, str | None, str | None]:
        if fault is not None and fault.kind == "drop":
            return 0, None, "dropped"
        if fault is not None and fault.kind == "throttle":
            return 503, error_xml("RequestLimitExceeded", "Request limit exceeded."), "RequestLimitExceeded"
        if fault is not None and fault.kind == "fail":
            code = "Unavailable" if fault.status == 503 else "InternalError"
            return fault.status, error_xml(code, "An internal error has occurred"), code
        return forward(self.upstream, "ec2", self.region, form)


def error_xml(code: str, message: str) -> str:
    """An error answer as EC2 writes it (not the query protocol's ``ErrorResponse``)."""
    return (
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"</Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    )
