"""One fault plan for every loopback server: what goes wrong with the next calls, as tests and benchmarks arm it.

The ElastiCache stand-in, the fronts before moto (:mod:`offline.front`) and
the https receiver all inherit :class:`FaultPlan`, so each is armed the same
way (``throttle_next``, ``throttle_for``, ``fail_next``, ``drop_next``,
``stall_next``, ``slow_next``, ``set_latency``, ``set_rate_limit``) and the
order in which faults win is the same for all. Each server takes one
:class:`Fault` per call and only turns it into its own wire format.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Fault:
    """What happens to one call: after ``wait`` seconds it is dropped, failed with ``status``, throttled, or
    (``slow``) served as usual."""

    kind: Literal["drop", "fail", "throttle", "slow"]
    wait: float = 0.0
    status: int = 0


@dataclass
class _Armed:
    drop: int = 0
    drop_wait: float = 0.0
    drop_action: str | None = None
    fail: int = 0
    fail_status: int = 503
    throttle: int = 0
    throttle_until: float = 0.0
    slow: int = 0
    slow_wait: float = 0.0
    latency_s: float = 0.0
    latency_actions: frozenset[str] | None = None
    rate_per_s: float | None = None
    bucket: float = 0.0
    bucket_at: float = 0.0


class FaultPlan:
    """The faults armed for the next calls; ``clock`` drives the rate limit's token bucket."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._fault_clock = clock
        self._fault_lock = threading.Lock()
        self._armed = _Armed()

    def throttle_next(self, count: int) -> None:
        """Throttle the next ``count`` calls (each server answers as its service does: ElastiCache ``Throttling``)."""
        with self._fault_lock:
            self._armed.throttle = count

    def throttle_for(self, seconds: float) -> None:
        """Throttle every call for the next ``seconds``: a throttling storm."""
        with self._fault_lock:
            self._armed.throttle_until = self._fault_clock() + seconds

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` calls with ``status``: a 5xx server error, or a 403 for an expired URL."""
        with self._fault_lock:
            self._armed.fail, self._armed.fail_status = count, status

    def drop_next(self, count: int, action: str | None = None) -> None:
        """Close the connection of the next ``count`` calls (to ``action`` only, if given) without answering."""
        self.stall_next(count, 0.0)
        with self._fault_lock:
            self._armed.drop_action = action

    def stall_next(self, count: int, seconds: float) -> None:
        """Hold the next ``count`` calls for ``seconds``, then close their connections without answering."""
        with self._fault_lock:
            self._armed.drop, self._armed.drop_wait = count, seconds

    def slow_next(self, count: int, seconds: float) -> None:
        """Serve the next ``count`` calls only after ``seconds``."""
        with self._fault_lock:
            self._armed.slow, self._armed.slow_wait = count, seconds

    def set_latency(self, seconds: float, actions: set[str] | None = None) -> None:
        """Delay every call (or only those to ``actions``) by ``seconds`` before anything else happens to it."""
        with self._fault_lock:
            self._armed.latency_s = seconds
            self._armed.latency_actions = frozenset(actions) if actions else None

    def set_rate_limit(self, per_second: float | None) -> None:
        """A token bucket of one second's worth of calls; calls beyond it are throttled."""
        with self._fault_lock:
            self._armed.rate_per_s = per_second
            self._armed.bucket = per_second or 0.0
            self._armed.bucket_at = self._fault_clock()

    def clear_faults(self) -> None:
        with self._fault_lock:
            self._armed = _Armed()

    def take_fault(self, action: str) -> Fault | None:
        """The fault for one call to ``action``, used up: a drop or stall first, then a failure, then throttling
        (armed, then the rate limit), then slowness; latency adds to the wait of whichever comes."""
        with self._fault_lock:
            armed = self._armed
            latency = armed.latency_s if armed.latency_actions is None or action in armed.latency_actions else 0.0
            if armed.drop > 0 and armed.drop_action in (None, action):
                armed.drop -= 1
                return Fault("drop", latency + armed.drop_wait)
            if armed.fail > 0:
                armed.fail -= 1
                return Fault("fail", latency, armed.fail_status)
            storm = self._fault_clock() < armed.throttle_until
            if storm or armed.throttle > 0 or not self._within_rate():
                armed.throttle = armed.throttle if storm else max(0, armed.throttle - 1)
                return Fault("throttle", latency)
            if armed.slow > 0:
                armed.slow -= 1
                return Fault("slow", latency + armed.slow_wait)
            return Fault("slow", latency) if latency else None

    def _within_rate(self) -> bool:
        """Whether the token bucket (if any) has a token for this call; takes it if so."""
        armed = self._armed
        if not armed.rate_per_s:
            return True
        now = self._fault_clock()
        armed.bucket = min(armed.rate_per_s, armed.bucket + (now - armed.bucket_at) * armed.rate_per_s)
        armed.bucket_at = now
        if armed.bucket < 1.0:
            return False
        armed.bucket -= 1.0
        return True
