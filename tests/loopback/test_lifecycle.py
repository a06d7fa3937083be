"""The real lambda_handler over real HTTP: ElastiCache is the loopback stand-in, CloudFormation the https receiver."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

import app
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.support import LambdaContext, load_event, run_module

ROOT = Path(__file__).resolve().parents[2]
OLD = ("app-cache-sg", "app-servers", "123456789012")
NEW = ("app-cache-sg", "batch workers / nightly", "210987654321")
OLD_ID = "cache-sg-ingress:app-cache-sg:123456789012:app-servers"
NEW_ID = "cache-sg-ingress:app-cache-sg:210987654321:batch workers / nightly"


@pytest.fixture
def aws(standin: ElastiCacheStandIn) -> ElastiCacheStandIn:
    standin.add_group("app-cache-sg")
    return standin


def invoke(receiver: ResponseReceiver, event: dict[str, Any], seconds: float = 30.0) -> dict[str, Any]:
    event = {**event, "ResponseURL": receiver.new_url()}
    app.lambda_handler(event, LambdaContext(seconds))
    return receiver.answer(event["ResponseURL"])


def send(receiver: ResponseReceiver, name: str, seconds: float = 30.0, **changes: Any) -> dict[str, Any]:
    return invoke(receiver, load_event(name, **changes), seconds)


def test_full_lifecycle_with_replacement(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    aws.settle_delay = 0.3
    created = send(receiver, "create.json")
    assert (created["Status"], created["PhysicalResourceId"], created["Data"]["Status"]) == (
        "SUCCESS",
        OLD_ID,
        "authorized",
    )
    assert aws.authorized() == {OLD}

    kept = send(receiver, "update.json")
    assert (kept["Status"], kept["PhysicalResourceId"]) == ("SUCCESS", OLD_ID)

    replaced = send(receiver, "update-replace.json")
    assert (replaced["Status"], replaced["PhysicalResourceId"]) == ("SUCCESS", NEW_ID)
    assert aws.authorized() == {OLD, NEW}

    cleanup = send(receiver, "delete.json")
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
        deleted = send(receiver, "delete.json", PhysicalResourceId=NEW_ID)
        assert (deleted["Status"], deleted["PhysicalResourceId"]) == ("SUCCESS", NEW_ID)
        assert aws.ingress_table() == []


def test_create_uses_one_authorize_and_a_describe_per_poll(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    aws.settle_delay = 0.5
    assert send(receiver, "create.json")["Status"] == "SUCCESS"
    actions = [c.action for c in aws.calls()]
    assert actions == [
        "AuthorizeCacheSecurityGroupIngress",
        "DescribeCacheSecurityGroups",
        "DescribeCacheSecurityGroups",
    ]


def test_create_needs_no_describe_when_authorize_already_settled(
    aws: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
    assert send(receiver, "create.json")["Status"] == "SUCCESS"
    assert [c.action for c in aws.calls()] == ["AuthorizeCacheSecurityGroupIngress"]


def test_create_rollback_delete_takes_back_the_authorization(
    aws: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
    aws.settle_delay = 30  # never settles within this Create's time
    created = send(receiver, "create.json", seconds=2.0)
    assert created["Status"] == "FAILED"
    assert created["PhysicalResourceId"] == OLD_ID
    aws.settle_delay = 0
    rollback = send(receiver, "delete.json", PhysicalResourceId=created["PhysicalResourceId"])
    assert rollback["Status"] == "SUCCESS"
    assert aws.ingress_table() == []


def test_update_rollback_after_another_resource_failed(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    assert send(receiver, "create.json")["Status"] == "SUCCESS"
    replaced = send(receiver, "update-replace.json")
    assert replaced["Status"] == "SUCCESS"
    # Another resource fails: CloudFormation sends Update back to the old properties with the new id,
    # then, in cleanup, Delete of the new id.
    new_id = replaced["PhysicalResourceId"]
    back = send(receiver, "update.json", PhysicalResourceId=new_id)
    assert (back["Status"], back["PhysicalResourceId"]) == ("SUCCESS", OLD_ID)
    assert send(receiver, "delete.json", PhysicalResourceId=new_id)["Status"] == "SUCCESS"
    assert aws.authorized() == {OLD}


def test_update_failing_in_elasticache_leaves_the_old_ingress(
    aws: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
    assert send(receiver, "create.json")["Status"] == "SUCCESS"
    failed = send(
        receiver,
        "update-replace.json",
        ResourceProperties={"CacheSecurityGroupName": "missing-group", "EC2SecurityGroupName": "x"},
    )
    assert failed["Status"] == "FAILED"
    assert "CacheSecurityGroupNotFound" in failed["Reason"]
    assert failed["PhysicalResourceId"] == OLD_ID
    back = send(receiver, "update.json")  # CloudFormation's rollback Update
    assert (back["Status"], back["PhysicalResourceId"]) == ("SUCCESS", OLD_ID)
    assert aws.authorized() == {OLD}


def test_a_burst_of_throttling_is_retried(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    aws.throttle_next(4)
    answer = send(receiver, "create.json")
    assert answer["Status"] == "SUCCESS"
    codes = [c.error for c in aws.calls("AuthorizeCacheSecurityGroupIngress")]
    assert codes == ["Throttling"] * 4 + [None]


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(aws: ElastiCacheStandIn, receiver: ResponseReceiver, status: int) -> None:
    aws.fail_next(2, status)
    assert send(receiver, "create.json")["Status"] == "SUCCESS"
    assert aws.authorized() == {OLD}


def test_a_dropped_connection_is_retried(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    aws.drop_next(1)
    assert send(receiver, "create.json")["Status"] == "SUCCESS"
    assert aws.authorized() == {OLD}


def test_api_latency_past_the_deadline_still_answers_in_time(
    aws: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
    aws.set_latency(3.0, {"AuthorizeCacheSecurityGroupIngress"})
    event = load_event("create.json", receiver.new_url())
    started = time.monotonic()
    app.lambda_handler(event, LambdaContext(2.0))
    answer = receiver.answer(event["ResponseURL"])
    answered_after = receiver.puts(event["ResponseURL"])[0].at - started
    assert answered_after < 2.0
    assert answer["Status"] == "FAILED"
    assert "ran out of time" in answer["Reason"]
    assert answer["PhysicalResourceId"] == OLD_ID  # non-empty, and names what may have gone through
    aws.set_latency(0.0)
    assert send(receiver, "delete.json", PhysicalResourceId=answer["PhysicalResourceId"])["Status"] == "SUCCESS"
    assert aws.ingress_table() == []


def test_the_handler_returns_only_after_the_backstop_answer_is_delivered(
    aws: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
    """Lambda freezes the sandbox when the handler returns: a PUT still in flight on the timer's thread would be lost."""
    aws.set_latency(3.2, {"AuthorizeCacheSecurityGroupIngress"})  # the call returns after the backstop fired at 3 s
    receiver.slow_next(1, 0.5)  # and the backstop's PUT is still in flight then
    event = load_event("create.json", receiver.new_url())
    app.lambda_handler(event, LambdaContext(4.0))
    returned = time.monotonic()
    (put,) = receiver.puts(event["ResponseURL"])
    assert put.at <= returned
    assert put.json()["Status"] == "FAILED"


def test_repeated_deliveries_are_harmless(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    event = load_event("create.json")
    first, second = invoke(receiver, event), invoke(receiver, event)
    assert first["Status"] == second["Status"] == "SUCCESS"
    assert first["PhysicalResourceId"] == second["PhysicalResourceId"] == OLD_ID
    assert aws.authorized() == {OLD}


def test_an_account_without_ec2_classic_fails_create_and_passes_rollback(
    aws: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
    aws.classic_enabled = False
    created = send(receiver, "create.json")
    assert created["Status"] == "FAILED"
    assert "retired in August 2023" in created["Reason"]
    assert send(receiver, "delete.json", PhysicalResourceId=created["PhysicalResourceId"])["Status"] == "SUCCESS"


def test_the_answer_is_retried_when_the_receiver_fails(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    receiver.fail_next(2, 503)
    event = load_event("create.json", receiver.new_url())
    app.lambda_handler(event, LambdaContext(30))
    assert receiver.answer(event["ResponseURL"])["Status"] == "SUCCESS"
    assert receiver.attempts(event["ResponseURL"]) == 3


def test_a_refused_answer_is_not_retried(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    receiver.fail_next(1, 403)  # an expired presigned URL: retrying cannot help
    event = load_event("create.json", receiver.new_url())
    app.lambda_handler(event, LambdaContext(30))
    assert receiver.attempts(event["ResponseURL"]) == 1
    assert receiver.puts(event["ResponseURL"]) == []


def test_a_stalled_receiver_never_hangs_the_function(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    receiver.stall_next(10, 30.0)
    event = load_event("create.json", receiver.new_url())
    started = time.monotonic()
    app.lambda_handler(event, LambdaContext(4.0))
    assert time.monotonic() - started < 4.0
    assert 1 <= receiver.attempts(event["ResponseURL"]) <= 5


def test_every_sample_event_gets_one_answer(aws: ElastiCacheStandIn, receiver: ResponseReceiver) -> None:
    for path in sorted((ROOT / "events").glob("*.json")):
        if path.name == "local-env.json" or path.name.startswith("vpc-"):
            continue  # VPC-mode events: tests/e2e/test_vpc_lifecycle.py
        event = load_event(path.name, receiver.new_url())
        app.lambda_handler(event, LambdaContext(10))
        answer = receiver.answer(event["ResponseURL"])
        assert answer["PhysicalResourceId"], path.name
        assert answer["Status"] == ("FAILED" if "bad-input" in path.name else "SUCCESS"), path.name


def test_concurrent_creates_from_threads_each_get_an_answer(
    aws: ElastiCacheStandIn, receiver: ResponseReceiver
) -> None:
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
    assert result.stdout.count('"Status": "SUCCESS"') == 12  # six steps per mode
    assert "Lifecycle complete" in result.stdout


def test_make_invoke_prints_the_answer_and_fails_on_failed() -> None:
    ok = run_module("offline.invoke", "events/create.json", "--settle", "0")
    assert ok.returncode == 0, ok.stderr
    assert '"PhysicalResourceId": "cache-sg-ingress:app-cache-sg:123456789012:app-servers"' in ok.stdout
    bad = run_module("offline.invoke", "events/create-bad-input.json")
    assert bad.returncode == 1
    assert "did you mean EC2SecurityGroupOwnerId?" in bad.stdout
