"""The provider stack's scheduled check: the operator's audit, run by the function on a schedule.

Off unless the stack's ``DriftCheckSchedule`` parameter sets a schedule; an
EventBridge scheduled event then reaches the function, which is told apart
from CloudFormation's requests (:func:`is_scheduled`) and answers nobody.
Each finding is logged and counted; with ``RepairDrift`` the drift is
repaired, through the ledger layer as ``cache-ingress repair`` does. Orphaned
holders are never swept here: taking access away waits for a person.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .audit import DRIFT, ORPHAN, STALE_LEASE, UNCOVERED
from .remedy import Action, repair
from .survey import Survey

#: The metrics each run publishes, zero included (an alarm watches them): name -> the finding it counts.
METRICS = {"DriftedRules": DRIFT, "OrphanedHolders": ORPHAN, "UncoveredGroups": UNCOVERED, "StaleLeases": STALE_LEASE}
#: The environment variable template.yaml sets from RepairDrift.
REPAIR_VARIABLE = "REPAIR_DRIFT"


def is_scheduled(event: Any) -> bool:
    """An EventBridge scheduled event (``source`` aws.events, ``detail-type`` Scheduled Event), never a
    CloudFormation request (which always carries a RequestType)."""
    return (
        isinstance(event, Mapping)
        and event.get("source") == "aws.events"
        and event.get("detail-type") == "Scheduled Event"
        and "RequestType" not in event
    )


def repair_on(environment: Mapping[str, str]) -> bool:
    return environment.get(REPAIR_VARIABLE, "").strip().lower() == "true"


@dataclass(frozen=True)
class Outcome:
    counts: dict[str, int]
    repaired: list[Action]


def run(survey: Survey, *, repair_drift: bool, log: Callable[[str, dict[str, Any]], None]) -> Outcome:
    """Audit every cache in the ledger, log each finding (``log(message, fields)``), repair drift if asked."""
    report = survey.report()
    for finding in report.findings:
        log(f"{finding.kind}: {finding.detail}", {"finding": finding.kind, "cache": finding.cache, "rule": finding.key})
    repaired = repair(survey, report, dry_run=False) if repair_drift and report.count(DRIFT) else []
    for action in repaired:
        log(f"repair: {action}", {"finding": DRIFT, "cache": action.cache, "rule": action.key})
    return Outcome({name: report.count(kind) for name, kind in METRICS.items()}, repaired)
