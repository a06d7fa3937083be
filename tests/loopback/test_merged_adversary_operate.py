"""``cache-ingress sweep`` and ``repair`` attacked: they never take what a live holder or a person holds, nor make a
rule no holder holds, whatever state the holders' stacks are in and whatever EC2's reads lag.

The world of tests/loopback/test_operate.py: holders made by the real handler in stacks moto's CloudFormation
knows; the command run for real; EC2 behind its front (read lag); what AWS holds read from moto.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pytest
from moto.cloudformation.models import cloudformation_backends

import app
from cache_ingress import cli, ledger
from cache_ingress.errors import OutOfTime
from offline import operate_world
from offline.harness import LambdaContext
from offline.ledger_table import LEDGER_TABLE
from offline.moto_backend import MotoBackend
from offline.operate_world import REPORTS_CIDR, OperateWorld
from offline.standin import ElastiCacheStandIn
from tests.loopback.test_operate import SCHEDULED, create_reports_access
from tests.support import Servers, handle, invoke

TABLE = ["--table", LEDGER_TABLE]


@pytest.fixture
def world(moto: MotoBackend, standin: ElastiCacheStandIn) -> OperateWorld:
    return operate_world.build(moto, standin, invoke)


def command(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    status = cli.main(list(argv))
    return status, capsys.readouterr().out


def holder_stacks(moto: MotoBackend) -> set[str]:
    items = moto.client("dynamodb").scan(TableName=LEDGER_TABLE, ConsistentRead=True)["Items"]
    return {item["stack_id"]["S"] for item in items if item["sk"]["S"].startswith("holder#")}


def set_status(stack_id: str, status: str) -> None:
    """The stack as CloudFormation would describe it mid-operation or after a failed one."""
    region = stack_id.split(":")[3]
    account = stack_id.split(":")[4]
    cloudformation_backends[account][region].stacks[stack_id].status = status


def test_a_stack_name_reused_after_a_delete_behind_the_back_keeps_the_new_stacks_access(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """cache-access deleted behind its resource's back, then made again under the same name with the same resource:
    the old holder is swept, the new one (another stack id) keeps its rules."""
    world.grant("cache-access", "AppCacheAccess")
    old = world.stacks["cache-access"]
    world.delete_stack("cache-access")
    new = world.stack("cache-access")
    assert new != old
    world.grant("cache-access", "AppCacheAccess")

    status, out = command(capsys, "sweep", *TABLE, "--yes")
    assert status == 0
    assert out.count("let go: ") == 2
    assert "revoked" not in out
    assert (world.app, 6379) in world.rules(world.cache_group)
    assert (world.app, 6379) in world.rules(world.shared_group)
    assert holder_stacks(world.moto) == {new}


@pytest.mark.parametrize(
    "status",
    [
        "UPDATE_IN_PROGRESS",
        "UPDATE_ROLLBACK_IN_PROGRESS",
        "UPDATE_ROLLBACK_FAILED",
        "DELETE_IN_PROGRESS",
        "DELETE_FAILED",
    ],
)
def test_a_holder_whose_stack_is_mid_operation_or_failed_is_never_swept(
    world: OperateWorld, capsys: pytest.CaptureFixture[str], status: str
) -> None:
    world.grant("reports", "ReportsAccess", SourceCidrIp=REPORTS_CIDR)
    set_status(world.stacks["reports"], status)
    assert command(capsys, "sweep", *TABLE, "--yes")[1].splitlines() == ["nothing to sweep"]
    assert (REPORTS_CIDR, 6379) in world.rules(world.cache_group)
    assert holder_stacks(world.moto) == {world.stacks["reports"]}


def test_a_holder_that_joins_between_the_audits_read_and_the_sweeps_write_keeps_the_rule(
    world: OperateWorld, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """reports is gone and alone holds its rules when the sweep reads; a new stack declares the same rules just
    before the sweep lets go of them: they stay, held by the newcomer."""
    world.grant("reports", "ReportsAccess", SourceCidrIp=REPORTS_CIDR)
    world.delete_stack("reports")
    release = ledger.release_rule
    joined: list[Any] = []

    def join_then_release(*args: Any, **kwargs: Any) -> bool:
        if not joined:
            joined.append(world.grant("late-comer", "LateAccess", SourceCidrIp=REPORTS_CIDR))
        return release(*args, **kwargs)

    monkeypatch.setattr("cache_ingress.remedy.release_rule", join_then_release)
    status, out = command(capsys, "sweep", *TABLE, "--yes")
    assert status == 0
    assert joined
    assert out.count("let go: ") == 2
    assert "revoked" not in out
    assert (REPORTS_CIDR, 6379) in world.rules(world.cache_group)
    assert (REPORTS_CIDR, 6379) in world.rules(world.shared_group)
    assert holder_stacks(world.moto) == {world.stacks["late-comer"]}


def test_drift_a_lagging_read_shows_is_repaired_without_a_second_rule_nor_one_nobody_holds(
    world: OperateWorld, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    """EC2's reads 30 s behind: a rule just made looks missing (drift), and repair's Authorize answers Duplicate.
    No second rule is made, and nothing the ledger does not hold."""
    servers.ec2.set_read_lag(30.0)
    world.grant("cache-access", "AppCacheAccess")
    before = {g: world.rules(g) for g in (world.cache_group, world.shared_group)}
    status, out = command(capsys, "repair", *TABLE)
    assert status == 0, out
    assert [line.split(":")[0] for line in out.splitlines()] == ["already present"] * 2  # the lag showed drift
    assert {g: world.rules(g) for g in (world.cache_group, world.shared_group)} == before
    for group in (world.cache_group, world.shared_group):
        assert len([r for r in world.moto.ingress(group) if r[0] == world.app]) == 1
    servers.ec2.set_read_lag(0.0)
    status, out = command(capsys, "audit", *TABLE)
    assert (status, out.splitlines()[-1]) == (0, "No findings."), out


def test_the_scheduled_repair_through_throttling_repairs_only_what_a_holder_holds_and_answers_nobody(
    world: OperateWorld, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EC2 and DynamoDB each throttle their next calls: the check, with RepairDrift, retries through it, repairs the
    rule a person revoked, leaves the orphan's rules to a person, and PUTs nothing anywhere."""
    monkeypatch.setenv("REPAIR_DRIFT", "true")
    operate_world.stage_everything(world)
    servers.ec2.throttle_next(4)
    servers.dynamodb.throttle_next(4)
    delivery = handle({**SCHEDULED, "ResponseURL": "https://example.invalid/"})
    assert delivery.puts == []
    assert (world.app, 6379) in world.rules(world.shared_group)
    assert (REPORTS_CIDR, 6379) in world.rules(world.cache_group)
    assert len([r for r in world.moto.ingress(world.shared_group) if r[0] == world.app]) == 1


def test_the_scheduled_check_in_a_throttling_storm_ends_within_its_invocation_and_changes_nothing(
    world: OperateWorld, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EC2 throttles every call for longer than the invocation: the check gives up within the invocation's time
    (Lambda retries a failed scheduled event), and nothing reaches EC2 as a write."""
    monkeypatch.setenv("REPAIR_DRIFT", "true")
    operate_world.stage_everything(world)
    servers.ec2.reset()
    servers.ec2.throttle_for(60.0)
    started = time.monotonic()
    with contextlib.suppress(OutOfTime):  # a failed check is retried by Lambda; a result would do as well
        app.lambda_handler(dict(SCHEDULED), LambdaContext(5.0))
    assert time.monotonic() - started < 5.0
    servers.ec2.reset()
    assert servers.ec2.writes() == []
    assert (world.app, 6379) not in world.rules(world.shared_group)


def test_a_holder_whose_stack_is_in_another_region_of_this_account_is_never_swept(
    world: OperateWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """CloudFormation here would say a us-west-2 stack does not exist, alive: it is not visible, never gone."""
    elsewhere = "arn:aws:cloudformation:us-west-2:123456789012:stack/west/0e0e0e0e-0c1d-11ef-9a0b-0a1b2c3d4e5f"
    create_reports_access(world, elsewhere, "WestAccess")
    assert command(capsys, "sweep", *TABLE, "--yes")[1].splitlines() == ["nothing to sweep"]
    assert (REPORTS_CIDR, 6379) in world.rules(world.cache_group)
    assert holder_stacks(world.moto) == {elsewhere}


@pytest.mark.parametrize(
    "event",
    [None, [], "Scheduled Event", 3, {}, {"source": "aws.events"}, {"detail-type": "Scheduled Event"}],
)
def test_an_odd_event_is_neither_a_check_nor_a_request_and_crashes_nothing(
    world: OperateWorld, servers: Servers, event: Any
) -> None:
    """No call to AWS, no exception out of the handler."""
    calls = len(servers.ec2.calls()) + len(servers.dynamodb.calls())
    assert app.lambda_handler(event, LambdaContext(5.0)) is None
    assert len(servers.ec2.calls()) + len(servers.dynamodb.calls()) == calls
