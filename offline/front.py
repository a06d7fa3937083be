"""moto behind a front on loopback: what the EC2 and MemoryDB fronts share, whatever protocol they speak.

moto plays the service but cannot be told to throttle or to fail. A front
takes the fault plan every loopback server takes (:mod:`offline.faults`),
answers an injected fault as its service would, records every call with when
it arrived and when it was answered (:mod:`offline.call_log`), and forwards
the rest to moto unchanged. A dropped call never reaches moto; a slowed one
reaches it only after its wait, as a request the service applies after the
client gave up on it. A subclass speaks its protocol: it reads a request,
writes its service's throttling and server errors, and forwards.
:class:`JsonFront` does all that for a service of the JSON protocol
(MemoryDB, DynamoDB), which then only names itself and its error codes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from offline.call_log import Call, CallLog
from offline.faults import Fault, FaultPlan
from offline.json_protocol import JsonRequest, JsonService, error_json, forward
from offline.loopback import LoopbackService

#: (HTTP status, body, error code): an answer as the front sends it and logs it; a body of None drops the call.
Answer = tuple[int, str | None, str | None]


class Front(FaultPlan, LoopbackService):
    def __init__(self, upstream: str = "", region: str = "us-east-1") -> None:
        """``upstream``: moto's server, where every call that is not faulted goes."""
        super().__init__()
        self.upstream = upstream
        self.region = region
        self._log = CallLog()

    def reset(self) -> None:
        """Forget every call and fault."""
        self._log.clear()
        self.clear_faults()

    def calls(self, action: str | None = None) -> list[Call]:
        return self._log.calls(action)

    def serve_call(self, action: str, params: dict[str, Any], forward: Callable[[], Answer]) -> tuple[int, str | None]:
        """One call to ``action``: its fault's wait, then its fault's answer or moto's (``forward``), logged."""
        arrived = time.monotonic()
        fault = self.take_fault(action)
        if fault is not None:
            time.sleep(fault.wait)
        status, body, error = self._injected(action, fault) or forward()
        self._log.record(Call(action, params, status, error, arrived, time.monotonic()))
        return status, body

    def _injected(self, action: str, fault: Fault | None) -> Answer | None:
        if fault is None or fault.kind == "slow":
            return None
        if fault.kind == "drop":
            return 0, None, "dropped"
        if fault.kind == "throttle":
            return self.throttled(action)
        return self.failed(fault.status)

    def throttled(self, action: str) -> Answer:
        """Throttling of a call to ``action``, as the service answers it."""
        raise NotImplementedError

    def failed(self, status: int) -> Answer:
        """A server error with ``status``, as the service answers it."""
        raise NotImplementedError


class JsonFront(Front, JsonService):
    """A front for a service of the JSON protocol, named by ``service`` (moto's name for it, and the signature's).

    Its faults are answered as such a service answers them: throttling is
    ``throttling_code`` with HTTP 400; a server error is ``ServiceUnavailable``
    for a 503 and ``InternalServerError`` for any other status; each code is
    written after ``error_namespace#`` when the service writes one.
    """

    service = ""
    error_namespace = ""
    throttling_code = "ThrottlingException"

    def handle(self, request: JsonRequest) -> tuple[int, str | None]:
        return self.serve_call(
            request.action,
            request.params(),
            lambda: forward(self.upstream, self.service, self.region, request, self.content_type),
        )

    def throttled(self, action: str) -> Answer:
        return self.error(400, self.throttling_code, "Rate exceeded")

    def failed(self, status: int) -> Answer:
        code = "ServiceUnavailable" if status == 503 else "InternalServerError"
        return self.error(status, code, "An internal error has occurred.")

    def error(self, status: int, code: str, message: str) -> Answer:
        return status, error_json(code, message, self.error_namespace), code
