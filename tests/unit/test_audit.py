"""The operator's findings, from plain values: ledger entries, the rules AWS holds, the stacks' statuses."""

from __future__ import annotations

from typing import Any

import pytest

from cache_ingress import render
from cache_ingress.audit import (
    DELETE_COMPLETE,
    DRIFT,
    NO_STACK,
    ORPHAN,
    STALE_LEASE,
    UNCOVERED,
    UNMANAGED,
    CacheState,
    HolderEntry,
    LiveRule,
    Report,
    RuleEntry,
    RuleKey,
    audit,
    cache_name,
    classic_rules,
    foreign_status,
    ledger_items,
    live_rule,
    selected,
    vpc_key,
)
from cache_ingress.ledger import MADE, PRE_EXISTING, TARGETS_DECLARED, TARGETS_OF_CACHE, Entry

ACCOUNT = "123456789012"
LIVE = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/cache-access/5b6a8e10"
OTHER = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/batch-jobs/6c7b9f21"
GONE = f"arn:aws:cloudformation:us-east-1:{ACCOUNT}:stack/reports/7d8c0a32"
CACHE = "ReplicationGroupId 'app-cache'"
APP = "sg-0a1b2c3d4e5f60718"
GUARD = "sg-0c0c0c0c0c0c0c0c1"
SHARED = "sg-0d0d0d0d0d0d0d0d2"
SOURCE = f"{APP}@{ACCOUNT}"
KEY = vpc_key(GUARD, 6379, SOURCE)
SHARED_KEY = vpc_key(SHARED, 6379, SOURCE)
PHYSICAL = f"cache-vpc-ingress:{SOURCE}:6379:{GUARD},{SHARED}"
NOW = 1_800_000_000.0
STATUSES = {LIVE: "CREATE_COMPLETE", OTHER: "UPDATE_COMPLETE", GONE: DELETE_COMPLETE}


def holder(key: str, stack_id: str = LIVE, logical_id: str = "AppCacheAccess", **more: Any) -> HolderEntry:
    defaults = {"physical_id": PHYSICAL, "since": "2026-12-01T10:00:00Z", "cache": CACHE, "targets": TARGETS_OF_CACHE}
    return HolderEntry(key, "h" * 32, stack_id, logical_id, **{**defaults, **more})


def rule(key: str, holders: int = 1, origin: str = MADE, **more: Any) -> RuleEntry:
    return RuleEntry(key, Entry(holders=holders, version=1, origin=origin, **more), CACHE)


def live(group: str, source: str = SOURCE, port: int = 6379, rule_id: str = "sgr-1") -> LiveRule:
    return LiveRule(group, rule_id, source, str(port), "", vpc_key(group, port, source))


def state(
    rules: list[RuleEntry], holders: list[HolderEntry], lives: list[LiveRule], groups: tuple[str, ...] = (GUARD, SHARED)
) -> CacheState:
    return CacheState(CACHE, rules, holders, groups, lives)


def kinds(report: Report) -> list[str]:
    return [finding.kind for finding in report.findings]


def test_a_world_that_adds_up_has_no_finding_and_names_each_rules_holders() -> None:
    report = audit(
        [
            state(
                [rule(KEY, 2), rule(SHARED_KEY)],
                [holder(KEY), holder(KEY, OTHER, "BatchAccess"), holder(SHARED_KEY)],
                [live(GUARD), live(SHARED, rule_id="sgr-2")],
            )
        ],
        STATUSES,
        NOW,
    )
    assert report.findings == ()
    rows = {row.group: row.holders_text for row in report.caches[0].rows}
    assert rows == {
        GUARD: "batch-jobs (UPDATE_COMPLETE) BatchAccess; cache-access (CREATE_COMPLETE) AppCacheAccess",
        SHARED: "cache-access (CREATE_COMPLETE) AppCacheAccess",
    }


def test_a_rule_a_live_holder_declares_and_aws_lacks_is_drift() -> None:
    report = audit(
        [state([rule(KEY), rule(SHARED_KEY)], [holder(KEY), holder(SHARED_KEY)], [live(GUARD)])], STATUSES, NOW
    )
    (drift,) = report.findings
    assert (drift.kind, drift.key, [h.logical_id for h in drift.holders]) == (DRIFT, SHARED_KEY, ["AppCacheAccess"])
    missing = [row for row in report.caches[0].rows if not row.present]
    assert [(row.group, row.rule_id) for row in missing] == [(SHARED, "")]


def test_a_rule_only_orphans_hold_is_not_drift_but_an_orphan() -> None:
    report = audit([state([rule(SHARED_KEY)], [holder(SHARED_KEY, GONE, "ReportsAccess")], [])], STATUSES, NOW)
    assert kinds(report) == [ORPHAN]


@pytest.mark.parametrize("status", [DELETE_COMPLETE, NO_STACK])
def test_a_holder_whose_stack_is_deleted_or_unknown_is_an_orphan_once_whatever_it_holds(status: str) -> None:
    gone = {**STATUSES, GONE: status} if status != NO_STACK else {k: v for k, v in STATUSES.items() if k != GONE}
    report = audit(
        [
            state(
                [rule(KEY, 2), rule(SHARED_KEY)],
                [holder(KEY), holder(KEY, GONE, "ReportsAccess"), holder(SHARED_KEY, GONE, "ReportsAccess")],
                [live(GUARD), live(SHARED)],
            )
        ],
        gone,
        NOW,
    )
    (orphan,) = report.findings
    assert orphan.kind == ORPHAN
    assert [(h.stack, h.status, h.logical_id) for h in orphan.holders] == [("reports", status, "ReportsAccess")]
    assert "holds 2 rule(s)" in orphan.detail


def test_a_group_the_cache_gained_is_uncovered_for_holders_that_follow_the_cache_only() -> None:
    gained = "sg-0e0e0e0e0e0e0e0e3"
    follows = holder(KEY)
    declared = holder(
        KEY, OTHER, "BatchAccess", targets=TARGETS_DECLARED, physical_id=f"cache-vpc-ingress:{SOURCE}:6379:{GUARD}"
    )
    orphaned = holder(KEY, GONE, "ReportsAccess")
    report = audit(
        [state([rule(KEY, 3)], [follows, declared, orphaned], [live(GUARD)], groups=(GUARD, gained))],
        STATUSES,
        NOW,
    )
    uncovered = [f for f in report.findings if f.kind == UNCOVERED]
    assert [(f.group, f.holders[0].logical_id) for f in uncovered] == [(gained, "AppCacheAccess")]


def test_a_lease_past_its_expiry_is_stale_and_one_still_running_is_not() -> None:
    stale = rule(KEY, 0, lease_until=NOW - 1, lease_holder="h" * 32)
    running = rule(SHARED_KEY, 0, lease_until=NOW + 30, lease_holder="h" * 32)
    report = audit([state([stale, running], [], [])], STATUSES, NOW)
    assert [(f.kind, f.key) for f in report.findings] == [(STALE_LEASE, KEY)]


def test_rules_nobody_declared_are_unmanaged_and_those_there_before_any_holder_pre_existing() -> None:
    by_hand = live(GUARD, source="10.99.0.0/24")
    report = audit([state([rule(KEY, 1, PRE_EXISTING)], [holder(KEY)], [live(GUARD), by_hand])], STATUSES, NOW)
    assert report.findings == ()
    shown = {row.source: row.holders_text for row in report.caches[0].rows}
    assert shown == {"10.99.0.0/24": UNMANAGED, SOURCE: "pre-existing; cache-access (CREATE_COMPLETE) AppCacheAccess"}


def test_a_cache_whose_rules_could_not_be_read_claims_no_drift() -> None:
    broken = CacheState(CACHE, [rule(KEY)], [holder(KEY)], None, [], problem="not found")
    assert audit([broken], STATUSES, NOW).findings == ()


def test_rule_keys_read_back_as_each_mode_spells_them() -> None:
    vpc = RuleKey.parse(f"vpc|{GUARD}|tcp|6379|[2001:db8::/32]")
    assert vpc is not None
    assert (vpc.classic, vpc.group, vpc.port, vpc.source) == (False, GUARD, 6379, "[2001:db8::/32]")
    classic = RuleKey.parse(f"classic|app-cache-sg|batch | nightly|{ACCOUNT}")
    assert classic is not None
    assert (classic.group, classic.ec2_group_name, classic.owner) == ("app-cache-sg", "batch | nightly", ACCOUNT)
    assert RuleKey.parse("vpc|sg-1|udp|53|10.0.0.0/8") is None
    assert RuleKey.parse("something else") is None


def test_aws_rules_are_keyed_as_the_ledger_keys_them_and_other_rules_are_left_unkeyed() -> None:
    group = {"GroupId": GUARD, "SecurityGroupRuleId": "sgr-1", "IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379}
    from_group = live_rule({**group, "ReferencedGroupInfo": {"GroupId": APP, "UserId": ACCOUNT}})
    from_v6 = live_rule({**group, "CidrIpv6": "2001:db8::/32"})
    every_port = live_rule({**group, "IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "CidrIpv4": "10.0.0.0/8"})
    assert from_group is not None
    assert from_group.key == KEY
    assert from_v6 is not None
    assert from_v6.key == vpc_key(GUARD, 6379, "[2001:db8::/32]")
    assert every_port is not None
    assert (every_port.key, every_port.port) == ("", "all")
    assert live_rule({**group, "IsEgress": True, "CidrIpv4": "0.0.0.0/0"}) is None
    entries = classic_rules(
        "app-cache-sg",
        {
            "EC2SecurityGroups": [
                {"EC2SecurityGroupName": "app-servers", "EC2SecurityGroupOwnerId": ACCOUNT, "Status": "authorized"},
                {"EC2SecurityGroupName": "old", "EC2SecurityGroupOwnerId": ACCOUNT, "Status": "revoking"},
            ]
        },
    )
    assert [r.key for r in entries] == [f"classic|app-cache-sg|app-servers|{ACCOUNT}"]


def test_ledger_items_are_told_apart_by_their_sort_key() -> None:
    items: list[dict[str, Any]] = [
        {"pk": f"rule#{KEY}", "sk": "rule", "holders": 1, "version": 3, "origin": MADE, "cache": CACHE},
        {
            "pk": f"rule#{KEY}",
            "sk": "holder#" + "a" * 32,
            "stack_id": LIVE,
            "logical_id": "X",
            "physical_id": "p",
            "since": "s",
            "cache": CACHE,
            "targets": TARGETS_DECLARED,
        },
    ]
    rules, holders = ledger_items(items)
    assert [(r.key, r.entry.version) for r in rules] == [(KEY, 3)]
    assert [(h.key, h.holder_key, h.targets) for h in holders] == [(KEY, "a" * 32, TARGETS_DECLARED)]


def test_caches_are_selected_by_name_alone_or_as_the_ledger_spells_them() -> None:
    assert cache_name(CACHE) == "app-cache"
    assert cache_name("CacheSecurityGroupName app-cache-sg") == "app-cache-sg"
    assert selected(CACHE, ["app-cache"])
    assert selected(CACHE, [CACHE])
    assert not selected(CACHE, ["app"])


def test_the_mermaid_picture_draws_each_source_to_its_cache_and_a_missing_rule_dotted() -> None:
    report = audit(
        [state([rule(KEY), rule(SHARED_KEY)], [holder(KEY), holder(SHARED_KEY)], [live(GUARD)])], STATUSES, NOW
    )
    picture = render.mermaid(report).splitlines()
    assert picture[0] == "flowchart LR"
    assert '  n0[("app-cache")]' in picture
    assert f'  n1["{SOURCE}"]' in picture
    assert '  n1 -->|"6379: cache-access/AppCacheAccess"| n0' in picture
    assert '  n1 -.->|"6379: cache-access/AppCacheAccess (missing)"| n0' in picture
    assert "drift" in render.table(report)


def test_a_stack_of_another_account_or_region_is_never_described_nor_taken_for_gone() -> None:
    partner = "arn:aws:cloudformation:us-east-1:210987654321:stack/partner/0f0f0f0f"
    assert foreign_status(LIVE, ACCOUNT, "us-east-1") is None
    assert foreign_status(partner, ACCOUNT, "us-east-1") == "not visible: account 210987654321, region us-east-1"
    assert foreign_status(LIVE, ACCOUNT, "eu-west-1") == f"not visible: account {ACCOUNT}, region us-east-1"
    status = str(foreign_status(partner, ACCOUNT, "us-east-1"))
    report = audit([state([rule(KEY)], [holder(KEY, partner, "PartnerAccess")], [live(GUARD)])], {partner: status}, NOW)
    assert report.findings == ()
