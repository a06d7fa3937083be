"""Time: the deadline every request's work stops at, and the backoff between polls and retries.

Both modes wait (ElastiCache's asynchronous changes, throttling), and every
wait goes through :func:`pause`, so no loop can sleep past the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from .errors import ResourceFailure

Sleep = Callable[[float], None]

#: Polls start fast (Authorize often settles within a second) and are capped
#: below one second, so a Delete is answered within a second of the revoke
#: settling, Describe and PUT included.
FIRST_POLL_S = 0.2
MAX_POLL_S = 0.8


class Deadline:
    """A point in monotonic time by which the work must stop to leave room for the answer."""

    def __init__(self, seconds_from_now: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock() + seconds_from_now

    def remaining(self) -> float:
        return self._at - self._clock()


def polls() -> Iterator[float]:
    """The waits between polls: doubling from :data:`FIRST_POLL_S`, capped at :data:`MAX_POLL_S`."""
    delay = FIRST_POLL_S
    while True:
        yield delay
        delay = min(delay * 2, MAX_POLL_S)


def pause(waits: Iterator[float], deadline: Deadline, sleep: Sleep, failure: str) -> None:
    """Sleep until the next poll, or fail with ``failure`` if the deadline comes first."""
    delay = next(waits)
    if deadline.remaining() < delay:
        raise ResourceFailure(failure)
    sleep(delay)
