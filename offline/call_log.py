"""What a loopback server keeps of each call it gets, so that a test asks the server, not the client, what arrived.

A client's own count (a botocore event hook) sees the calls the client meant
to make; the server's log sees those that reached it, when they arrived and
when they were answered, which is what AWS would have seen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    """One request as a stand-in saw it: it ``arrived``, then was ``answered`` (faults wait in between), on the
    monotonic clock. ``params`` are the request's own: the query protocol's form fields but Action and Version,
    or the JSON protocol's body; ``error`` is the answer's error code, or ``dropped`` when none was sent."""

    action: str
    params: dict[str, Any]
    status: int
    error: str | None
    arrived: float
    answered: float


class CallLog:
    """Every call, in the order they were answered; safe to read while the server's threads write.

    A call that arrived before the log was last cleared is not recorded when it is answered: a call an earlier
    test stalled, answered during the next one, is no call of the next one's. ``clock`` is the one ``arrived``
    is read on.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._clock = clock
        self._cleared_at = float("-inf")

    def record(self, call: Call) -> None:
        with self._lock:
            if call.arrived >= self._cleared_at:
                self._calls.append(call)

    def calls(self, action: str | None = None) -> list[Call]:
        """Every call so far, or those to ``action``."""
        with self._lock:
            return [c for c in self._calls if action is None or c.action == action]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._cleared_at = self._clock()
