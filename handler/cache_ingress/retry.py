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

Every attempt first passes the deadline's guard (:meth:`~cache_ingress.timing.Deadline.check_open`):
none starts once the invocation has answered (the backstop may answer while
the work goes on) or without time for a connect and a read before the
deadline; and each attempt's read timeout is the time left
(:func:`cache_ingress.aws_api.time_limit`). So after the answer nothing
changes, and no call outlives the deadline. The guard is one for both kinds
of call; :func:`change` is the name every changing call goes through, so a
reader can check that none bypasses it.

Any other error answer (a refusal, not found, a duplicate) is raised at once as
:class:`~cache_ingress.aws_api.ApiError`, for the caller's rules to read; the
guard, and retries cut short by the deadline, raise
:class:`~cache_ingress.errors.OutOfTime`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from .aws_api import ApiError, time_limit
from .errors import OutOfTime
from .outcomes import THROTTLING_CODES
from .timing import CONNECT_TIMEOUT_S, MIN_ATTEMPT_S, Deadline, Sleep

T = TypeVar("T")

#: The first retry waits up to this long; each one after up to twice as long as the one before.
FIRST_BACKOFF_S = 0.05
MAX_BACKOFF_S = 5.0
#: 5xx codes of the query protocols, for an answer whose HTTP status is not known (a Stubber's, say).
SERVER_ERROR_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "InternalServerError"}
)


def read(call: Callable[[], T], deadline: Deadline, sleep: Sleep = time.sleep) -> T:
    """A call that only looks, under the retry policy."""
    return _with_retries(call, deadline, sleep, "a lookup")


def change(call: Callable[[], T], deadline: Deadline, sleep: Sleep = time.sleep) -> T:
    """A call that changes something, under the retry policy; no attempt starts once the invocation answered."""
    return _with_retries(call, deadline, sleep, "a change")


def transient(err: ApiError) -> bool:
    """Whether the same call may succeed if made again: throttling, a server error, or no answer."""
    return err.connection or err.code in THROTTLING_CODES or err.status >= 500 or err.code in SERVER_ERROR_CODES


def backoff(retry: int, jitter: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``retry`` (0 for the first): full jitter, exponential, capped."""
    return jitter() * min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0**retry)


def _with_retries(call: Callable[[], T], deadline: Deadline, sleep: Sleep, what: str) -> T:
    retries = 0
    while True:
        deadline.check_open(what, needs=MIN_ATTEMPT_S)
        try:
            # The read may take what is left once a connect has had its time.
            with time_limit(deadline.remaining() - CONNECT_TIMEOUT_S):
                return call()
        except ApiError as err:
            if not transient(err):
                raise
            wait = backoff(retries)
            if deadline.closed or deadline.remaining() < wait + MIN_ATTEMPT_S:
                raise OutOfTime(f"{err}; {deadline.late_reason()}") from err
            sleep(wait)
            retries += 1
