"""Time: the one deadline an invocation's work stops at, and the backoff between polls.

An invocation's work is bounded by the earliest of two clocks (:meth:`Deadline.for_invocation`):

* the Lambda's: its remaining time, less a reserve for sending the answer
  (a quarter of the time, at most :data:`MAX_ANSWER_RESERVE_S`);
* CloudFormation's: ``ServiceTimeout``, when the resource sets it, less a
  margin (a quarter of it, at most :data:`MAX_SERVICE_TIMEOUT_MARGIN_S`),
  counted from the invocation's start. CloudFormation starts its clock when it
  sends the request, before the invocation starts (Lambda's event queue, a
  cold start), and the answer must reach it and be read back before the clock
  runs out: half the margin covers the delay before the start, which the
  function cannot see, and half the answer's delivery.

The deadline also knows when the invocation has answered (:meth:`Deadline.answered`):
from then on, or once the deadline has passed, it is closed and no call may start
(:mod:`cache_ingress.retry` holds every AWS call to that). A change already in
flight then may finish within the first half of the answer's reserve, and the
answer waits for it. Every wait goes through :func:`pause`, so no loop sleeps past it.
The backstop that answers for work overrunning every bound fires a moment after a change in
flight must have ended (:meth:`Deadline.backstop_time_left`), so whatever those bounds cut is
answered by the handler, which knows what its failure meant.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .errors import InvalidProperties, OutOfTime, ResourceFailure
from .properties import check_service_timeout

Sleep = Callable[[float], None]
Clock = Callable[[], float]

#: Polls start fast (Authorize often settles within a second) and are capped
#: below one second, so a Delete is answered within a second of the revoke
#: settling, Describe and PUT included.
FIRST_POLL_S = 0.2
MAX_POLL_S = 0.8

#: Time kept back from the work for sending the answer before the Lambda ends:
#: a quarter of the invocation's time, at most 10 s.
ANSWER_RESERVE_FRACTION = 0.25
MAX_ANSWER_RESERVE_S = 10.0
#: The last moment to still be sending, before the Lambda itself is stopped.
FINAL_MARGIN_S = 0.2
#: Kept back from ServiceTimeout: a quarter of it, at most 10 s (see the module's docstring).
SERVICE_TIMEOUT_MARGIN_FRACTION = 0.25
MAX_SERVICE_TIMEOUT_MARGIN_S = 10.0

#: Every AWS call's connect timeout. botocore sets it per client, not per call,
#: so instead an attempt starts only with more than this left (:data:`MIN_ATTEMPT_S`):
#: the connect timeout is never longer than the time left. A TCP and TLS
#: handshake with a regional endpoint takes tens of milliseconds.
CONNECT_TIMEOUT_S = 0.5
#: Every AWS call's read timeout, lowered per call to the time left (:func:`cache_ingress.aws_api.time_limit`):
#: until the deadline for a lookup, until :meth:`Deadline.change_time_left` runs out for a change.
#: EC2 and ElastiCache answer in well under a second.
READ_TIMEOUT_S = 5.0
#: The least time an attempt needs: a connect, and a tenth of a second to read.
MIN_ATTEMPT_S = CONNECT_TIMEOUT_S + 0.1
#: How long the backstop leaves the handler to answer once every call it may have made has ended (a change
#: in flight by :meth:`Deadline.change_time_left`); at most half of the answer's time left after that.
BACKSTOP_GRACE_S = 0.25


class Deadline:
    """When the invocation's work must stop, when its answer must be delivered, and whether it has answered.

    No call starts after the deadline (:meth:`remaining`), or once the
    invocation has answered. A change already in flight at the deadline may
    still finish within the first half of the answer's reserve
    (:meth:`change_time_left`), and the answer waits for it (:meth:`answered`),
    so that whatever it did has happened before CloudFormation hears of the
    request and acts on the answer (a rollback Delete, say). ``limit`` names
    what set the deadline, for the reason a late answer gives.
    """

    def __init__(
        self,
        seconds_from_now: float,
        clock: Clock = time.monotonic,
        *,
        answer_within: float | None = None,
        limit: str = "the function's Timeout",
    ) -> None:
        self._clock = clock
        now = clock()
        self._at = now + seconds_from_now
        self.answer_by = max(self._at, now + (seconds_from_now if answer_within is None else answer_within))
        self._changes_by = (self._at + self.answer_by) / 2
        self._backstop_at = self._changes_by + min(BACKSTOP_GRACE_S, (self.answer_by - self._changes_by) / 2)
        self.limit = limit
        self._state = threading.Condition()
        self._answered = False
        self._changes_in_flight = 0

    @classmethod
    def for_invocation(
        cls, lambda_remaining_s: float, service_timeout_s: float | None, clock: Clock = time.monotonic
    ) -> Deadline:
        """The earliest of the Lambda's remaining time less the answer reserve and ServiceTimeout less its margin.

        Both counted from now, the invocation's start. The answer itself must
        be delivered before the Lambda ends and before CloudFormation stops waiting.
        """
        reserve = min(MAX_ANSWER_RESERVE_S, lambda_remaining_s * ANSWER_RESERVE_FRACTION)
        work, answer, limit = (
            lambda_remaining_s - reserve,
            lambda_remaining_s - FINAL_MARGIN_S,
            "the function's Timeout",
        )
        if service_timeout_s is not None:
            margin = min(MAX_SERVICE_TIMEOUT_MARGIN_S, service_timeout_s * SERVICE_TIMEOUT_MARGIN_FRACTION)
            if service_timeout_s - margin < work:
                work, limit = service_timeout_s - margin, "the resource's ServiceTimeout"
            answer = min(answer, service_timeout_s - margin / 2)
        return cls(work, clock, answer_within=answer, limit=limit)

    def remaining(self) -> float:
        """Until the deadline: no call starts after it, and a lookup's read ends by it."""
        return self._at - self._clock()

    def change_time_left(self) -> float:
        """Until a change in flight must have finished: the deadline plus half the answer's reserve."""
        return self._changes_by - self._clock()

    def backstop_time_left(self) -> float:
        """Until the backstop answers for work that overran every bound: a moment after a change must have ended.

        Every lookup's read is cut at the deadline and every change's when :meth:`change_time_left` runs out,
        so until then the handler's own thread answers, knowing what a failure meant: a reason naming the call
        that ran out of time, or SUCCESS when what ran out was cleanup after the request's work was done (a
        rollback taking back a failed attempt's rules). The backstop is for a call no bound cuts (a botocore
        that ignores the per-call read timeout); no call starts after the deadline either way.
        """
        return self._backstop_at - self._clock()

    def answer_time_left(self) -> float:
        """How long the answer may still take to deliver."""
        return self.answer_by - self._clock()

    @property
    def closed(self) -> bool:
        """Answered, or past the deadline: no AWS call may start."""
        with self._state:
            return self._answered or self.remaining() <= 0

    def check_open(self, what: str, needs: float = 0.0) -> None:
        """Raise :class:`OutOfTime` unless ``what`` may start: not answered, and more than ``needs`` seconds left."""
        with self._state:
            self._check(what, needs)

    def start_change(self, what: str, needs: float = 0.0) -> None:
        """The guard every change passes: as :meth:`check_open`, and the change counts as in flight until
        :meth:`end_change`. Checked and counted at once, so an answer never overtakes a change that passed."""
        with self._state:
            self._check(what, needs)
            self._changes_in_flight += 1

    def end_change(self) -> None:
        with self._state:
            self._changes_in_flight -= 1
            self._state.notify_all()

    def answered(self) -> None:
        """The invocation is answering: from now on nothing starts; a change in flight is waited for.

        Only the deadline backstop can find one in flight (the handler's own
        thread makes the calls), and it fires once :meth:`change_time_left` has
        run out: the wait, bounded by that, is a guard for a deadline answered sooner.
        """
        with self._state:
            self._answered = True
            while self._changes_in_flight > 0 and self.change_time_left() > 0:
                self._state.wait(self.change_time_left())

    def within(self, seconds: float) -> Deadline:
        """A deadline for a lookup worth only ``seconds``: no later than this one, and closed once this one is.

        For a lookup whose answer the work can do without (the fallback is
        known), so that a slow or unreachable service costs that much at most.
        """
        return _Within(self, seconds)

    def late_reason(self) -> str:
        return (
            f"the function ran out of time (the deadline set by {self.limit}); "
            "retry the stack operation, or raise the function's Timeout and the resource's ServiceTimeout"
        )

    def _check(self, what: str, needs: float) -> None:
        if self._answered:
            raise OutOfTime(f"{what} was not started: the request has already been answered")
        if self.remaining() <= needs:
            raise OutOfTime(f"{what} was not started: {self.late_reason()}")


class _Within(Deadline):
    """:meth:`Deadline.within`: its own, sooner, end; the invocation's answer and deadline close it too."""

    def __init__(self, outer: Deadline, seconds: float) -> None:
        super().__init__(min(seconds, outer.remaining()), outer._clock, limit=outer.limit)
        self._outer = outer

    @property
    def closed(self) -> bool:
        return self._outer.closed or super().closed

    def _check(self, what: str, needs: float) -> None:
        self._outer.check_open(what, needs)
        super()._check(what, needs)


def service_timeout(properties: Any) -> float | None:
    """ServiceTimeout as CloudFormation sends it (1-3600 seconds), for the deadline; None if absent or invalid.

    A bad one is refused by name where the properties are checked
    (:func:`cache_ingress.properties.check_service_timeout`), not here: the
    deadline of a request with bad input is still the Lambda's.
    """
    if not isinstance(properties, dict):
        return None
    try:
        seconds = check_service_timeout(properties)
    except InvalidProperties:
        return None
    return None if seconds is None else float(seconds)


def polls() -> Iterator[float]:
    """The waits between polls: doubling from :data:`FIRST_POLL_S`, capped at :data:`MAX_POLL_S`."""
    delay = FIRST_POLL_S
    while True:
        yield delay
        delay = min(delay * 2, MAX_POLL_S)


def pause(waits: Iterator[float], deadline: Deadline, sleep: Sleep, failure: str) -> None:
    """Sleep until the next poll, or fail with ``failure`` if no call could be made after it."""
    delay = next(waits)
    if deadline.closed or deadline.remaining() < delay + MIN_ATTEMPT_S:
        raise ResourceFailure(failure)
    sleep(delay)
