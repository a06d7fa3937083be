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

from offline.front import JsonFront


class MemoryDbFront(JsonFront):
    thread_name = "memorydb-front"
    service = "memorydb"
