"""What an operator may do about the findings: repair drift, sweep orphaned holders. Both through the ledger layer.

Every change goes through the same functions a stack operation uses
(:func:`~cache_ingress.ledger.reassert_rule`,
:func:`~cache_ingress.ledger.release_rule`) with the same AWS sides
(:class:`~cache_ingress.vpc_holds.Ec2Side`,
:class:`~cache_ingress.classic_lifecycle.CacheGroupSide`) and retry policy,
so the guarantees hold here too:

* ``repair`` authorizes again a rule a live holder holds (a consistent read
  of the ledger says so, whatever the report's index read); it takes no new
  hold, so it grants nothing a stack did not declare;
* ``sweep`` lets go of a holder whose stack is gone (checked again just
  before), as that resource's Delete would have: the rule is revoked only
  when its last holder goes, and never when it was there before any holder.

The report's findings say what to look at; each action reads again before
it writes. A dry run writes nothing but says what would be done. A rule AWS
refuses (its group deleted, say) is reported as failed and the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass

from .audit import DRIFT, ORPHAN, HeldBy, Report, RuleKey, live_status
from .classic_lifecycle import CacheGroupSide
from .classic_rules import Ingress
from .errors import ResourceError, ResourceFailure
from .ledger import PRE_EXISTING, Ensured, Holder, Ledger, reassert_rule, release_rule
from .sources import Source
from .survey import Survey
from .vpc_holds import Ec2Side, Rule, rule_tags
from .vpc_rules import RuleSet

#: The verb of an action that failed: its detail is the reason; the others went on.
FAILED = "failed"


@dataclass(frozen=True)
class Action:
    """One thing done (or, in a dry run, that would be done) to one rule, for one holder."""

    verb: str
    cache: str
    key: str
    holder: str
    detail: str = ""

    def __str__(self) -> str:
        text = f"{self.verb}: {self.key} ({self.cache}), for {self.holder}"
        return f"{text}: {self.detail}" if self.detail else text


def repair(survey: Survey, report: Report, *, dry_run: bool) -> list[Action]:
    """Authorize again each rule drift found missing, once, for the first of its holders that still holds it."""
    ledger = Ledger(survey.apis.ledger, survey.deadline, survey.sleep)
    actions: list[Action] = []
    for finding in report.findings:
        parsed = RuleKey.parse(finding.key)
        if finding.kind != DRIFT or parsed is None:
            continue
        for who in finding.holders:
            holder = Holder(who.stack_id, who.logical_id, who.physical_id)
            entry, held = ledger.state(parsed.text, holder)
            if entry is None or not held:
                continue  # the index read ahead of the table: this one holds it no more
            if dry_run:
                actions.append(Action("would authorize", finding.cache, parsed.text, str(who)))
                break
            try:
                ensured = _reassert(survey, ledger, parsed, holder, entry.description)
            except ResourceError as err:
                actions.append(Action(FAILED, finding.cache, parsed.text, str(who), str(err)))
                break
            if ensured is None:
                continue
            verb = "authorized" if ensured.made else "already present"
            actions.append(Action(verb, finding.cache, parsed.text, str(who), ensured.rule_id))
            break
    return actions


def sweep(survey: Survey, report: Report, *, dry_run: bool) -> list[Action]:
    """Let go of every orphaned holder the report found, each hold as its Delete would have."""
    ledger = Ledger(survey.apis.ledger, survey.deadline, survey.sleep)
    orphans: dict[tuple[str, str, str], tuple[str, HeldBy]] = {}
    for finding in report.findings:
        if finding.kind == ORPHAN:
            for who in finding.holders:
                orphans.setdefault((who.stack_id, who.logical_id, who.physical_id), (finding.cache, who))
    statuses = survey.statuses({stack_id for stack_id, _, _ in orphans})
    actions: list[Action] = []
    for identity, (cache, who) in sorted(orphans.items()):
        if live_status(statuses[identity[0]]):
            actions.append(Action("kept", cache, "", str(who), f"its stack is live ({statuses[identity[0]]})"))
            continue
        holder = Holder(*identity)
        for hold in survey.holds_of(holder.stack_id):
            parsed = RuleKey.parse(hold.key)
            if hold.identity != identity or parsed is None:
                continue
            if dry_run:
                actions.append(_foreseen(ledger, parsed, holder, hold.cache, str(who)))
                continue
            try:
                revoked = _release(survey, ledger, parsed, holder)
            except ResourceError as err:
                actions.append(Action(FAILED, hold.cache, parsed.text, str(who), str(err)))
                continue
            verb = "revoked" if revoked else "let go"
            detail = "" if revoked else "the rule stays: another holder holds it, it was there before, or it was gone"
            actions.append(Action(verb, hold.cache, parsed.text, str(who), detail))
    return actions


def _foreseen(ledger: Ledger, parsed: RuleKey, holder: Holder, cache: str, who: str) -> Action:
    """What releasing would do, read consistently now: the same test :func:`release_rule` makes."""
    entry, held = ledger.state(parsed.text, holder)
    if entry is None or not held:
        return Action("would skip", cache, parsed.text, who, "it holds the rule no more")
    if entry.origin == PRE_EXISTING:
        return Action("would let go", cache, parsed.text, who, "the rule stays: it was there before any holder")
    if entry.holders > 1:
        return Action("would let go", cache, parsed.text, who, f"the rule stays: {entry.holders - 1} other holder(s)")
    return Action("would revoke", cache, parsed.text, who, "its last holder")


def _reassert(survey: Survey, ledger: Ledger, parsed: RuleKey, holder: Holder, description: str) -> Ensured | None:
    """:func:`reassert_rule` with the AWS side of the rule's mode, the rule named from its key alone."""
    if parsed.classic:
        side = CacheGroupSide(survey.apis.elasticache, survey.deadline, survey.sleep)
        return reassert_rule(ledger, side, _ingress(parsed), holder, description=description)
    return reassert_rule(ledger, _ec2_side(survey, parsed, holder), _rule(parsed), holder, description=description)


def _release(survey: Survey, ledger: Ledger, parsed: RuleKey, holder: Holder) -> bool:
    """:func:`release_rule`, as :func:`_reassert` picks the side."""
    if parsed.classic:
        side = CacheGroupSide(survey.apis.elasticache, survey.deadline, survey.sleep)
        return release_rule(ledger, side, _ingress(parsed), holder)
    return release_rule(ledger, _ec2_side(survey, parsed, holder), _rule(parsed), holder)


def _ingress(parsed: RuleKey) -> Ingress:
    return Ingress(cache_group=parsed.group, ec2_group=parsed.ec2_group_name, owner_id=parsed.owner)


def _rule(parsed: RuleKey) -> Rule:
    return (parsed.group, parsed.port)


def _ec2_side(survey: Survey, parsed: RuleKey, holder: Holder) -> Ec2Side:
    """EC2's side for the one rule the key names: its source, port and target group."""
    source = Source.from_id_part(parsed.source)
    if source is None:
        raise ResourceFailure(f"the ledger's rule key {parsed.text} names no source this resource makes")
    rule_set = RuleSet.of(source, [parsed.port], [parsed.group])
    tags = rule_tags(survey.apis.ledger.table, holder)
    return Ec2Side(survey.apis.ec2, rule_set, tags, survey.deadline, survey.sleep)
