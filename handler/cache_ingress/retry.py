"""The one retry policy for every AWS call, in both modes, and the guard every changing call passes.

Use :func:`read` for a call that only looks (Describe...) and :func:`change`
for one that changes something (authorize, revoke, tag, description)::

    entry = retry.read(lambda: api.entry(...), deadline)
    retry.change(lambda: ec2.authorize(group_id, permissions), deadline)

Both make the call and, while the deadline allows, make it again after a
transient failure: throttling, a 5xx answer, or no answer at all (a refused,
dropped or timed-out connection). Between attempts they wait with full-jitter
exponential backoff (a random wait up to :data:`FIRST_BACKOFF_S`, doubling,
capped at :data:`MAX_BACKOFF_S`). There is no retry quota shared across calls
or invocations: a warm sandbox under sustained errors retries its hundredth
request as it retried its first; the deadline alone ends the retrying.

Every attempt first passes the deadline's guard
(:meth:`~cache_ingress.timing.Deadline.check_open`), an attempt at a change
its gate too (:func:`cache_ingress.send_gate.gated`), and each attempt's read
timeout is the time left (:func:`cache_ingress.aws_api.time_limit`): what
these bounds promise, and why, is told once, on
:class:`~cache_ingress.timing.Deadline`. :func:`change` is the one name every
changing call goes through, so a reader can check that none bypasses it.

Any other error answer (a refusal, not found, a duplicate) is raised at once as
:class:`~cache_ingress.aws_api.ApiError`, for the caller's rules to read; the
guard, the gate (nothing was sent), and retries cut short by the deadline,
raise :class:`~cache_ingress.errors.OutOfTime`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from .aws_api import ApiError, time_limit
from .errors import OutOfTime
from .outcomes import THROTTLING_CODES
from .send_gate import gated
from .timing import MIN_ATTEMPT_S, Deadline, Sleep

T = TypeVar("T")

#: The first retry waits up to this long; each one after up to twice as long as the one before.
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 5.0
#: A last attempt starts this much before it would no longer be allowed to.
LAST_ATTEMPT_MARGIN_S = 0.05
#: No shorter wait is worth another attempt.
MIN_WAIT_S = 0.01
#: 5xx codes of the query protocols, for an answer whose HTTP status is not known (a Stubber's, say).
SERVER_ERROR_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "InternalServerError"}
)
#: DynamoDB: a single write that met a transaction in progress on its item, and a cancelled transaction,
#: whose reasons say per write why (a condition that failed, or a conflict with another transaction).
TRANSACTION_CONFLICT_CODE = "TransactionConflictException"
TRANSACTION_CANCELLED_CODE = "TransactionCanceledException"
TRANSACTION_CONFLICT_REASON = "TransactionConflict"
CONDITION_FAILED_REASON = "ConditionalCheckFailed"


def read(call: Callable[[], T], deadline: Deadline, sleep: Sleep = time.sleep) -> T:
    """A call that only looks, under the retry policy; each attempt's read ends by the deadline."""
    return _with_retries(call, deadline, sleep, _lookup)


def change(call: Callable[[], T], deadline: Deadline, sleep: Sleep = time.sleep) -> T:
    """A call that changes something, under the retry policy and the guard.

    No attempt starts, nor is sent, once the invocation has answered or the
    deadline has passed; one sent before is waited for by the answer (the
    story: :class:`~cache_ingress.timing.Deadline`).
    """
    return _with_retries(call, deadline, sleep, _change)


def transient(err: ApiError) -> bool:
    """Whether the same call may succeed if made again: throttling, a server error, no answer, or a write
    DynamoDB refused only because another transaction on the same item was in progress.

    A transaction cancelled because a condition failed is not: that is a
    conflict the caller resolves by reading again (:mod:`cache_ingress.ledger`).
    """
    return (
        err.connection
        or err.code in THROTTLING_CODES
        or err.status >= 500
        or err.code in SERVER_ERROR_CODES
        or err.code == TRANSACTION_CONFLICT_CODE
        or (err.code == TRANSACTION_CANCELLED_CODE and _only_conflicts(err.reasons))
    )


def _only_conflicts(reasons: tuple[str, ...]) -> bool:
    return TRANSACTION_CONFLICT_REASON in reasons and CONDITION_FAILED_REASON not in reasons


def backoff(retry: int, jitter: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``retry`` (0 for the first): full jitter, exponential, capped."""
    return jitter() * min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0 ** min(retry, 30))


def _lookup(call: Callable[[], T], deadline: Deadline) -> T:
    deadline.check_open("a lookup", needs=MIN_ATTEMPT_S)
    with time_limit(deadline.remaining()):
        return call()


def _change(call: Callable[[], T], deadline: Deadline) -> T:
    deadline.check_open("a change", needs=MIN_ATTEMPT_S)
    sent = 0

    def send() -> float:
        nonlocal sent
        time_left = deadline.send_change("a change")
        sent += 1
        return time_left

    try:
        with time_limit(deadline.change_time_left()), gated(send):
            return call()
    finally:
        for _ in range(sent):
            deadline.end_change()


def _with_retries(
    call: Callable[[], T], deadline: Deadline, sleep: Sleep, attempt: Callable[[Callable[[], T], Deadline], T]
) -> T:
    retries = 0
    last: ApiError | None = None
    while True:
        try:
            return attempt(call, deadline)
        except OutOfTime as refused:
            if last is None:
                raise
            # A retry the guard refused: the reason is the failure it would have retried.
            raise OutOfTime(f"{last}; {deadline.late_reason()}") from refused
        except ApiError as err:
            if not transient(err):
                raise
            last = err
            # The last wait is cut short, so the last attempt still starts before the deadline.
            spare = deadline.remaining() - MIN_ATTEMPT_S - LAST_ATTEMPT_MARGIN_S
            if deadline.closed or spare < MIN_WAIT_S:
                raise OutOfTime(f"{err}; {deadline.late_reason()}") from err
            sleep(min(backoff(retries), spare))
            retries += 1
