"""Time: the one deadline an invocation's work stops at, and the backoff between polls.

How the deadline is set, and what it holds every call to, is told once, on :class:`Deadline`.
Every wait goes through :func:`pause`, so no loop sleeps past it.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import InvalidProperties, OutOfTime, ResourceFailure
from .properties import service_timeout_of
from .response_url import UrlTimes

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
#: Kept back from CloudFormation's wait: a quarter of it, at most 10 s (see :class:`Deadline`).
SERVICE_TIMEOUT_MARGIN_FRACTION = 0.25
MAX_SERVICE_TIMEOUT_MARGIN_S = 10.0
#: How long CloudFormation waits when the resource sets no ServiceTimeout (its default, and its maximum).
DEFAULT_SERVICE_TIMEOUT_S = 3600.0
#: How far this host's clock may be behind CloudFormation's, taken off every wait read from the ResponseURL.
#: Both keep time by NTP (the Amazon Time Sync Service), within milliseconds; 3 s is room to spare.
CLOCK_SKEW_S = 3.0

#: Every AWS call's connect timeout, shared by name resolution and the TCP connect
#: (:mod:`cache_ingress.connect`); a TLS handshake has as long again. botocore sets it per client, not per call,
#: so instead an attempt starts only with more than this left (:data:`MIN_ATTEMPT_S`):
#: the connect timeout is never longer than the time left. Resolving a regional endpoint's
#: name, and a TCP and TLS handshake with it, take tens of milliseconds.
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
#: A ResponseURL that says neither when it was signed nor when it expires.
NOTHING_KNOWN = UrlTimes()


class Deadline:
    """When the invocation's work must stop, when its answer must be delivered, and whether it has answered.

    The deadline is the earliest of two clocks (:meth:`for_invocation`):

    * the Lambda's: its remaining time, less a reserve for sending the answer
      (a quarter of the time, at most :data:`MAX_ANSWER_RESERVE_S`);
    * CloudFormation's: it waits ``ServiceTimeout`` (:data:`DEFAULT_SERVICE_TIMEOUT_S`
      unless the resource sets one) from the moment it signs the ResponseURL,
      and never past that URL's expiry (:mod:`cache_ingress.response_url`). The
      function is invoked asynchronously and Lambda may hold the event in its
      queue for much of that, so the wait is counted from the signing time.
      Every end read from the URL is brought :data:`CLOCK_SKEW_S` (3 s) nearer,
      in case this host's clock is behind CloudFormation's: the skew only ever
      makes the function stop earlier. Only for a URL that does not say when it
      was signed is ``ServiceTimeout`` counted from the invocation's start, the
      latest the wait can have started. A margin is kept back from the wait (a
      quarter of it, at most :data:`MAX_SERVICE_TIMEOUT_MARGIN_S`): half for
      what the function cannot date (a queue or a cold start, when the URL has
      no signing time; a spare when it has), half for the answer's delivery,
      which must reach CloudFormation and be read before its wait ends.

    A request whose wait is over before its work could start (:attr:`expired`:
    no more than the margin left) is one CloudFormation has given up on: it
    has rolled back a Create or Update, or reported a Delete failed (the Delete
    it sends again does the work). The handler changes nothing and answers
    FAILED for the logs (:meth:`expired_reason`); that answer may take the
    Lambda's time, as no one waits for it.

    No call starts after the deadline (:meth:`remaining`), or once the
    invocation has answered (:meth:`check_open`; :mod:`cache_ingress.retry`
    holds every AWS call to that). The promise is on the request reaching AWS,
    not on the call starting: a change is sent before the answer and the
    deadline, or never. Whatever holds a call after it started (name
    resolution, the connect) cannot let it leave later, since the last check
    is made at the last moment, as its request is about to be written to the
    socket (:meth:`send_change`, asked by the connection:
    :mod:`cache_ingress.send_gate`). A change sent may still be answered
    within the first half of the answer's reserve (:meth:`change_time_left`),
    and the answer waits for it (:meth:`answered`), so that whatever it did
    has happened before CloudFormation hears of the request and acts on the
    answer (a rollback Delete, say). The backstop that answers for work
    overrunning every bound fires a moment after that
    (:meth:`backstop_time_left`). ``limit`` names what set the deadline, for
    the reason a late answer gives; ``waits_until`` is when CloudFormation
    stops waiting, in epoch seconds, when known.
    """

    def __init__(
        self,
        seconds_from_now: float,
        clock: Clock = time.monotonic,
        *,
        answer_within: float | None = None,
        limit: str = "the function's Timeout",
        waits_until: float | None = None,
        late_by: float | None = None,
    ) -> None:
        self._clock = clock
        now = clock()
        self._at = now + seconds_from_now
        self.answer_by = max(self._at, now + (seconds_from_now if answer_within is None else answer_within))
        self._changes_by = (self._at + self.answer_by) / 2
        self._backstop_at = self._changes_by + min(BACKSTOP_GRACE_S, (self.answer_by - self._changes_by) / 2)
        self.limit = limit
        self.waits_until = waits_until
        self.late_by = late_by
        self._state = threading.Condition()
        self._answered = False
        self._changes_in_flight = 0

    @classmethod
    def for_invocation(
        cls,
        lambda_remaining_s: float,
        service_timeout_s: float | None,
        clock: Clock = time.monotonic,
        *,
        url: UrlTimes = NOTHING_KNOWN,
        wall_clock: Clock = time.time,
    ) -> Deadline:
        """The deadline of an invocation starting now, ``url`` being what its ResponseURL says (see the class)."""
        reserve = min(MAX_ANSWER_RESERVE_S, lambda_remaining_s * ANSWER_RESERVE_FRACTION)
        work, answer, limit = (
            lambda_remaining_s - reserve,
            lambda_remaining_s - FINAL_MARGIN_S,
            "the function's Timeout",
        )
        now = wall_clock()  # read once: from here on only the monotonic clock counts
        wait = _cloudformation_wait(service_timeout_s, url, now)
        if wait is None:
            return cls(work, clock, answer_within=answer, limit=limit)
        margin = min(MAX_SERVICE_TIMEOUT_MARGIN_S, wait.length * SERVICE_TIMEOUT_MARGIN_FRACTION)
        if wait.left - margin <= 0:
            return cls(
                0.0, clock, answer_within=answer, limit=wait.limit, waits_until=wait.ends_at, late_by=now - wait.ends_at
            )
        if wait.left - margin < work:
            work, limit = wait.left - margin, wait.limit
        answer = min(answer, wait.left - margin / 2)
        return cls(work, clock, answer_within=answer, limit=limit, waits_until=wait.ends_at)

    @property
    def expired(self) -> bool:
        """CloudFormation's wait was over, or too nearly over for any work, when the invocation started."""
        return self.late_by is not None

    def expired_reason(self) -> str:
        """Why an expired request was not carried out: CloudFormation ignores it; the logs keep it."""
        at = "an unknown time" if self.waits_until is None else _utc(self.waits_until)
        when = (
            f"CloudFormation stopped waiting for it at {at}"
            if (self.late_by or 0.0) >= 0
            else f"CloudFormation stops waiting for it at {at}, too soon to do anything"
        )
        return f"the request came too late and was not carried out: {when} ({self.limit}); nothing was changed"

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

    def send_change(self, what: str) -> float:
        """The last check of a change, as its request is about to be written: raise :class:`OutOfTime` once
        the invocation has answered or the deadline has passed; else the change counts as in flight until
        :meth:`end_change`, and may be answered within the time returned (:meth:`change_time_left`).
        Checked and counted at once, under the lock :meth:`answered` takes, so no change is sent after the
        answer, and the answer never overtakes a change that was sent."""
        with self._state:
            self._check(what, 0.0, "sent")
            self._changes_in_flight += 1
            return self.change_time_left()

    def end_change(self) -> None:
        with self._state:
            self._changes_in_flight -= 1
            self._state.notify_all()

    def answered(self) -> None:
        """The invocation is answering: from now on nothing starts nor is sent; a change in flight is waited for.

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

    def _check(self, what: str, needs: float, refused: str = "started") -> None:
        if self._answered:
            raise OutOfTime(f"{what} was not {refused}: the request has already been answered")
        if self.remaining() <= needs:
            raise OutOfTime(f"{what} was not {refused}: {self.late_reason()}")


class _Within(Deadline):
    """:meth:`Deadline.within`: its own, sooner, end; the invocation's answer and deadline close it too."""

    def __init__(self, outer: Deadline, seconds: float) -> None:
        super().__init__(min(seconds, outer.remaining()), outer._clock, limit=outer.limit)
        self._outer = outer

    @property
    def closed(self) -> bool:
        return self._outer.closed or super().closed

    def _check(self, what: str, needs: float, refused: str = "started") -> None:
        self._outer.check_open(what, needs)
        super()._check(what, needs, refused)


def service_timeout(event: Any) -> float | None:
    """ServiceTimeout as CloudFormation sends it (1-3600 seconds), for the deadline; None if absent or invalid.

    Read from ResourceProperties or the event's top level
    (:func:`cache_ingress.properties.service_timeout_of`). A bad one is refused by
    name where the request is checked, on Create and Update, not here: the
    deadline of a request with bad input is still the Lambda's, and a Delete
    with one proceeds as if it were not set.
    """
    if not isinstance(event, dict):
        return None
    try:
        seconds = service_timeout_of(event)
    except InvalidProperties:
        return None
    return None if seconds is None else float(seconds)


@dataclass(frozen=True)
class _Wait:
    """CloudFormation's wait for the answer: seconds left of it now (skew taken off), its length, its end."""

    left: float
    length: float
    ends_at: float
    limit: str


def _cloudformation_wait(service_timeout_s: float | None, url: UrlTimes, now: float) -> _Wait | None:
    """The nearest end of CloudFormation's wait the request shows, from wall-clock ``now``; None if none shows."""
    waits = []
    if url.signed_at is not None:
        length = DEFAULT_SERVICE_TIMEOUT_S if service_timeout_s is None else service_timeout_s
        limit = (
            f"CloudFormation's default ServiceTimeout of {DEFAULT_SERVICE_TIMEOUT_S:.0f} s"
            if service_timeout_s is None
            else f"the resource's ServiceTimeout of {service_timeout_s:.0f} s"
        ) + f" from when CloudFormation signed the request at {_utc(url.signed_at)}"
        # Never more than the whole wait from now: a signing time ahead of this clock is the clocks' skew.
        left = min(url.signed_at + length - now - CLOCK_SKEW_S, length)
        waits.append(_Wait(left, length, url.signed_at + length, limit))
    elif service_timeout_s is not None:
        waits.append(
            _Wait(service_timeout_s, service_timeout_s, now + service_timeout_s, "the resource's ServiceTimeout")
        )
    if url.expires_at is not None:
        length = DEFAULT_SERVICE_TIMEOUT_S if url.signed_at is None else url.expires_at - url.signed_at
        waits.append(_Wait(url.expires_at - now - CLOCK_SKEW_S, length, url.expires_at, "the ResponseURL's expiry"))
    return min(waits, key=lambda wait: wait.left, default=None)


def _utc(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
