"""MemoryDB on loopback with faults: moto's server behind a front (:mod:`offline.front`) in MemoryDB's own errors.

The function's MemoryDB client talks to this front in the JSON protocol
(:mod:`offline.json_protocol`), so a test can throttle, fail, drop or slow the
DescribeClusters that finds a cluster by name, as it can ElastiCache's and
EC2's calls. Faults are answered as a JSON-protocol AWS service answers them:
throttling is ``ThrottlingException`` with HTTP 400, which botocore's retry
rules (``_retry.json``, ``retries/standard.py``) and the function's own
policy (``THROTTLING_CODES`` in ``cache_ingress/outcomes.py``, read by
``cache_ingress/retry.py``) both take for throttling; a server error is
``ServiceUnavailable`` for a 503 and ``InternalServerError`` for any other
status. Everything else goes to moto unchanged.
"""

from __future__ import annotations

from offline.front import Answer, Front
from offline.json_protocol import JsonRequest, JsonService, error_json, forward


class MemoryDbFront(Front, JsonService):
    thread_name = "memorydb-front"

    def handle(self, request: JsonRequest) -> tuple[int, str | None]:
        return self.serve_call(
            request.action, request.params(), lambda: forward(self.upstream, "memorydb", self.region, request)
        )

    def throttled(self) -> Answer:
        return 400, error_json("ThrottlingException", "Rate exceeded"), "ThrottlingException"

    def failed(self, status: int) -> Answer:
        code = "ServiceUnavailable" if status == 503 else "InternalServerError"
        return status, error_json(code, "An internal error has occurred."), code
