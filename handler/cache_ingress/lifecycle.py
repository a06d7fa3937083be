"""What each request type does to ElastiCache, bounded by the Lambda's deadline.

Authorize and Revoke are asynchronous: an entry reads ``authorizing`` or
``revoking`` for a while. Each operation here drives the entry to its goal
(``authorized``, or gone) and polls with a short, capped backoff, so that the
answer goes out soon after the change settles and never after the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from . import rules
from .aws_api import ApiError, ElastiCacheApi, Entry
from .rules import Ingress, Outcome

AUTHORIZED = "authorized"
AUTHORIZING = "authorizing"
REVOKING = "revoking"

#: Polls start fast (Authorize often settles within a second) and are capped
#: below one second, so a Delete is answered within a second of the revoke
#: settling, Describe and PUT included.
FIRST_POLL_S = 0.2
MAX_POLL_S = 0.8


class ResourceFailure(rules.ResourceError):
    """ElastiCache refused, or did not settle in time."""


class Change(Enum):
    """What a request changed, for metrics and logs."""

    AUTHORIZED = "Authorizations"
    ALREADY_PRESENT = "AlreadyPresent"
    REVOKED = "Revocations"
    ALREADY_ABSENT = "AlreadyAbsent"


@dataclass(frozen=True)
class Result:
    change: Change
    data: dict[str, str] = field(default_factory=dict)


class Deadline:
    """A point in monotonic time by which the work must stop to leave room for the answer."""

    def __init__(self, seconds_from_now: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock() + seconds_from_now

    def remaining(self) -> float:
        return self._at - self._clock()


def polls() -> Iterator[float]:
    delay = FIRST_POLL_S
    while True:
        yield delay
        delay = min(delay * 2, MAX_POLL_S)


def ensure_authorized(
    api: ElastiCacheApi, ingress: Ingress, deadline: Deadline, sleep: Callable[[float], None] = time.sleep
) -> Result:
    """Authorize the ingress and wait until it reads ``authorized``.

    ``AuthorizationAlreadyExists`` counts as success (this is also how an
    Update repairs a revoke made by hand). An entry seen ``revoking``, or a
    group busy with another change, is authorized again once it is free.
    """
    waits = polls()
    changed = False
    must_call = True
    while True:
        if must_call:
            entry, created = _authorize(api, ingress)
            changed = changed or created
        else:
            entry = _describe(api, ingress, gone_ok=False)
        if entry is not None and entry.status == AUTHORIZED:
            break
        # Still authorizing: look again. Gone, revoking or busy: authorize again.
        must_call = entry is None or entry.status != AUTHORIZING
        pause(waits, deadline, sleep, _not_settled(ingress, entry))
    data = {**ingress.attributes(), "Status": entry.status}
    if entry.group_arn:
        data["CacheSecurityGroupArn"] = entry.group_arn
    return Result(Change.AUTHORIZED if changed else Change.ALREADY_PRESENT, data)


def _authorize(api: ElastiCacheApi, ingress: Ingress) -> tuple[Entry | None, bool]:
    """One Authorize: the entry it left (None while the group is busy) and whether this call created it."""
    try:
        return api.authorize(ingress), True
    except ApiError as err:
        outcome = rules.authorize_outcome(err.code, err.message)
        if outcome is Outcome.DONE:
            return _describe(api, ingress, gone_ok=False), False
        if outcome is Outcome.BUSY:
            return None, False
        raise _failure(err, outcome) from err


def ensure_revoked(
    api: ElastiCacheApi, ingress: Ingress, deadline: Deadline, sleep: Callable[[float], None] = time.sleep
) -> Result:
    """Revoke the ingress and wait until it is gone from the group.

    Not found (the ingress, or the whole group) is success, so a repeated
    Delete is harmless. If the revoke was accepted but still reads
    ``revoking`` at the deadline, the Delete succeeds anyway: ElastiCache
    finishes an accepted revoke on its own, and failing would only strand the
    stack.
    """
    waits = polls()
    changed = False
    must_call = True
    while True:
        if must_call:
            try:
                entry = api.revoke(ingress)
                changed = True
            except ApiError as err:
                outcome = rules.revoke_outcome(err.code, err.message)
                if outcome is Outcome.DONE:
                    break
                if outcome is not Outcome.BUSY:
                    raise _failure(err, outcome) from err
                entry = Entry(status="busy")
        else:
            entry = _describe(api, ingress, gone_ok=True)
        if entry is None:
            break
        # Revoking: look again. Busy, or authorized again meanwhile: revoke again.
        must_call = entry.status != REVOKING
        if changed and deadline.remaining() < MAX_POLL_S:
            break
        pause(waits, deadline, sleep, _not_revoked(ingress))
    return Result(Change.REVOKED if changed else Change.ALREADY_ABSENT)


def pause(waits: Iterator[float], deadline: Deadline, sleep: Callable[[float], None], failure: str) -> None:
    """Sleep until the next poll, or fail with ``failure`` if the deadline comes first."""
    delay = next(waits)
    if deadline.remaining() < delay:
        raise ResourceFailure(failure)
    sleep(delay)


def _describe(api: ElastiCacheApi, ingress: Ingress, *, gone_ok: bool) -> Entry | None:
    """The entry now; with ``gone_ok``, a group that no longer exists counts as no entry."""
    try:
        return api.entry(ingress)
    except ApiError as err:
        if gone_ok and rules.revoke_outcome(err.code, err.message) is Outcome.DONE:
            return None
        raise _failure(err, Outcome.FAILED) from err


def _not_settled(ingress: Ingress, entry: Entry | None) -> str:
    state = entry.status if entry else "not authorized"
    return (
        f"{_describe_ingress(ingress)} still reads {state!r}: ElastiCache did not settle before the "
        "function's deadline. Retry the stack operation, or raise the function's Timeout"
    )


def _not_revoked(ingress: Ingress) -> str:
    return (
        f"{_describe_ingress(ingress)} could not be revoked before the function's deadline: the cache "
        "security group stayed busy. Retry the stack operation"
    )


def _describe_ingress(ingress: Ingress) -> str:
    return (
        f"EC2 security group {ingress.ec2_group!r} of account {ingress.owner_id} "
        f"in cache security group {ingress.cache_group!r}"
    )


def _failure(err: ApiError, outcome: Outcome) -> ResourceFailure:
    if outcome is Outcome.NOT_PERMITTED:
        return ResourceFailure(rules.not_permitted_reason(err.message))
    return ResourceFailure(str(err))
