"""EC2-Classic mode's operations: authorize and revoke on a cache security group, bounded by the deadline.

Authorize and Revoke are asynchronous: an entry reads ``authorizing`` or
``revoking`` for a while. Each operation here drives the entry to its goal
(``authorized``, or gone) and polls with a short, capped backoff, so that the
answer goes out soon after the change settles and never after the deadline.
Every call goes through :mod:`cache_ingress.retry` (the changes through
:func:`~cache_ingress.retry.change`), so transient failures are retried until
the deadline and nothing starts after the answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import classic_rules, retry
from .aws_api import ApiError, ElastiCacheApi, Entry, LedgerApi
from .classic_rules import Ingress
from .errors import Refused, ResourceFailure
from .ledger import Holder, Ledger, grant_rule, reassert_rule, release_rule
from .outcomes import Outcome
from .protocol import Change, Instance, Result
from .timing import MAX_POLL_S, Deadline, Sleep, pause, polls

AUTHORIZED = "authorized"
AUTHORIZING = "authorizing"
REVOKING = "revoking"


class ClassicMode:
    """:class:`~cache_ingress.protocol.Mode` for cache security groups: the request is the grant itself.

    Who holds an ingress is recorded in the ownership ledger like a VPC rule,
    so two resources that declare the same ingress keep it until the last goes.
    """

    def __init__(self, elasticache: ElastiCacheApi, ledger: LedgerApi, sleep: Sleep = time.sleep) -> None:
        self.elasticache = elasticache
        self.ledger = ledger
        self.sleep = sleep

    def parse_properties(self, properties: Mapping[str, Any], *, stack_id: str, logical_id: str) -> Ingress:
        return classic_rules.parse_properties(properties, stack_id)

    def parse_physical_id(self, physical_id: str) -> Ingress | None:
        return classic_rules.parse_physical_id(physical_id)

    def resolve(self, request: Ingress, *, deadline: Deadline) -> Ingress:
        return request

    def grant(
        self,
        granted: Ingress,
        *,
        request: Ingress,
        instance: Instance,
        deadline: Deadline,
        undo_on_failure: bool,
        on_held: Callable[[], None],
    ) -> Result:
        """Hold the ingress and authorize it; one ingress per call, so a failure leaves nothing half-done to undo.

        Its own id's ingress, on an entry the ledger does not have yet, was
        made by the release before the ledger (0.1.0) for this very resource.
        """
        ledger, holder, side = self._ledger_and_side(granted, instance, deadline)
        earlier = ("",) if granted.physical_id == instance.physical_id else ()
        ensured = grant_rule(
            ledger, side, granted, holder, description="", cache=_cache(granted), earlier=earlier, on_held=on_held
        )
        return Result(Change.AUTHORIZED if ensured.made else Change.ALREADY_PRESENT, side.data or granted.attributes())

    def reassert(self, granted: Ingress, *, request: Ingress, instance: Instance, deadline: Deadline) -> Result:
        ledger, holder, side = self._ledger_and_side(granted, instance, deadline)
        ensured = reassert_rule(ledger, side, granted, holder, description="")
        made = ensured is not None and ensured.made
        return Result(Change.AUTHORIZED if made else Change.ALREADY_PRESENT, side.data or granted.attributes())

    def release(self, granted: Ingress, *, instance: Instance, deadline: Deadline) -> Result:
        ledger, holder, side = self._ledger_and_side(granted, instance, deadline)
        earlier = ("",) if granted.physical_id == instance.physical_id else ()
        revoked = release_rule(ledger, side, granted, holder, earlier=earlier)
        return Result(Change.REVOKED if revoked else Change.ALREADY_ABSENT)

    def left_by_failed_update(
        self, attempted: Ingress, *, request: Ingress | None, physical_id: str, deadline: Deadline
    ) -> Ingress | None:
        return classic_rules.left_by_failed_update(attempted, physical_id)

    def could_name(self, request: Ingress, granted: Ingress) -> bool:
        return request == granted

    def same_asked(self, one: Ingress, other: Ingress) -> bool:
        return one == other

    def _ledger_and_side(
        self, granted: Ingress, instance: Instance, deadline: Deadline
    ) -> tuple[Ledger, Holder, CacheGroupSide]:
        ledger = Ledger(self.ledger, deadline, self.sleep)
        holder = Holder(instance.stack_id, instance.logical_id, granted.physical_id)
        return ledger, holder, CacheGroupSide(self.elasticache, deadline, self.sleep)


def _cache(ingress: Ingress) -> str:
    return f"CacheSecurityGroupName {ingress.cache_group}"


@dataclass
class CacheGroupSide:
    """:class:`~cache_ingress.ledger.Side` for cache security group ingresses: the physical id names one exactly.

    ``data`` keeps what the last Authorize left (its status and the group's
    ARN), for the attributes.
    """

    api: ElastiCacheApi
    deadline: Deadline
    sleep: Sleep
    data: dict[str, str] = field(default_factory=dict)

    def key(self, rule: Ingress) -> str:
        """``classic|<cache security group>|<EC2 security group name>|<owner account>``, the cache security group
        in lower case: ElastiCache stores its name so, and any spelling names the one group and ingress."""
        return f"classic|{rule.cache_group.lower()}|{rule.ec2_group}|{rule.owner_id}"

    def authorize(self, rule: Ingress, description: str) -> str | None:
        result = ensure_authorized(self.api, rule, self.deadline, self.sleep)
        self.data = result.data
        return rule.physical_id if result.change is Change.AUTHORIZED else None

    def find(self, rule: Ingress, descriptions: Collection[str] | None, *, settle: bool) -> tuple[str, str] | None:
        """Its names are its id, and it has no description: revoking one that is gone is harmless."""
        return rule.physical_id, ""

    def revoke(self, rule: Ingress, rule_id: str) -> bool:
        return ensure_revoked(self.api, rule, self.deadline, self.sleep).change is Change.REVOKED

    def set_description(self, rule: Ingress, rule_id: str, description: str) -> None:
        """A cache security group ingress has no description."""


def ensure_authorized(api: ElastiCacheApi, ingress: Ingress, deadline: Deadline, sleep: Sleep = time.sleep) -> Result:
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
            entry, created = _authorize(api, ingress, deadline, sleep)
            changed = changed or created
        else:
            entry = _describe(api, ingress, deadline, sleep, gone_ok=False)
        if entry is not None and entry.status == AUTHORIZED:
            break
        # Still authorizing: look again. Gone, revoking or busy: authorize again.
        must_call = entry is None or entry.status != AUTHORIZING
        pause(waits, deadline, sleep, _not_settled(ingress, entry))
    data = {**ingress.attributes(), "Status": entry.status}
    if entry.group_arn:
        data["CacheSecurityGroupArn"] = entry.group_arn
    return Result(Change.AUTHORIZED if changed else Change.ALREADY_PRESENT, data)


def _authorize(api: ElastiCacheApi, ingress: Ingress, deadline: Deadline, sleep: Sleep) -> tuple[Entry | None, bool]:
    """One Authorize: the entry it left (None while the group is busy) and whether this call created it."""
    try:
        return retry.change(lambda: api.authorize(**_names(ingress)), deadline, sleep), True
    except ApiError as err:
        outcome = classic_rules.authorize_outcome(err.code, err.message)
        if outcome is Outcome.DONE:
            return _describe(api, ingress, deadline, sleep, gone_ok=False), False
        if outcome is Outcome.BUSY:
            return None, False
        raise _failure(err, outcome, refused=True) from err


def ensure_revoked(api: ElastiCacheApi, ingress: Ingress, deadline: Deadline, sleep: Sleep = time.sleep) -> Result:
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
                entry = retry.change(lambda: api.revoke(**_names(ingress)), deadline, sleep)
                changed = True
            except ApiError as err:
                outcome = classic_rules.revoke_outcome(err.code, err.message)
                if outcome is Outcome.DONE:
                    break
                if outcome is not Outcome.BUSY:
                    raise _failure(err, outcome, refused=True) from err
                entry = Entry(status="busy")
        else:
            entry = _describe(api, ingress, deadline, sleep, gone_ok=True)
        if entry is None:
            break
        # Revoking: look again. Busy, or authorized again meanwhile: revoke again.
        must_call = entry.status != REVOKING
        if changed and deadline.remaining() < MAX_POLL_S:
            break
        pause(waits, deadline, sleep, _not_revoked(ingress))
    return Result(Change.REVOKED if changed else Change.ALREADY_ABSENT)


def _names(ingress: Ingress) -> dict[str, str]:
    return {"cache_group": ingress.cache_group, "ec2_group": ingress.ec2_group, "owner_id": ingress.owner_id}


def _describe(
    api: ElastiCacheApi, ingress: Ingress, deadline: Deadline, sleep: Sleep, *, gone_ok: bool
) -> Entry | None:
    """The entry now; with ``gone_ok``, a group that no longer exists counts as no entry."""
    try:
        return retry.read(lambda: api.entry(**_names(ingress)), deadline, sleep)
    except ApiError as err:
        if gone_ok and classic_rules.revoke_outcome(err.code, err.message) is Outcome.DONE:
            return None
        raise _failure(err, Outcome.FAILED) from err


def _not_settled(ingress: Ingress, entry: Entry | None) -> str:
    state = entry.status if entry else "not authorized"
    return (
        f"{_ingress_text(ingress)} still reads {state!r}: ElastiCache did not settle before the "
        "function's deadline. Retry the stack operation, or raise the function's Timeout"
    )


def _not_revoked(ingress: Ingress) -> str:
    return (
        f"{_ingress_text(ingress)} could not be revoked before the function's deadline: the cache "
        "security group stayed busy. Retry the stack operation"
    )


def _ingress_text(ingress: Ingress) -> str:
    return (
        f"EC2 security group {ingress.ec2_group!r} of account {ingress.owner_id} "
        f"in cache security group {ingress.cache_group!r}"
    )


def _failure(err: ApiError, outcome: Outcome, refused: bool = False) -> ResourceFailure:
    """The failure an error answer means; ``refused`` for an answer to a change, which then changed nothing."""
    kind = Refused if refused else ResourceFailure
    if outcome is Outcome.NOT_PERMITTED:
        return kind(classic_rules.not_permitted_reason(err.message))
    return kind(str(err))
