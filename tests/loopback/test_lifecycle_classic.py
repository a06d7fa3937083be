"""The real lambda_handler over real HTTP: ElastiCache is the loopback stand-in, CloudFormation the https receiver."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from offline.demo import RULES_HEADING
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.support import assert_failed, assert_success, handle, invoke, load_event, run_make, run_module

ROOT = Path(__file__).resolve().parents[2]
OLD = ("app-cache-sg", "app-servers", "123456789012")
NEW = ("app-cache-sg", "batch workers / nightly", "210987654321")
OLD_ID = "cache-sg-ingress:app-cache-sg:123456789012:app-servers"
NEW_ID = "cache-sg-ingress:app-cache-sg:210987654321:batch workers / nightly"


@pytest.fixture
def aws(standin: ElastiCacheStandIn) -> ElastiCacheStandIn:
    standin.add_group("app-cache-sg")
    return standin


def test_full_lifecycle_with_replacement(aws: ElastiCacheStandIn) -> None:
    aws.settle_delay = 0.3
    created = invoke(load_event("create.json"))
    assert (created["Status"], created["PhysicalResourceId"], created["Data"]["Status"]) == (
        "SUCCESS",
        OLD_ID,
        "authorized",
    )
    assert aws.authorized() == {OLD}

    kept = invoke(load_event("update.json"))
    assert (kept["Status"], kept["PhysicalResourceId"]) == ("SUCCESS", OLD_ID)

    replaced = invoke(load_event("update-replace.json"))
    assert (replaced["Status"], replaced["PhysicalResourceId"]) == ("SUCCESS", NEW_ID)
    assert aws.authorized() == {OLD, NEW}

    cleanup = invoke(load_event("delete.json"))
    assert (cleanup["Status"], cleanup["PhysicalResourceId"]) == ("SUCCESS", OLD_ID)
    assert aws.ingress_table() == [
        {
            "CacheSecurityGroupName": NEW[0],
            "EC2SecurityGroupName": NEW[1],
            "EC2SecurityGroupOwnerId": NEW[2],
            "Status": "authorized",
        }
    ]

    for _ in range(2):  # stack delete, then the same Delete delivered again
        deleted = invoke(load_event("delete.json", PhysicalResourceId=NEW_ID))
        assert (deleted["Status"], deleted["PhysicalResourceId"]) == ("SUCCESS", NEW_ID)
        assert aws.ingress_table() == []


def test_create_uses_one_authorize_and_a_describe_per_poll(aws: ElastiCacheStandIn) -> None:
    aws.settle_delay = 0.5
    assert invoke(load_event("create.json"))["Status"] == "SUCCESS"
    actions = [c.action for c in aws.calls()]
    assert actions == [
        "AuthorizeCacheSecurityGroupIngress",
        "DescribeCacheSecurityGroups",
        "DescribeCacheSecurityGroups",
    ]


def test_create_needs_no_describe_when_authorize_already_settled(aws: ElastiCacheStandIn) -> None:
    assert invoke(load_event("create.json"))["Status"] == "SUCCESS"
    assert [c.action for c in aws.calls()] == ["AuthorizeCacheSecurityGroupIngress"]


def test_create_rollback_delete_takes_back_the_authorization(aws: ElastiCacheStandIn) -> None:
    aws.settle_delay = 30  # never settles within this Create's time
    created = invoke(load_event("create.json"), seconds=2.0)
    assert created["Status"] == "FAILED"
    assert created["PhysicalResourceId"] == OLD_ID
    aws.settle_delay = 0
    rollback = invoke(load_event("delete.json", PhysicalResourceId=created["PhysicalResourceId"]))
    assert rollback["Status"] == "SUCCESS"
    assert aws.ingress_table() == []


def test_update_rollback_after_another_resource_failed(aws: ElastiCacheStandIn) -> None:
    assert invoke(load_event("create.json"))["Status"] == "SUCCESS"
    replaced = invoke(load_event("update-replace.json"))
    assert replaced["Status"] == "SUCCESS"
    # Another resource fails: CloudFormation sends Update back to the old properties with the new id,
    # then, in cleanup, Delete of the new id.
    new_id = replaced["PhysicalResourceId"]
    back = invoke(load_event("update.json", PhysicalResourceId=new_id))
    assert (back["Status"], back["PhysicalResourceId"]) == ("SUCCESS", OLD_ID)
    assert invoke(load_event("delete.json", PhysicalResourceId=new_id))["Status"] == "SUCCESS"
    assert aws.authorized() == {OLD}


def test_update_failing_in_elasticache_leaves_the_old_ingress(aws: ElastiCacheStandIn) -> None:
    assert invoke(load_event("create.json"))["Status"] == "SUCCESS"
    failed = invoke(
        load_event(
            "update-replace.json",
            ResourceProperties={"CacheSecurityGroupName": "missing-group", "EC2SecurityGroupName": "x"},
        )
    )
    assert_failed(failed, "CacheSecurityGroupNotFound")
    assert failed["PhysicalResourceId"] == OLD_ID
    back = invoke(load_event("update.json"))  # CloudFormation's rollback Update
    assert (back["Status"], back["PhysicalResourceId"]) == ("SUCCESS", OLD_ID)
    assert aws.authorized() == {OLD}


def test_a_burst_of_throttling_is_retried(aws: ElastiCacheStandIn) -> None:
    aws.throttle_next(4)
    answer = invoke(load_event("create.json"))
    assert answer["Status"] == "SUCCESS"
    codes = [c.error for c in aws.calls("AuthorizeCacheSecurityGroupIngress")]
    assert codes == ["Throttling"] * 4 + [None]


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(aws: ElastiCacheStandIn, status: int) -> None:
    aws.fail_next(2, status)
    assert invoke(load_event("create.json"))["Status"] == "SUCCESS"
    assert aws.authorized() == {OLD}


def test_a_dropped_connection_is_retried(aws: ElastiCacheStandIn) -> None:
    aws.drop_next(1)
    assert invoke(load_event("create.json"))["Status"] == "SUCCESS"
    assert aws.authorized() == {OLD}


def test_the_handler_returns_only_after_the_backstop_answer_is_delivered(
    aws: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
    """Lambda freezes the sandbox when the handler returns: a PUT still in flight on the timer's thread would be lost.

    The backstop answers only for a call no bound cuts: here the Authorize hangs in the client before it is
    sent (resolving the endpoint's name, say, which no read timeout covers) past the deadline and the time a
    change may take, then fails. The sandbox is warm, so the hang starts at once.
    """
    import app

    app.modes()  # the sandbox's clients, made
    client = app.api().client
    started = time.monotonic()

    def hang_then_fail(**_: object) -> None:
        # 6 s: the deadline is 4.5 s, a change must end by 5.15 s, the backstop answers at 5.4 s; this call
        # hangs until 5.5 s, while that answer's PUT is still in flight...
        time.sleep(max(0.0, started + 5.5 - time.monotonic()))
        raise EndpointConnectionError(endpoint_url="https://elasticache.us-east-1.amazonaws.com/")

    receiver.slow_next(1, 0.2)  # ...for it takes 0.2 s
    hook = "before-call.elasticache.AuthorizeCacheSecurityGroupIngress"
    client.meta.events.register_first(hook, hang_then_fail)
    try:
        delivery = handle(load_event("create.json"), seconds=6.0)
    finally:
        client.meta.events.unregister(hook, hang_then_fail)
    (put,) = delivery.puts
    assert put.at <= delivery.returned
    assert_failed(put.json(), "ran out of time")
    assert aws.calls("AuthorizeCacheSecurityGroupIngress") == []


def test_repeated_deliveries_are_harmless(aws: ElastiCacheStandIn) -> None:
    event = load_event("create.json")
    first, second = invoke(event), invoke(event)
    assert first["Status"] == second["Status"] == "SUCCESS"
    assert first["PhysicalResourceId"] == second["PhysicalResourceId"] == OLD_ID
    assert aws.authorized() == {OLD}


def test_an_account_without_ec2_classic_fails_create_and_passes_rollback(aws: ElastiCacheStandIn) -> None:
    aws.classic_enabled = False
    created = invoke(load_event("create.json"))
    assert_failed(created, "retired in August 2023")
    assert invoke(load_event("delete.json", PhysicalResourceId=created["PhysicalResourceId"]))["Status"] == "SUCCESS"


def test_the_answer_is_retried_when_the_receiver_fails(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    receiver.fail_next(2, 503)
    delivery = handle(load_event("create.json"))
    assert_success(delivery.answer())
    assert delivery.attempts == 3


def test_a_refused_answer_is_not_retried(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    receiver.fail_next(1, 403)  # an expired presigned URL: retrying cannot help
    delivery = handle(load_event("create.json"))
    assert delivery.attempts == 1
    assert delivery.puts == []


def test_a_stalled_receiver_never_hangs_the_function(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    receiver.stall_next(10, 30.0)
    delivery = handle(load_event("create.json"), seconds=4.0)
    assert delivery.returned - delivery.started < 4.0
    assert 1 <= delivery.attempts <= 5


def test_every_sample_event_gets_one_answer(aws: ElastiCacheStandIn) -> None:
    for path in sorted((ROOT / "events").glob("*.json")):
        if path.name == "local-env.json" or path.name.startswith("vpc-"):
            continue  # VPC-mode events: tests/loopback/test_lifecycle_vpc.py
        answer = invoke(load_event(path.name), seconds=10)
        assert answer["PhysicalResourceId"], path.name
        assert answer["Status"] == ("FAILED" if "bad-input" in path.name else "SUCCESS"), path.name


def test_concurrent_creates_from_threads_each_get_an_answer(aws: ElastiCacheStandIn) -> None:
    """The stand-in serves several callers at once (the benchmarks rely on it)."""
    client = boto3.client("elasticache")
    names = [f"group-{n}" for n in range(8)]
    threads = [
        threading.Thread(
            target=client.authorize_cache_security_group_ingress,
            kwargs={
                "CacheSecurityGroupName": "app-cache-sg",
                "EC2SecurityGroupName": name,
                "EC2SecurityGroupOwnerId": "123456789012",
            },
        )
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {row["EC2SecurityGroupName"] for row in aws.ingress_table()} == set(names)


def test_make_demo_runs_the_whole_lifecycle() -> None:
    result = run_module("offline.demo", "--settle", "0.1")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) <= 120, "the default output fits a screen per mode"
    assert result.stdout.count("   received: SUCCESS, id ") == 13  # eleven VPC steps, two EC2-Classic
    assert result.stdout.rstrip().endswith("Lifecycle complete: every answer was what CloudFormation expects.")
    vpc, classic = result.stdout.split("== EC2-Classic mode")  # today's caches first, EC2-Classic after, short
    assert vpc.startswith("== VPC mode")
    assert "cache-sg-ingress:app-cache-sg:123456789012:app-servers" in classic
    assert '"Status": "SUCCESS"' not in result.stdout, "full bodies only behind --verbose"
    # Two stacks share one rule: both hold it, and the first one's Delete leaves it with the second.
    shared, first_gone = vpc.split("-- 2. Create: stack reports")[1].split("-- 3. Delete")
    assert "held by stack cache-access, resource AppCacheAccess; stack reports, resource ReportsCacheAccess" in shared
    assert (
        "app-cache <- app-servers, tcp/6379: made, held by stack reports, resource ReportsCacheAccess\n"
        in (first_gone.split("-- 4. Delete")[0])
    )
    # A serverless cache's two ports, a CIDR source: each rule shown.
    assert "app-cache <- app-servers, tcp/6380: made" in vpc
    assert "shared-clients <- 10.20.0.0/16, tcp/6379: made" in vpc
    # The MemoryDB grant: its rule is shown with its ledger entry once made, and gone after its Delete.
    granted, taken_back = vpc.split("-- 8. Create: the MemoryDB cluster app-store")[1].split("-- 9. Delete")
    assert "asked:    MemoryDBClusterName=app-store, SourceSecurityGroupId=sg-" in granted  # what names the cache
    assert "shared-clients <- app-servers, tcp/6379: made, held by stack cache-access, resource AppStoreAccess" in (
        granted
    )
    assert f"{RULES_HEADING}:\n     (empty)" in taken_back.split("-- 10.")[0]


def test_make_demo_verbose_shows_the_full_bodies_but_never_the_response_url() -> None:
    result = run_module("offline.demo", "--settle", "0.1", "--mode", "classic", "--verbose")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count('"Status": "SUCCESS"') == 2
    assert '"CacheSecurityGroupArn": "arn:aws:elasticache:us-east-1:123456789012:securitygroup:app-cache-sg"' in (
        result.stdout
    )
    assert "ResponseURL" not in result.stdout


def test_make_invoke_prints_the_answer_and_fails_on_failed() -> None:
    ok = run_module("offline.invoke", "events/create.json", "--settle", "0")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["PhysicalResourceId"] == "cache-sg-ingress:app-cache-sg:123456789012:app-servers"
    bad = run_module("offline.invoke", "events/create-bad-input.json")
    assert bad.returncode == 1
    assert "did you mean EC2SecurityGroupOwnerId?" in json.loads(bad.stdout)["Reason"]


def test_make_invoke_stdout_is_the_body_alone_so_it_pipes_into_a_json_tool() -> None:
    """As in docs/developing.md: ``make invoke EVENT=events/create-bad-input.json 2>/dev/null | python -m json.tool``."""
    result = run_make("invoke", "EVENT=events/create-bad-input.json")
    answer = json.loads(result.stdout)  # the whole of stdout, not a line of it
    assert (answer["Status"], answer["PhysicalResourceId"]) == (
        "FAILED",
        "AppCacheIngress-6c1e1b6e-0006-4b4e-9a51-badinput0006",
    )
    assert "did you mean EC2SecurityGroupOwnerId?" in answer["Reason"]
    assert '"message":"request failed"' in result.stderr  # the function's own log line, kept off stdout
    assert result.returncode == 2  # make's status when the recipe exits 1, as docs/developing.md says
