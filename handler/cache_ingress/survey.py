"""The check's reads: the ledger's entries for each cache, the rules AWS holds into its groups, the holders' stacks.

Each cache is read through the table's ``by-cache`` index and each holder's
stack with DescribeStacks, by id (a deleted stack's id still answers, with
DELETE_COMPLETE, for a while; after that CloudFormation knows it no more).
A secondary index is eventually consistent: this is a report, read a moment
late at worst; ``repair`` and ``sweep`` act through the ledger layer
(:mod:`cache_ingress.remedy`), which reads each rule consistently before it
writes. Every call goes through :mod:`cache_ingress.retry` under one deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from . import retry
from .audit import (
    NO_STACK,
    CacheState,
    HolderEntry,
    LiveRule,
    Report,
    RuleEntry,
    RuleKey,
    audit,
    cache_ref,
    classic_rules,
    foreign_status,
    ledger_items,
    live_rule,
    selected,
)
from .aws_api import ApiError, CloudFormationApi, Ec2Api, ElastiCacheApi, LedgerApi, MemoryDbApi
from .errors import CacheNotFound, ResourceError, ResourceFailure
from .timing import Deadline, Sleep
from .vpc_lifecycle import CacheApis, network

#: The ledger table's indexes (template.yaml, OwnershipLedger): holder entries by stack, entries by cache.
BY_STACK = "by-stack"
BY_CACHE = "by-cache"
GROUP_NOT_FOUND_CODES = frozenset({"InvalidGroup.NotFound", "CacheSecurityGroupNotFound"})

T = TypeVar("T")


@dataclass(frozen=True)
class Apis:
    """Everything the check reads (and the remedies change), clients made by the caller."""

    ledger: LedgerApi
    ec2: Ec2Api
    elasticache: ElastiCacheApi
    memorydb: MemoryDbApi
    cloudformation: CloudFormationApi


@dataclass(frozen=True)
class Survey:
    """How to read, under one deadline."""

    apis: Apis
    deadline: Deadline
    account: str  # the caller's: only its stacks (in ``region``) can be described, and so found gone
    region: str
    sleep: Sleep = time.sleep
    clock: Callable[[], float] = time.time

    def report(self, names: Iterable[str] = ()) -> Report:
        """The check for the caches ``names`` selects (every cache the ledger knows when none)."""
        states = [self.cache(cache) for cache in self.caches(names)]
        stacks = {h.stack_id for state in states for h in state.holders}
        return audit(states, self.statuses(stacks), self.clock())

    def caches(self, names: Iterable[str] = ()) -> list[str]:
        """The caches the ledger holds rules for, as it spells them; only those ``names`` select, if any."""
        wanted = list(names)
        known = self._read(lambda: self.apis.ledger.keys(BY_CACHE, "cache"), "list the caches")
        return sorted(cache for cache in known if not wanted or selected(cache, wanted))

    def cache(self, cache: str) -> CacheState:
        """The ledger's entries for ``cache``, its groups now, and every rule into them (and into any group a
        ledger rule names)."""
        items = self._read(lambda: self.apis.ledger.query(BY_CACHE, "cache", cache), f"read the entries of {cache}")
        rules, holders = ledger_items(items)
        keys = [parsed for k in {r.key for r in rules} | {h.key for h in holders} if (parsed := RuleKey.parse(k))]
        ref = cache_ref(cache)
        if ref is None:
            return self._classic(cache, rules, holders, {k.group for k in keys if k.classic})
        groups: tuple[str, ...] | None = None
        problem = ""
        try:
            apis = CacheApis(self.apis.elasticache, self.apis.memorydb)
            groups = network(apis, ref, self.deadline, self.sleep).security_groups
        except CacheNotFound as err:
            problem = str(err)
        live: list[LiveRule] = []
        for group in sorted(set(groups or ()) | {k.group for k in keys if not k.classic}):
            try:
                answer = self._read(partial(self.apis.ec2.rules, group), f"read the rules into {group}")
            except _GroupGone:
                continue
            live += [rule for item in answer if (rule := live_rule(item)) is not None]
        return CacheState(cache, rules, holders, groups, live, problem)

    def _classic(self, cache: str, rules: list[RuleEntry], holders: list[HolderEntry], groups: set[str]) -> CacheState:
        live: list[LiveRule] = []
        for group in sorted(groups):
            try:
                found = self._read(partial(self.apis.elasticache.cache_security_group, group), f"read {group}")
            except _GroupGone:
                continue
            live += classic_rules(group, found)
        return CacheState(cache, rules, holders, None, live)

    def holds_of(self, stack_id: str) -> list[HolderEntry]:
        """Every hold of the stack's resources, through the ``by-stack`` index."""
        items = self._read(lambda: self.apis.ledger.query(BY_STACK, "stack_id", stack_id), "read a stack's holds")
        return ledger_items(items)[1]

    def statuses(self, stack_ids: Iterable[str]) -> dict[str, str]:
        """Each stack's status; :data:`~cache_ingress.audit.NO_STACK` for one CloudFormation does not know,
        :data:`~cache_ingress.audit.OTHER_ACCOUNT` for one it would not describe to this account and region."""
        found = {}
        for stack_id in sorted(set(stack_ids)):
            foreign = foreign_status(stack_id, self.account, self.region)
            if foreign is not None:
                found[stack_id] = foreign
                continue
            stack = self._read(partial(self.apis.cloudformation.stack, stack_id), "describe a holder's stack")
            found[stack_id] = str(stack.get("StackStatus", NO_STACK)) if stack else NO_STACK
        return found

    def _read(self, call: Callable[[], T], what: str) -> T:
        try:
            return retry.read(call, self.deadline, self.sleep)
        except ApiError as err:
            if err.code in GROUP_NOT_FOUND_CODES:
                raise _GroupGone(str(err)) from err
            raise ResourceFailure(f"could not {what}: {err}") from err


class _GroupGone(ResourceError):
    """A group a ledger rule names is gone: its rules with it."""
