"""The merged product attacked with AWS's real behaviours: late deliveries and a held name resolution, now that the
ledger's DynamoDB calls and the quota read stand beside EC2's.

Patterns as tests/loopback/test_late_delivery.py and test_send_gate.py: the real handler over loopback, the
receiver's signed ResponseURLs, the fronts' call logs (DynamoDB's included) and moto.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

import app
from offline.harness import build_vpc_example
from offline.moto_backend import MotoBackend
from offline.receiver import SigV4
from offline.standin import ElastiCacheStandIn
from tests.loopback.test_send_gate import POLL_LIMIT_S, HeldResolver, poll
from tests.support import Servers, assert_failed, assert_success, handle, invoke, load_event

TOO_LATE = "the request came too late and was not carried out"


@pytest.fixture
def vpc(servers: Servers, moto: MotoBackend, standin: ElastiCacheStandIn) -> dict[str, str]:
    return build_vpc_example(moto, standin)


def every_call(servers: Servers) -> int:
    """Every call the function made to AWS so far, the ledger's DynamoDB calls included."""
    return sum(len(s.calls()) for s in (servers.ec2, servers.memorydb, servers.standin, servers.dynamodb))


def app_rules(moto: MotoBackend, ids: dict[str, str]) -> set[tuple[str, int]]:
    source_group, cache, shared = ids.values()
    return {
        (target, port)
        for target in (cache, shared)
        for source, _owner, port, _description in moto.ingress(target)
        if source == source_group
    }


def signed_ago(seconds: float) -> SigV4:
    return SigV4(signed_at=time.time() - seconds)


@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete"])
def test_an_expired_request_makes_no_call_at_all_not_even_to_the_ledger(
    servers: Servers, vpc: dict[str, str], request_type: str
) -> None:
    """Signed ten minutes ago with a ServiceTimeout of a minute: not a read, not a ledger write, of any kind."""
    created = invoke(load_event("vpc-create.json", vpc))
    assert_success(created)
    rules = app_rules(servers.moto, vpc)
    name = {"Create": "vpc-create.json", "Update": "vpc-update.json", "Delete": "vpc-delete.json"}[request_type]
    event = load_event(name, vpc, PhysicalResourceId=created["PhysicalResourceId"])
    event["ServiceTimeout"] = "60"
    event["ResourceProperties"].pop("ServiceTimeout", None)
    calls = every_call(servers)
    assert_failed(invoke(event, signed=signed_ago(600)), TOO_LATE)
    assert every_call(servers) == calls
    assert app_rules(servers.moto, vpc) == rules


def test_a_url_signed_in_the_future_by_clock_skew_still_bounds_the_work_by_the_invocation(
    servers: Servers, vpc: dict[str, str]
) -> None:
    """CloudFormation's clock ten minutes ahead of Lambda's: the request is served, and within Lambda's time."""
    delivery = handle(load_event("vpc-create.json", vpc), seconds=10.0, signed=SigV4(signed_at=time.time() + 600))
    assert_success(delivery.answer())
    assert len(app_rules(servers.moto, vpc)) == 2


@pytest.fixture
def held_dynamodb(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldResolver]:
    """The ledger's DynamoDB endpoint named ``dynamodb.held.test``: only a change's name resolution is held."""
    held = HeldResolver("dynamodb.held.test", socket.getaddrinfo, changes_only=True)
    monkeypatch.setattr(socket, "getaddrinfo", held.getaddrinfo)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://{held.host}:{urlsplit(servers.dynamodb.url).port}")
    app.ledger.cache_clear()
    app.modes.cache_clear()
    yield held
    held.let_go()
    app.ledger.cache_clear()
    app.modes.cache_clear()


def ledger_writes(servers: Servers) -> list[Any]:
    reads = {"GetItem", "Query", "Scan", "DescribeTable", "BatchGetItem"}
    return [c for c in servers.dynamodb.calls() if c.action not in reads]


def test_a_ledger_write_held_in_name_resolution_past_the_answer_never_lands(
    servers: Servers, vpc: dict[str, str], held_dynamodb: HeldResolver
) -> None:
    """The ledger's first write (the Create's hold: no ledger call comes before it) waits for DynamoDB's name
    past the answer. The Create answers FAILED in time; once the name resolves, no ledger write
    lands, and no rule is left in EC2."""
    servers.receiver.reset()

    def watch() -> None:
        with contextlib.suppress(AssertionError):
            poll(lambda: bool(servers.receiver.puts()))
        held_dynamodb.release.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    delivery = handle(load_event("vpc-create.json", vpc), seconds=4.0)
    answer = delivery.answer()
    assert_failed(answer, "ran out of time")
    (put,) = delivery.puts
    assert put.at - delivery.started < 4.0
    watcher.join(POLL_LIMIT_S + 1)
    held_dynamodb.let_go()
    assert held_dynamodb.asked >= 1  # a ledger write was held there
    assert ledger_writes(servers) == []
    assert app_rules(servers.moto, vpc) == set()


def holder_stacks(moto: MotoBackend) -> set[str]:
    from offline.ledger_table import LEDGER_TABLE

    items = moto.client("dynamodb").scan(TableName=LEDGER_TABLE, ConsistentRead=True)["Items"]
    return {item["stack_id"]["S"] for item in items if item["sk"]["S"].startswith("holder#")}


def test_a_rule_a_lagging_read_counts_as_there_but_gone_meets_the_limit_with_the_right_reason_and_holds_nothing(
    servers: Servers, vpc: dict[str, str]
) -> None:
    """Stack A's rule into the cache's group is revoked by hand, and a person fills the freed place, while EC2's
    reads still show the group as it was: stack B's Create of the same rule counts it as there (no room needed),
    and its Authorize meets the limit. B's answer names the group and the limit; B holds nothing after its
    rollback Delete; A's hold, the person's rule and the other group's rule stand."""
    source, cache_group, shared = vpc.values()
    a = load_event("vpc-create.json", vpc)
    assert_success(invoke(a))
    moto_ec2 = servers.moto.client("ec2")
    by_hand = 0
    while len(servers.moto.ingress(cache_group)) < 60:
        by_hand += 1
        permission = {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379}
        moto_ec2.authorize_security_group_ingress(
            GroupId=cache_group, IpPermissions=[{**permission, "IpRanges": [{"CidrIp": f"10.99.{by_hand}.0/24"}]}]
        )
    (rule_a,) = [
        r
        for r in moto_ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [cache_group]}])[
            "SecurityGroupRules"
        ]
        if r.get("ReferencedGroupInfo", {}).get("GroupId") == source
    ]
    servers.ec2.set_read_lag(30.0)
    front = boto3.client("ec2", endpoint_url=servers.ec2.url, region_name="us-east-1")
    front.revoke_security_group_ingress(GroupId=cache_group, SecurityGroupRuleIds=[rule_a["SecurityGroupRuleId"]])
    front.authorize_security_group_ingress(
        GroupId=cache_group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "IpRanges": [{"CidrIp": "10.98.0.0/24"}]}
        ],
    )
    b = load_event("vpc-create.json", vpc)
    b["StackId"] = a["StackId"].rsplit("/", 2)[0] + "/stack-b/0b0b0b0b-0c1d-11ef-9a0b-0a1b2c3d4e5f"
    answer = invoke(b)
    assert_failed(answer, f"AuthorizeSecurityGroupIngress failed: security group {cache_group} has no room")
    delete = load_event("vpc-delete.json", vpc, PhysicalResourceId=answer["PhysicalResourceId"])
    delete["StackId"] = b["StackId"]
    assert_success(invoke(delete))
    servers.ec2.set_read_lag(0.0)
    assert holder_stacks(servers.moto) == {a["StackId"]}
    assert (source, 6379) in {(s, p) for s, _o, p, _d in servers.moto.ingress(shared)}
    assert (source, 6379) not in {(s, p) for s, _o, p, _d in servers.moto.ingress(cache_group)}
    assert len(servers.moto.ingress(cache_group)) == 60


@pytest.fixture
def held_service_quotas(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldResolver]:
    """Service Quotas' endpoint named ``quotas.held.test``, whose name does not resolve until the test lets it."""
    held = HeldResolver("quotas.held.test", socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", held.getaddrinfo)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SERVICE_QUOTAS", f"http://{held.host}:{urlsplit(servers.moto.url).port}")
    for made in (app.service_quotas, app.rule_quota, app.modes):
        made.cache_clear()
    yield held
    held.let_go()
    for made in (app.service_quotas, app.rule_quota, app.modes):
        made.cache_clear()


def test_a_quota_read_hung_in_name_resolution_falls_back_to_ec2s_default_and_answers_why_in_time(
    servers: Servers, vpc: dict[str, str], held_service_quotas: HeldResolver
) -> None:
    """The cache's group already holds 60 rules, so the grant needs the account's quota; Service Quotas' name never
    resolves. The Create answers in time with the count's reason against EC2's default, and changes nothing."""
    _source, cache_group, _shared = vpc.values()
    moto_ec2 = servers.moto.client("ec2")
    by_hand = 0
    while len(servers.moto.ingress(cache_group)) < 60:
        by_hand += 1
        moto_ec2.authorize_security_group_ingress(
            GroupId=cache_group,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": 6379,
                    "ToPort": 6379,
                    "IpRanges": [{"CidrIp": f"10.99.{by_hand}.0/24"}],
                }
            ],
        )
    delivery = handle(load_event("vpc-create.json", vpc), seconds=8.0)
    answer = delivery.answer()
    assert_failed(answer, f"Security group {cache_group} would hold 61 inbound IPv4 rules")
    assert "past its quota of 60; nothing was changed" in answer["Reason"]
    (put,) = delivery.puts
    assert put.at - delivery.started < 8.0
    assert held_service_quotas.asked >= 1
    assert servers.ec2.writes() == []
    assert app_rules(servers.moto, vpc) == set()
    assert holder_stacks(servers.moto) == set()


@pytest.mark.parametrize("slow", ["dynamodb", "ec2"])
def test_a_delete_signed_nearly_a_service_timeout_ago_on_slow_calls_changes_nothing_after_its_answer(
    servers: Servers, vpc: dict[str, str], slow: str
) -> None:
    """Signed 43 s ago with a ServiceTimeout of 60: some 4 s of work left (after the margin and the clock's skew),
    the ledger or EC2 answering each call in 0.8 s. Whatever the Delete got done, no write reached DynamoDB or EC2 after its answer, and the Delete sent again
    in time finishes the job: no rule, no holder left."""
    created = invoke(load_event("vpc-create.json", vpc))
    assert_success(created)
    delete = load_event("vpc-delete.json", vpc, PhysicalResourceId=created["PhysicalResourceId"])
    delete["ResourceProperties"]["ServiceTimeout"] = "60"
    servers.ec2.reset()
    servers.dynamodb.reset()
    getattr(servers, slow).set_latency(0.8)
    delivery = handle(delete, signed=signed_ago(43))
    (put,) = delivery.puts
    assert put.at - delivery.started < 60 - 43  # before CloudFormation stops waiting
    again = time.monotonic()
    assert_success(invoke(delete, signed=signed_ago(1)))  # slow too: what the first left in flight is logged by its end
    late = [c for c in servers.ec2.writes() + ledger_writes(servers) if put.at <= c.arrived < again]
    assert late == []
    assert app_rules(servers.moto, vpc) == set()
    assert holder_stacks(servers.moto) == set()
