"""``cache-ingress sweep`` and ``repair`` attacked: they never take what a live holder or a person holds, nor make a
rule no holder holds, whatever state the holders' stacks are in and whatever EC2's reads lag.

The world of tests/loopback/test_operate.py: holders made by the real handler in stacks moto's CloudFormation
knows; the command run for real; EC2 behind its front (read lag); what AWS holds read from moto.
"""

from __future__ import annotations

from typing import Any

import pytest
from moto.cloudformation.models import cloudformation_backends

from cache_ingress import cli, remedy
from offline import operate_world
from offline.ledger_table import LEDGER_TABLE
from offline.moto_backend import MotoBackend
from offline.operate_world import REPORTS_CIDR, OperateWorld
from offline.standin import ElastiCacheStandIn
from tests.support import Servers, invoke

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
    release = remedy.release_rule
    joined: list[Any] = []

    def join_then_release(*args: Any, **kwargs: Any) -> bool:
        if not joined:
            joined.append(world.grant("late-comer", "LateAccess", SourceCidrIp=REPORTS_CIDR))
        return release(*args, **kwargs)

    monkeypatch.setattr(remedy, "release_rule", join_then_release)
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
