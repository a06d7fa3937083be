"""Who holds each rule: the ownership ledger, a DynamoDB table both modes record their holds in.

AWS keeps no owner for an EC2 ingress rule or a cache security group
ingress, and EC2's reads are eventually consistent, so who holds what cannot
be decided by reading EC2 (a rule made a moment ago, or a tag written a
moment ago, may not show). The decisions are made here instead, on a table
whose reads are strongly consistent and whose writes are conditional and
transactional; EC2 and ElastiCache only carry them out.

Items (``pk``, ``sk``):

* the rule entry, ``rule#<rule key>`` / ``rule``: ``holders`` (how many),
  ``version`` (every write checks and bumps it), ``origin`` (``authorizing``:
  a holder's first Authorize went out and its answer is not recorded yet;
  ``made``: a holder made it; ``pre-existing``: it was there before any
  holder, so it is never revoked), ``rule_id`` when known, ``description``
  (what the authorizer sent), ``lease_until``/``lease_holder`` while a revoke
  is in progress, ``cache``;
* one holder entry per resource instance holding it, ``rule#<rule key>`` /
  ``holder#<holder key>``: ``stack_id``, ``logical_id``, ``physical_id``,
  ``since``, ``cache``, and in VPC mode ``targets`` (whether its target groups
  are the cache's or its own: the operator's check, :mod:`cache_ingress.audit`).

The rule key is what AWS knows the rule by (each mode spells its own:
:meth:`Side.key`). The holder is the resource instance named by its stack, its
logical id and the physical id of the grant (on a Create, the id it is about
to report): an old and a new id of one resource during a replacement are two
holders.

A holder takes hold (:meth:`Ledger.hold`) before any AWS change, then makes
sure the rule is there (always: a rule revoked by hand that a holder declares
is made again); a holder letting go (:func:`release_rule`) revokes only as
the last holder of a rule one of them made, under a lease that keeps new
holders waiting until its revoke has landed or could no longer land. Every
conflicting write reads again and retries, bounded by the deadline.

Deviations from the design note: the tag ``cache-ingress:managed-by`` names
the resource type as users declare it (``Custom::CacheIngress``);
every write to a rule entry bumps ``version``, so a release decided on an
older origin is refused and looks again; a revoke done but whose entry could
not be deleted still counts as done (a later hold waits out the lease, then
takes the entry over); a hold whose Authorize AWS refused outright is
withdrawn at once (:meth:`Ledger.withdraw`: it made nothing), so its rollback
Delete has nothing to look for; a rule the release before the ledger made is
leased in a new entry before its revoke (:meth:`Ledger.lease_unrecorded`), so
a Create meanwhile waits for it as for any other; a reassert also sets the
description of a rule its id holds alone and made, as an Update does; a
rule recorded pre-existing that carries the default description of the
resource releasing it (0.1.0 made it for that resource) is recorded made
(:meth:`Ledger.adopt`), so its last holder revokes it; a rule an Authorize
made is recorded only while someone holds it (``holders > 0``), so an
Authorize landing after its own holder's Delete let go (a redelivered
Create, a rollback's reassert) is revoked again under a lease of its own. The
role may use the table alone, not its indexes: nothing here queries them.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Protocol, TypeVar

from . import retry
from .aws_api import ApiError, LedgerApi, Value, Write
from .errors import LedgerUnreachable, OutOfTime, Refused, ResourceError, ResourceFailure
from .properties import stack_name
from .timing import Deadline, Sleep, pause, polls

#: A lease outlives the Delete that took it by this much past the last moment a change of that Delete may
#: land (Deadline.change_time_left): room for the clocks of two sandboxes to differ.
LEASE_GRACE_S = 20.0

AUTHORIZING = "authorizing"
MADE = "made"
PRE_EXISTING = "pre-existing"

RULE_PREFIX = "rule#"
RULE_SK = "rule"
HOLDER_PREFIX = "holder#"
#: How a VPC holder chose its target groups (its holder entry's ``targets``): the cache's groups, looked up on
#: each Create and Update, or its own TargetSecurityGroupIds.
TARGETS_OF_CACHE = "cache"
TARGETS_DECLARED = "declared"
_DIGEST_CHARS = 32

#: A condition a ledger write set did not hold: a single write's, or one inside a cancelled transaction.
CONDITION_FAILED_CODE = "ConditionalCheckFailedException"

Clock = Callable[[], float]
T = TypeVar("T")
R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)


@dataclass(frozen=True)
class Holder:
    """One resource instance's hold: its stack, its logical id and the physical id of what it grants."""

    stack_id: str
    logical_id: str
    physical_id: str

    @property
    def key(self) -> str:
        """Unique to the instance, and short: 32 hex digits of a SHA-256 of the three."""
        identity = "\n".join((self.stack_id, self.logical_id, self.physical_id)).encode()
        return hashlib.sha256(identity).hexdigest()[:_DIGEST_CHARS]

    @property
    def name(self) -> str:
        """What a person reads: the stack and the resource."""
        return f"stack {stack_name(self.stack_id) or self.stack_id}, resource {self.logical_id}"


@dataclass(frozen=True)
class Entry:
    """A rule entry as the ledger holds it."""

    holders: int
    version: int
    origin: str
    rule_id: str = ""
    description: str = ""
    lease_until: float = 0.0
    lease_holder: str = ""

    @classmethod
    def of(cls, item: dict[str, Value]) -> Entry:
        return cls(
            holders=int(item.get("holders", 0)),
            version=int(item.get("version", 0)),
            origin=str(item.get("origin", AUTHORIZING)),
            rule_id=str(item.get("rule_id", "")),
            description=str(item.get("description", "")),
            lease_until=float(item.get("lease_until", 0)),
            lease_holder=str(item.get("lease_holder", "")),
        )

    def leased(self, now: float) -> bool:
        """Whether a revoke is in progress: a lease that has not expired."""
        return bool(self.lease_holder) and self.lease_until > now


@dataclass(frozen=True)
class Hold:
    """How a rule stood when a holder took hold of it: ``entry`` None when this hold made the entry."""

    entry: Entry | None
    already: bool  # the holder held it already (a redelivered Create, an Update that keeps its id)


@dataclass(frozen=True)
class Ensured:
    """A rule held and there: its id (empty when AWS shows none yet) and whether this request made it."""

    rule_id: str
    made: bool


class Joining(Enum):
    """What a hold does, given how the rule stands."""

    ALREADY = "already held"  # the holder holds it: nothing to write
    FRESH = "fresh"  # no entry: make it, with this holder
    WAIT = "wait"  # another resource's revoke is in progress: wait for it to finish or its lease to expire
    JOIN = "join"  # add this holder to the entry (taking over an expired lease)


class Letting(Enum):
    """What a release does, given how the rule stands."""

    UNRECORDED = "unrecorded"  # no entry: only a rule the release before the ledger made may be this one's
    LET_GO = "let go"  # others hold it, or it was there before any holder: take this holder off
    REVOKE = "revoke"  # the last holder of a rule a holder made, or a release that died half-way: lease and revoke
    NOTHING = "nothing"  # not a holder: nothing to take back


def joining(entry: Entry | None, held: bool, now: float) -> Joining:
    """How a hold goes on: pure, from the two consistent reads."""
    if held:
        return Joining.ALREADY
    if entry is None:
        return Joining.FRESH
    return Joining.WAIT if entry.leased(now) else Joining.JOIN


def letting(entry: Entry | None, held: bool, holder: Holder, now: float) -> Letting:
    """How a release goes on: pure, from the two consistent reads."""
    if entry is None:
        return Letting.UNRECORDED
    if held and (entry.holders > 1 or entry.origin == PRE_EXISTING):
        return Letting.LET_GO
    unfinished = (
        entry.holders == 0
        and entry.origin != PRE_EXISTING
        and (not entry.leased(now) or entry.lease_holder == holder.key)
    )
    return Letting.REVOKE if held or unfinished else Letting.NOTHING


class Side(Protocol[R_contra]):
    """The AWS side of one mode for one request: what a rule is called, and how it is made, found and revoked."""

    def key(self, rule: R_contra) -> str:
        """The rule key: what AWS knows the rule by."""
        ...

    def authorize(self, rule: R_contra, description: str) -> str | None:
        """Make the rule: its id once made, None when it exists already. Raises Refused when AWS refuses."""
        ...

    def find(self, rule: R_contra, descriptions: Collection[str] | None, *, settle: bool) -> tuple[str, str] | None:
        """The rule as AWS shows it, its id and description, if it carries one of ``descriptions`` (any, when
        None); None if there is none. With ``settle``, a rule AWS does not show yet is looked for again for a
        short while."""
        ...

    def revoke(self, rule: R_contra, rule_id: str) -> bool:
        """Revoke it: whether it was there. Raises Refused when AWS refuses."""
        ...

    def set_description(self, rule: R_contra, rule_id: str, description: str) -> None:
        """Give the rule this description."""
        ...


class Ledger:
    """The ledger's writes, each a conditional one; a condition that fails answers False, for the caller to look again.

    Every call goes through :mod:`cache_ingress.retry` under the request's
    deadline; one the table refuses, or that finds no answer in time, raises
    :class:`~cache_ingress.errors.LedgerUnreachable` naming the table.
    """

    def __init__(
        self, api: LedgerApi, deadline: Deadline, sleep: Sleep = time.sleep, clock: Clock | None = None
    ) -> None:
        if not api.table:
            raise LedgerUnreachable(
                "the function's LEDGER_TABLE is not set, so it cannot record who holds what: deploy it with "
                "template.yaml, which creates the OwnershipLedger table and sets LEDGER_TABLE to its name"
            )
        self.api = api
        self.deadline = deadline
        self.sleep = sleep
        self.clock = clock or time.time  # wall-clock seconds: a lease is read by other sandboxes

    def state(self, key: str, holder: Holder) -> tuple[Entry | None, bool]:
        """The rule entry, and whether ``holder`` holds the rule: two consistent reads."""
        pk = RULE_PREFIX + key
        item = self._call(lambda: self.api.get(pk, RULE_SK), change=False)
        held = self._call(lambda: self.api.get(pk, HOLDER_PREFIX + holder.key), change=False)
        return (None if item is None else Entry.of(item)), held is not None

    def hold(self, key: str, holder: Holder, description: str, cache: str, targets: str = "") -> Hold:
        """Record ``holder`` as a holder of the rule; wait out a revoke in progress. How the rule stood.

        A fresh rule (the usual Create) costs one transaction; otherwise the
        entry is read and joined, conditioned on its version. ``targets``, for
        the operator's check, says whether the holder's target groups are the
        cache's (:data:`TARGETS_OF_CACHE`) or its own (:data:`TARGETS_DECLARED`).
        """
        pk = RULE_PREFIX + key
        since = datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        item: dict[str, Value] = {
            "stack_id": holder.stack_id,
            "logical_id": holder.logical_id,
            "physical_id": holder.physical_id,
            "since": since,
            "cache": cache,
        }
        if targets:
            item["targets"] = targets
        joining_write = Write(pk, HOLDER_PREFIX + holder.key, item=item, condition="attribute_not_exists(#pk)")
        fresh = Write(
            pk,
            RULE_SK,
            item={"holders": 1, "version": 1, "origin": AUTHORIZING, "description": description, "cache": cache},
            condition="attribute_not_exists(#pk)",
        )
        waits = polls()
        if self._transact([joining_write, fresh]):
            return Hold(None, already=False)
        while True:
            entry, held = self.state(key, holder)
            step = joining(entry, held, self.clock())
            if step is Joining.ALREADY:
                return Hold(entry, already=True)
            if step is Joining.FRESH:
                if self._transact([joining_write, fresh]):
                    return Hold(None, already=False)
                failure = self.changing(key)
            elif step is Joining.WAIT or entry is None:
                failure = (
                    f"another resource's Delete of the rule {key} is still in progress (the ownership ledger, "
                    f"DynamoDB table {self.api.table}, holds its lease until the function's deadline). "
                    "Retry the stack operation"
                )
            else:
                joined = Write(
                    pk,
                    RULE_SK,
                    update="SET #holders = #holders + :one, #version = :next REMOVE #lease_until, #lease_holder",
                    condition="#version = :version",
                    values={":one": 1, ":next": entry.version + 1, ":version": entry.version},
                )
                if self._transact([joining_write, joined]):
                    return Hold(entry, already=False)
                failure = self.changing(key)
            pause(waits, self.deadline, self.sleep, failure)

    def record_made(self, key: str, rule_id: str) -> bool:
        """A holder's Authorize made the rule: it is ``made``, whatever was assumed before, with its id.

        False when nobody holds the rule any more: the last holder let go while
        the Authorize was in flight (a redelivered request racing the resource's
        own Delete), so what it made is nobody's.
        """
        return self._update(
            key,
            "SET #origin = :made, #rule_id = :id ADD #version :one",
            "#holders > :zero",
            made=MADE,
            id=rule_id,
            zero=0,
        )

    def record_pre_existing(self, key: str, rule_id: str | None) -> None:
        """The rule was there before any holder: never revoked. Only while no holder's Authorize has said otherwise."""
        values: dict[str, Value] = {"pre": PRE_EXISTING, "authorizing": AUTHORIZING}
        update = "SET #origin = :pre ADD #version :one"
        if rule_id:
            update = "SET #origin = :pre, #rule_id = :id ADD #version :one"
            values["id"] = rule_id
        self._update(key, update, "#origin = :authorizing", **values)

    def adopt(self, key: str, entry: Entry, rule_id: str) -> bool:
        """A rule recorded pre-existing is found to be one a holder's resource made: it is ``made`` from now on,
        revoked by its last holder. False on a conflict."""
        write = Write(
            RULE_PREFIX + key,
            RULE_SK,
            update="SET #origin = :made, #rule_id = :id, #version = :next",
            condition="#version = :version",
            values={":made": MADE, ":id": rule_id, ":next": entry.version + 1, ":version": entry.version},
        )
        return self._apply(write)

    def record_description(self, key: str, description: str) -> None:
        """The description its only holder gave the rule it made (:func:`_set_own_description`)."""
        self._update(key, "SET #description = :d ADD #version :one", "attribute_exists(#pk)", d=description)

    def let_go(self, key: str, holder: Holder, entry: Entry) -> bool:
        """Take ``holder`` off a rule others still hold (or that was there before them); False on a conflict."""
        pk = RULE_PREFIX + key
        return self._transact(
            [
                Write(pk, HOLDER_PREFIX + holder.key, delete=True, condition="attribute_exists(#pk)"),
                Write(
                    pk,
                    RULE_SK,
                    update="SET #holders = :holders, #version = :next",
                    condition="#version = :version",
                    values={
                        ":holders": max(entry.holders - 1, 0),
                        ":next": entry.version + 1,
                        ":version": entry.version,
                    },
                ),
            ]
        )

    def lease(self, key: str, holder: Holder, entry: Entry, *, held: bool) -> bool:
        """Leave the rule with no holder and lease it to ``holder`` for its revoke (taking it off too when
        ``held``); False on a conflict. The lease lasts as long as a change of this request may still land."""
        pk = RULE_PREFIX + key
        until = self.clock() + max(self.deadline.change_time_left(), 0.0) + LEASE_GRACE_S
        writes = [Write(pk, HOLDER_PREFIX + holder.key, delete=True, condition="attribute_exists(#pk)")] if held else []
        writes.append(
            Write(
                pk,
                RULE_SK,
                update="SET #holders = :zero, #lease_until = :until, #lease_holder = :h, #version = :next",
                condition="#version = :version",
                values={
                    ":zero": 0,
                    ":until": round(until, 3),
                    ":h": holder.key,
                    ":next": entry.version + 1,
                    ":version": entry.version,
                },
            )
        )
        return self._transact(writes)

    def withdraw(self, key: str, holder: Holder) -> None:
        """Take back a hold whose Authorize was refused outright: it made nothing, and nothing of it can land.

        The entry goes with it when this hold was all there was to it.
        """
        pk = RULE_PREFIX + key
        waits = polls()
        while True:
            entry, held = self.state(key, holder)
            if entry is None or not held:
                return
            if entry.holders > 1 or entry.origin != AUTHORIZING:
                if self.let_go(key, holder, entry):
                    return
            else:
                gone = Write(
                    pk, RULE_SK, delete=True, condition="#version = :version", values={":version": entry.version}
                )
                mine = Write(pk, HOLDER_PREFIX + holder.key, delete=True, condition="attribute_exists(#pk)")
                if self._transact([mine, gone]):
                    return
            pause(waits, self.deadline, self.sleep, self.changing(key))

    def lease_unrecorded(self, key: str, holder: Holder, rule_id: str, description: str) -> bool:
        """Lease a rule the ledger has no entry for (the release before the ledger made it) to ``holder`` for its
        revoke, so a hold waits for it as for any other; False if an entry appeared meanwhile."""
        fields: dict[str, Value] = {
            "holders": 0,
            "version": 1,
            "origin": MADE,
            "rule_id": rule_id,
            "description": description,
            "lease_until": round(self.clock() + max(self.deadline.change_time_left(), 0.0) + LEASE_GRACE_S, 3),
            "lease_holder": holder.key,
        }
        write = Write(RULE_PREFIX + key, RULE_SK, item=fields, condition="attribute_not_exists(#pk)")
        return self._transact([write])

    def unlease(self, key: str, holder: Holder) -> None:
        """Give the lease back: the revoke was refused outright, so nothing of this request can land."""
        self._update(key, "REMOVE #lease_until, #lease_holder ADD #version :one", "#lease_holder = :h", h=holder.key)

    def forget(self, key: str, holder: Holder) -> None:
        """The revoke has happened: delete the rule entry, unless a holder has taken it over meanwhile."""
        write = Write(
            RULE_PREFIX + key,
            RULE_SK,
            delete=True,
            condition="#lease_holder = :h AND #holders = :zero",
            values={":h": holder.key, ":zero": 0},
        )
        self._apply(write)

    # -- calls --------------------------------------------------------------------------

    def _update(self, key: str, update: str, condition: str, **values: Value) -> bool:
        """One conditional update of the rule entry; every one bumps its version. Whether its condition held."""
        named: dict[str, Value] = {f":{name}": value for name, value in values.items()}
        named[":one"] = 1
        return self._apply(Write(RULE_PREFIX + key, RULE_SK, update=update, condition=condition, values=named))

    def _apply(self, write: Write) -> bool:
        try:
            self._call(lambda: self.api.update(write), change=True)
        except ApiError as err:
            if err.code == CONDITION_FAILED_CODE:
                return False
            raise
        return True

    def _transact(self, writes: Sequence[Write]) -> bool:
        try:
            self._call(lambda: self.api.transact(writes), change=True)
        except ApiError as err:
            if err.code == retry.TRANSACTION_CANCELLED_CODE and retry.CONDITION_FAILED_REASON in err.reasons:
                return False
            raise
        return True

    def _call(self, call: Callable[[], T], *, change: bool) -> T:
        """One ledger call under the retry policy; a failed condition is returned to the caller as ApiError."""
        try:
            return (retry.change if change else retry.read)(call, self.deadline, self.sleep)
        except OutOfTime as err:
            if not isinstance(err.__cause__, ApiError):
                raise  # out of time for other reasons than the table: the deadline's own reason says it
            raise LedgerUnreachable(
                f"the ownership ledger, DynamoDB table {self.api.table}, did not answer in time: {err}"
            ) from err
        except ApiError as err:
            if err.code == CONDITION_FAILED_CODE or (
                err.code == retry.TRANSACTION_CANCELLED_CODE and retry.CONDITION_FAILED_REASON in err.reasons
            ):
                raise
            raise LedgerUnreachable(
                f"the ownership ledger, DynamoDB table {self.api.table}, refused: {err}. Check that the table "
                "exists and that the function's role may use it; retry the stack operation"
            ) from err

    def changing(self, key: str) -> str:
        """The reason for a conflict loop the deadline ended."""
        return (
            f"the ownership ledger's entry of the rule {key} kept changing under other resources' operations "
            "until the function's deadline. Retry the stack operation"
        )


def grant_rule(
    ledger: Ledger,
    side: Side[R],
    rule: R,
    holder: Holder,
    *,
    description: str,
    cache: str,
    targets: str = "",
    earlier: Collection[str] = (),
    on_held: Callable[[], None] = lambda: None,
) -> Ensured:
    """Hold the rule, then make sure AWS has it; ``on_held`` runs once the hold is recorded, before any AWS change.

    An Authorize AWS refuses outright made nothing: a hold taken for it is withdrawn before the failure is raised.

    ``earlier`` are the descriptions the release before the ledger (0.1.0) may
    have given this very resource's rule: a rule found with one of them, on an
    entry this hold made, was made by that release for this resource and is
    ``made``, not ``pre-existing``.
    """
    key = side.key(rule)
    hold = ledger.hold(key, holder, description, cache, targets)
    on_held()
    try:
        made = side.authorize(rule, description)
    except Refused:
        if not hold.already:
            with contextlib.suppress(ResourceError):
                ledger.withdraw(key, holder)
        raise
    if made is not None:
        if not ledger.record_made(key, made):
            _revoke_unheld(ledger, side, rule, key, holder, made, description)
            raise ResourceFailure(
                f"this resource's Delete let go of the rule {key} while this request made it, so it was revoked "
                "again: the request came after the resource was deleted"
            )
        return Ensured(made, True)
    if hold.entry is None and not hold.already:
        found = side.find(rule, None, settle=False)
        if found is not None and found[1] in earlier:
            ledger.record_made(key, found[0])
        else:
            ledger.record_pre_existing(key, found[0] if found else None)
        return Ensured(found[0] if found else "", False)
    entry = hold.entry
    rule_id = (entry.rule_id if entry else "") or _found_id(side, rule)
    if hold.already and entry is not None:
        _set_own_description(ledger, side, rule, key, entry, rule_id, description)
    return Ensured(rule_id, False)


def reassert_rule(ledger: Ledger, side: Side[R], rule: R, holder: Holder, *, description: str) -> Ensured | None:
    """Make sure AWS has a rule ``holder`` already holds; a rule it does not hold is left alone (None).

    No hold is taken: a held id kept by a rollback whose properties no longer
    resolve gains nothing it did not hold.
    """
    key = side.key(rule)
    entry, held = ledger.state(key, holder)
    if not held:
        return None
    made = side.authorize(rule, description)
    if made is not None:
        if ledger.record_made(key, made):
            return Ensured(made, True)
        # The holder's own Delete let go while the Authorize was in flight: a rollback still finishes.
        with contextlib.suppress(ResourceError):
            _revoke_unheld(ledger, side, rule, key, holder, made, description)
        return None
    rule_id = (entry.rule_id if entry else "") or _found_id(side, rule)
    if entry is not None:
        _set_own_description(ledger, side, rule, key, entry, rule_id, description)
    return Ensured(rule_id, False)


def _revoke_unheld(
    ledger: Ledger, side: Side[R], rule: R, key: str, holder: Holder, rule_id: str, description: str
) -> None:
    """Revoke a rule this request made after its holder let go, under a lease like any other; unless another
    resource holds it by now, whose rule it then is (made by a holder). A revoke in progress is waited out."""
    waits = polls()
    while True:
        if ledger.lease_unrecorded(key, holder, rule_id, description):
            _revoke_leased(ledger, side, rule, key, holder, Entry(0, 1, MADE, rule_id, description))
            return
        if ledger.record_made(key, rule_id):
            return
        pause(waits, ledger.deadline, ledger.sleep, ledger.changing(key))


def _set_own_description(
    ledger: Ledger, side: Side[R], rule: R, key: str, entry: Entry, rule_id: str, description: str
) -> None:
    """A rule held by this resource alone and made by it: the Description property is its to set."""
    if entry.holders == 1 and entry.origin == MADE and rule_id and entry.description != description:
        side.set_description(rule, rule_id, description)
        ledger.record_description(key, description)


def _found_id(side: Side[R], rule: R) -> str:
    """The rule's id as AWS shows it now, for the attributes; empty when it shows none yet."""
    found = side.find(rule, None, settle=False)
    return found[0] if found else ""


def release_rule(ledger: Ledger, side: Side[R], rule: R, holder: Holder, *, earlier: Collection[str] = ()) -> bool:
    """Let go of ``holder``'s hold on the rule; revoke it as its last holder. Whether anything was revoked.

    Not a holder: nothing to take back (a crafted id, a Create that never
    held), unless the ledger has no entry for the rule at all and it carries
    one of ``earlier``, the descriptions the release before the ledger gave
    this very resource's rule: that release made it, and it is revoked as it
    was then, under a lease like any other. A release that died half-way (its
    lease expired, or is its own) is finished by the next one.
    """
    key = side.key(rule)
    waits = polls()
    while True:
        entry, held = ledger.state(key, holder)
        step = letting(entry, held, holder, ledger.clock())
        if step is Letting.NOTHING:
            if not (earlier and entry is not None and entry.origin == PRE_EXISTING):
                return False
            # Another stack held it first and took it for one made by hand; it carries this resource's own
            # description: the release before the ledger made it for this resource, so its last holder revokes it.
            found = side.find(rule, earlier, settle=False)
            if found is None:
                return False
            if ledger.adopt(key, entry, found[0]) and entry.holders > 0:
                return False
        if step is Letting.UNRECORDED or entry is None:
            found = side.find(rule, earlier, settle=False) if earlier else None
            if found is None:
                return False
            if ledger.lease_unrecorded(key, holder, *found):
                return _revoke_leased(ledger, side, rule, key, holder, Entry(0, 1, MADE, *found))
        elif step is Letting.LET_GO:
            if ledger.let_go(key, holder, entry):
                return False
        elif ledger.lease(key, holder, entry, held=held):
            return _revoke_leased(ledger, side, rule, key, holder, entry)
        pause(waits, ledger.deadline, ledger.sleep, ledger.changing(key))


def _revoke_leased(ledger: Ledger, side: Side[R], rule: R, key: str, holder: Holder, entry: Entry) -> bool:
    """Revoke the rule under this holder's lease, then delete its entry.

    By its recorded id; when none was recorded (the Authorize's answer was
    lost), the rule is looked for by what was asked and revoked only if it
    carries the description the authorizer sent.
    """
    found = None if entry.rule_id else side.find(rule, (entry.description,), settle=True)
    rule_id = entry.rule_id or (found[0] if found else "")
    try:
        revoked = bool(rule_id) and side.revoke(rule, rule_id)
    except Refused:
        # Refused outright: nothing of this request can land. The retried Delete takes the lease again.
        # Any other failure (out of time, say) may leave a revoke in flight: the lease stands until it expires.
        with contextlib.suppress(ResourceError):
            ledger.unlease(key, holder)
        raise
    with contextlib.suppress(ResourceError):
        # Done, even if the entry stays: a later hold waits out the lease and takes the entry over.
        ledger.forget(key, holder)
    return revoked


def release_quietly(ledger: Ledger, side: Side[R], rules: Sequence[R], holder: Holder) -> None:
    """Best effort, undoing a failed grant: the failure being reported matters more than one while cleaning up."""
    for rule in rules:
        with contextlib.suppress(ResourceError):
            release_rule(ledger, side, rule, holder)
