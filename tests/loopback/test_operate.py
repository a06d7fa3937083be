"""``cache-ingress`` run for real (its ``main`` with argv, and once as a process) against the offline world.

Holders are made by the real handler over HTTP, in stacks made in moto's
CloudFormation, so each holder's StackId is a stack CloudFormation knows;
deleting one there is a stack deleted behind the resource's back. What the
operator sees is the command's output and exit status; what changed is read
from moto (EC2's rules) and the ledger's table.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import boto3
import pytest

from cache_ingress import cli
from offline import operate_world
from offline.ledger_table import LEDGER_TABLE
from offline.moto_backend import MotoBackend
from offline.operate_world import BY_HAND_CIDR, REPORTS_CIDR, OperateWorld
from offline.standin import ElastiCacheStandIn
from tests.support import ROOT, handle, invoke, load_event, run_make

TABLE = ["--table", LEDGER_TABLE]
ACCOUNT = "123456789012"


@pytest.fixture
def world(moto: MotoBackend, standin: ElastiCacheStandIn) -> OperateWorld:
    return operate_world.build(moto, standin, invoke)


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command's exit status, stdout and stderr."""
    capsys.readouterr()
    status = cli.main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def ledger_items(moto: MotoBackend) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = moto.client("dynamodb").scan(TableName=LEDGER_TABLE, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def holders(moto: MotoBackend) -> set[tuple[str, str]]:
    """(stack name, logical id) of every holder entry."""
    return {
        (item["stack_id"]["S"].split("/")[1], item["logical_id"]["S"])
        for item in ledger_items(moto)
        if item["sk"]["S"].startswith("holder#")
    }


def create_reports_access(world: OperateWorld, stack_id: str, logical_id: str) -> None:
    """Stack ``stack_id``'s resource ``logical_id`` grants the reports range: a holder this account's
    CloudFormation may not see."""
    event = load_event("vpc-create.json", world.ids, StackId=stack_id, LogicalResourceId=logical_id)
    event["ResourceProperties"] = {
        "ServiceToken": event["ServiceToken"],
        "ReplicationGroupId": "app-cache",
        "SourceCidrIp": REPORTS_CIDR,
    }
    assert invoke(event)["Status"] == "SUCCESS"


def test_a_rule_revoked_by_hand_is_drift_and_repair_authorizes_it_again(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world.grant("cache-access", "AppCacheAccess")
    world.revoke_by_hand(world.shared_group, world.rule_id("AppCacheAccess", world.shared_group))
    assert (world.app, 6379) not in world.rules(world.shared_group)

    status, out, _ = command(capsys, "audit", *TABLE)
    assert status == 1
    assert f"drift        ReplicationGroupId 'app-cache': the rule from {world.app}@" in out
    assert f"into {world.shared_group} is declared by cache-access (CREATE_COMPLETE) AppCacheAccess" in out

    status, out, _ = command(capsys, "repair", *TABLE)
    assert status == 0
    assert out.startswith(f"authorized: vpc|{world.shared_group}|tcp|6379|{world.app}@")
    assert (world.app, 6379) in world.rules(world.shared_group)

    status, out, _ = command(capsys, "audit", *TABLE, "--cache", "app-cache")
    assert (status, out.splitlines()[-1]) == (0, "No findings.")
    status, out, err = command(capsys, "audit", *TABLE, "--cache", "other-cache")
    assert (status, out) == (0, "No findings.\n")
    assert err == f"cache-ingress: no cache 'other-cache' holds a rule in the ledger (table {LEDGER_TABLE})\n"


def test_a_repair_aws_refuses_for_one_rule_is_reported_and_the_others_are_repaired(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world.grant("cache-access", "AppCacheAccess")
    for group in (world.cache_group, world.shared_group):
        world.revoke_by_hand(group, world.rule_id("AppCacheAccess", group))
    world.moto.client("ec2").delete_security_group(GroupId=world.shared_group)  # its rule can never come back

    status, out, _ = command(capsys, "repair", *TABLE)
    assert status == 2
    lines = sorted(out.splitlines())
    assert lines[0].startswith(f"authorized: vpc|{world.cache_group}|tcp|6379|")
    assert lines[1].startswith(f"failed: vpc|{world.shared_group}|tcp|6379|")
    assert "a security group does not exist" in lines[1]
    assert (world.app, 6379) in world.rules(world.cache_group)


def test_a_stack_deleted_behind_the_resources_back_is_an_orphan_and_the_sweep_revokes_its_rules(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world.grant("reports", "ReportsAccess", SourceCidrIp=REPORTS_CIDR)
    world.delete_stack("reports")

    status, out, _ = command(capsys, "audit", *TABLE)
    assert status == 1
    assert "orphan       ReplicationGroupId 'app-cache': reports (DELETE_COMPLETE) ReportsAccess holds 2 rule(s)" in out

    status, out, _ = command(capsys, "sweep", *TABLE, "--yes")
    assert status == 0
    assert out.count("revoked: ") == 2
    assert (REPORTS_CIDR, 6379) not in world.rules(world.cache_group) | world.rules(world.shared_group)
    assert ledger_items(world.moto) == []
    assert command(capsys, "audit", *TABLE)[0] == 0


def test_a_sweep_keeps_a_rule_another_live_stack_holds_and_a_rule_that_was_there_before(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world.authorize_by_hand(world.cache_group, REPORTS_CIDR)  # a person's rule, before any stack
    world.grant("cache-access", "AppCacheAccess")
    world.grant("batch-jobs", "BatchAccess")  # the same rules as cache-access
    world.grant("reports", "ReportsAccess", SourceCidrIp=REPORTS_CIDR)
    world.delete_stack("batch-jobs")
    world.delete_stack("reports")

    status, out, _ = command(capsys, "sweep", *TABLE, "--yes")
    assert status == 0
    assert out.count("let go: ") == 3  # batch-jobs' two shared rules, reports' rule into the person's
    assert out.count("revoked: ") == 1  # reports' rule into the shared group, which it alone held
    assert {(world.app, 6379), (REPORTS_CIDR, 6379)} <= world.rules(world.cache_group)
    assert (world.app, 6379) in world.rules(world.shared_group)
    assert (REPORTS_CIDR, 6379) not in world.rules(world.shared_group)
    assert holders(world.moto) == {("cache-access", "AppCacheAccess")}
    status, out, _ = command(capsys, "audit", *TABLE)
    assert status == 0
    (persons,) = [line.split() for line in out.splitlines() if REPORTS_CIDR in line]
    assert (persons[0], persons[-1]) == (world.cache_group, "pre-existing")


def test_a_holder_in_another_account_is_never_taken_for_an_orphan(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stack of the account InvokerAccountId names: CloudFormation would say it does not exist, alive."""
    elsewhere = "arn:aws:cloudformation:us-east-1:210987654321:stack/partner/0f0f0f0f-0c1d-11ef-9a0b-0a1b2c3d4e5f"
    create_reports_access(world, elsewhere, "PartnerAccess")

    status, out, _ = command(capsys, "audit", *TABLE)
    assert (status, out.splitlines()[-1]) == (0, "No findings.")
    assert "partner (not visible: account 210987654321, region us-east-1) PartnerAccess" in out
    assert command(capsys, "sweep", *TABLE, "--yes")[1].splitlines() == ["nothing to sweep"]
    assert (REPORTS_CIDR, 6379) in world.rules(world.cache_group)


def test_dry_runs_change_nothing_and_say_what_they_would_do(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    operate_world.stage_everything(world)
    rules_before = world.rules(world.cache_group) | world.rules(world.shared_group)
    ledger_before = ledger_items(world.moto)

    status, out, _ = command(capsys, "repair", *TABLE, "--dry-run")
    assert (status, out.splitlines()[-1]) == (0, "dry run: nothing was changed")
    assert out.startswith("would authorize: ")
    status, out, _ = command(capsys, "sweep", *TABLE)  # a dry run unless --yes
    assert status == 0
    assert out.count("would revoke: ") == 2
    assert out.splitlines()[-2:] == ["dry run: nothing was changed", "run again with --yes to do it"]

    assert world.rules(world.cache_group) | world.rules(world.shared_group) == rules_before
    assert ledger_items(world.moto) == ledger_before


def test_a_group_the_cache_gained_is_uncovered_for_the_holder_that_follows_its_groups(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world.grant("cache-access", "AppCacheAccess")
    world.grant("batch-jobs", "BatchAccess", TargetSecurityGroupIds=[world.cache_group], SourceCidrIp=REPORTS_CIDR)
    gained = world.add_group_to_cache("cache-monitoring")

    status, out, _ = command(capsys, "audit", *TABLE)
    assert status == 1
    findings = [line for line in out.splitlines() if line.startswith("  uncovered")]
    assert findings == [
        f"  uncovered    ReplicationGroupId 'app-cache': the cache now has security group "
        f"{gained}, which cache-access (CREATE_COMPLETE) AppCacheAccess's rules do not reach; its next Update "
        "follows the cache's groups"
    ]


def test_a_revoke_lease_past_its_expiry_is_reported_stale(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world.grant("cache-access", "AppCacheAccess")
    (entry,) = [
        item for item in ledger_items(world.moto) if item["sk"]["S"] == "rule" and world.cache_group in item["pk"]["S"]
    ]
    world.moto.client("dynamodb").update_item(
        TableName=LEDGER_TABLE,
        Key={"pk": entry["pk"], "sk": entry["sk"]},
        UpdateExpression="SET lease_until = :past, lease_holder = :h",
        ExpressionAttributeValues={":past": {"N": "1000"}, ":h": {"S": "0" * 32}},
    )
    status, out, _ = command(capsys, "audit", *TABLE, "--format", "json")
    assert status == 1
    report = json.loads(out)
    assert [(f["kind"], f["key"]) for f in report["findings"]] == [
        ("stale-lease", entry["pk"]["S"].removeprefix("rule#"))
    ]


def test_an_ec2_classic_ingress_revoked_by_hand_is_drift_repaired_and_its_orphan_swept(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same checks for a cache security group: its ingresses are read from ElastiCache."""
    world.standin.add_group("app-cache-sg")
    for stack, logical_id in (("cache-access", "AppCacheIngress"), ("reports", "ReportsIngress")):
        event = load_event("create.json", StackId=world.stack(stack), LogicalResourceId=logical_id)
        if stack == "reports":
            event["ResourceProperties"] = {**event["ResourceProperties"], "EC2SecurityGroupName": "reports"}
        assert invoke(event)["Status"] == "SUCCESS"
    elasticache = boto3.client("elasticache")
    elasticache.revoke_cache_security_group_ingress(
        CacheSecurityGroupName="app-cache-sg", EC2SecurityGroupName="app-servers", EC2SecurityGroupOwnerId=ACCOUNT
    )
    world.delete_stack("reports")

    status, out, _ = command(capsys, "audit", *TABLE, "--cache", "app-cache-sg")
    assert status == 1
    assert [line.split()[:2] for line in out.splitlines() if line.startswith(("  drift", "  orphan"))] == [
        ["drift", "CacheSecurityGroupName"],
        ["orphan", "CacheSecurityGroupName"],
    ]
    assert command(capsys, "repair", *TABLE)[1].startswith(f"authorized: classic|app-cache-sg|app-servers|{ACCOUNT}")
    assert command(capsys, "sweep", *TABLE, "--yes")[1].startswith(f"revoked: classic|app-cache-sg|reports|{ACCOUNT}")
    assert world.standin.authorized() == {("app-cache-sg", "app-servers", ACCOUNT)}
    assert command(capsys, "audit", *TABLE)[0] == 0


def test_the_json_and_mermaid_reports_show_who_holds_each_rule(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world.grant("cache-access", "AppCacheAccess")
    world.authorize_by_hand(world.cache_group, BY_HAND_CIDR)

    status, out, _ = command(capsys, "audit", *TABLE, "--format", "json")
    assert status == 0
    (cache,) = json.loads(out)["caches"]
    held = {
        (row["group"], row["source"]): [h["logical_id"] for h in row["held_by"]] or row["origin"]
        for row in cache["rows"]
    }
    assert held == {
        (world.cache_group, f"{world.app}@123456789012"): ["AppCacheAccess"],
        (world.shared_group, f"{world.app}@123456789012"): ["AppCacheAccess"],
        (world.cache_group, BY_HAND_CIDR): "unmanaged",
    }

    status, out, _ = command(capsys, "audit", *TABLE, "--format", "mermaid")
    assert status == 0
    assert out.splitlines() == [
        "flowchart LR",
        '  n0[("app-cache")]',
        f'  n1["{BY_HAND_CIDR}"]',
        '  n1 -->|"6379: unmanaged"| n0',
        f'  n2["{world.app}@123456789012"]',
        '  n2 -->|"6379: cache-access/AppCacheAccess"| n0',
    ]


def test_the_ledger_is_found_from_the_provider_stacks_output_or_the_command_fails_saying_what_to_do(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world.grant("cache-access", "AppCacheAccess")
    template = {
        "Resources": {"Notes": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"LedgerTable": {"Value": LEDGER_TABLE}},
    }
    world.moto.client("cloudformation").create_stack(StackName="cache-sg-ingress", TemplateBody=json.dumps(template))
    status, out, _ = command(capsys, "audit")  # the stack name samconfig.toml deploys, by default
    assert (status, out.splitlines()[-1]) == (0, "No findings.")

    status, out, err = command(capsys, "audit", "--stack", "no-such-provider")
    assert (status, out) == (2, "")
    assert "no stack 'no-such-provider' in this account and region" in err
    status, _, err = command(capsys, "audit", "--table", "no-such-table")
    assert status == 2
    assert "could not list the caches" in err


def test_the_command_runs_as_a_process_with_the_exit_status_of_its_findings(world: OperateWorld) -> None:
    world.grant("reports", "ReportsAccess", SourceCidrIp=REPORTS_CIDR)
    world.delete_stack("reports")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "handler")}
    result = subprocess.run(
        [sys.executable, "-m", "cache_ingress.cli", "audit", *TABLE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "orphan       ReplicationGroupId 'app-cache': reports (DELETE_COMPLETE) ReportsAccess" in result.stdout


# -- the scheduled check, in the function ---------------------------------------------------------------------

SCHEDULED = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-06T06:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/cache-sg-ingress-DriftCheckRule-EXAMPLE"],
    "detail": {},
}


@pytest.fixture
def repair_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPAIR_DRIFT", "true")


def scheduled(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> tuple[dict[str, Any], list[str]]:
    """One scheduled event through the real lambda_handler: its metrics and the function's logged messages.

    The event is given a ResponseURL (a scheduled event has none): the check must answer nobody even then.
    """
    capfd.readouterr()
    caplog.clear()
    delivery = handle({**SCHEDULED, "ResponseURL": "https://example.invalid/"})
    metrics = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert delivery.puts == []
    logged = [record.getMessage() for record in caplog.records if record.name == "cache-sg-ingress"]
    return metrics[-1], logged


def test_the_scheduled_check_counts_and_logs_findings_and_changes_nothing(
    world: OperateWorld, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    operate_world.stage_everything(world)
    rules_before = world.rules(world.cache_group) | world.rules(world.shared_group)
    metrics, logged = scheduled(capfd, caplog)
    assert {name: metrics[name] for name in ("DriftedRules", "OrphanedHolders", "UncoveredGroups")} == {
        "DriftedRules": [1.0],
        "OrphanedHolders": [1.0],
        "UncoveredGroups": [1.0],
    }
    assert sum(message.startswith(("drift: ", "orphan: ", "uncovered: ")) for message in logged) == 3
    assert not any(message.startswith("repair: ") for message in logged)
    assert world.rules(world.cache_group) | world.rules(world.shared_group) == rules_before


def test_the_scheduled_check_with_repair_drift_repairs_it_and_never_sweeps(
    world: OperateWorld, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, repair_drift: None
) -> None:
    operate_world.stage_everything(world)
    metrics, logged = scheduled(capfd, caplog)
    assert metrics["DriftedRules"] == [1.0]
    assert any(message.startswith("repair: authorized: ") for message in logged)
    assert (world.app, 6379) in world.rules(world.shared_group)
    assert (REPORTS_CIDR, 6379) in world.rules(world.cache_group)  # the orphan's rules wait for a person


def _shape(text: str) -> list[str]:
    """The lines, with moto's ids (new on each run, so sorted differently) made alike, in order."""
    return sorted(re.sub(r"\b(sgr?)-[0-9a-f]{17}\b", r"\1-*", line) for line in text.strip().splitlines())


def test_make_audit_prints_what_the_operating_page_shows() -> None:
    result = run_make("audit")
    assert result.returncode == 0, result.stderr
    recipe, printed = result.stdout.split("\n", 1)
    assert recipe.endswith("/python -m offline.audit")
    page = (ROOT / "docs" / "operating.md").read_text().split("## The operator commands", 1)[1]
    shown = re.search(r"```text\n(.*?)```", page, re.DOTALL)
    picture = re.search(r"```mermaid\n(.*?)```", page, re.DOTALL)
    assert shown is not None
    assert picture is not None
    assert _shape(shown[1]) == _shape(printed)
    mermaid = printed.split("--format mermaid\n", 1)[1].split("\n(exit status", 1)[0]
    assert _shape(picture[1]) == _shape(mermaid)
