"""Late deliveries, as CloudFormation and AWS would notice them: nothing acts after CloudFormation stopped waiting.

CloudFormation invokes the function asynchronously: Lambda may hold the event in
its queue, or deliver it again, long after CloudFormation signed the
ResponseURL and started waiting. Its ResponseURL says when (SigV4's
``X-Amz-Date`` and ``X-Amz-Expires``, SigV2's ``Expires``); the receiver makes
such URLs here (``signed=``). Each scenario runs the real handler over loopback
and checks what CloudFormation received, what AWS was asked (the fronts' and the
stand-in's call logs) and holds (moto), and what was logged. ``ServiceTimeout``
is read from ResourceProperties or the event's top level, and every FAILED
reason says where the logs are.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest

from offline.harness import LambdaContext
from offline.receiver import SigV2, SigV4
from tests.support import Servers, assert_failed, assert_success, cause, handle, invoke, load_event
from tests.vpc_world import app_rules

TOO_LATE = "the request came too late and was not carried out: CloudFormation stopped waiting for it at"
BAD_SERVICE_TIMEOUT = "ServiceTimeout must be a number of seconds from 1 to 3600"


def aws_calls(servers: Servers) -> int:
    """Every call the function made to AWS so far: EC2, MemoryDB and ElastiCache."""
    return len(servers.ec2.calls()) + len(servers.memorydb.calls()) + len(servers.standin.calls())


def create(vpc: dict[str, str], **properties: str) -> dict[str, Any]:
    event = load_event("vpc-create.json", vpc)
    event["ResourceProperties"].update(properties)
    return event


def signed_ago(seconds: float) -> SigV4:
    return SigV4(signed_at=time.time() - seconds)


def test_a_create_signed_600_s_ago_with_service_timeout_60_changes_nothing_and_says_so(
    servers: Servers, vpc: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Held in Lambda's queue for ten minutes: CloudFormation rolled back nine minutes ago. No call, no rule;
    one FAILED answer for the logs, and a WARNING naming the request type and how late it came."""
    calls = aws_calls(servers)
    caplog.set_level(logging.INFO)
    delivery = handle(create(vpc, ServiceTimeout="60"), signed=signed_ago(600))
    answer = delivery.answer()
    assert_failed(answer, TOO_LATE)
    assert "the resource's ServiceTimeout of 60 s from when CloudFormation signed the request" in answer["Reason"]
    assert aws_calls(servers) == calls
    assert app_rules(servers.moto, vpc) == set()
    (late,) = [r for r in caplog.records if r.levelno == logging.WARNING and "stopped waiting" in r.getMessage()]
    assert late.__dict__["request_type"] == "Create"
    assert 535 <= late.__dict__["late_by_s"] <= 560  # 600 s after signing, 60 s of which CloudFormation waited
    assert "cfn-response" not in caplog.text
    assert delivery.event["ResponseURL"].split("?")[1] not in caplog.text


def test_a_delete_signed_600_s_ago_leaves_the_rule_to_the_delete_cloudformation_sends_again(
    servers: Servers, vpc: dict[str, str]
) -> None:
    """CloudFormation reported this Delete failed long ago; it revokes nothing now, and its answer says why."""
    created = invoke(create(vpc, ServiceTimeout="60"), signed=signed_ago(1))
    assert_success(created)
    rules = app_rules(servers.moto, vpc)
    assert len(rules) == 2
    calls = aws_calls(servers)
    delete = load_event("vpc-delete.json", vpc, PhysicalResourceId=created["PhysicalResourceId"])
    delete["ResourceProperties"]["ServiceTimeout"] = "60"
    assert_failed(invoke(delete, signed=signed_ago(600)), TOO_LATE)
    assert aws_calls(servers) == calls
    assert app_rules(servers.moto, vpc) == rules
    assert_success(invoke(delete, signed=signed_ago(1)))  # CloudFormation's own Delete, sent again
    assert app_rules(servers.moto, vpc) == set()


def test_an_expired_sigv2_url_changes_nothing(servers: Servers, vpc: dict[str, str]) -> None:
    """An older URL gives only its expiry: once past it, nobody can read the answer, so nothing is done."""
    calls = aws_calls(servers)
    answer = invoke(create(vpc), signed=SigV2(expires_at=time.time() - 5))
    assert_failed(answer, TOO_LATE)
    assert "(the ResponseURL's expiry)" in answer["Reason"]
    assert aws_calls(servers) == calls
    assert app_rules(servers.moto, vpc) == set()
    assert_success(invoke(create(vpc), signed=SigV2(expires_at=time.time() + 7200)))  # one still valid is served
    assert len(app_rules(servers.moto, vpc)) == 2


def test_a_url_expiring_before_service_timeout_bounds_the_work(servers: Servers, vpc: dict[str, str]) -> None:
    """Signed 100 s ago, valid for 100 s: ServiceTimeout's hour does not matter, the URL's expiry does."""
    calls = aws_calls(servers)
    answer = invoke(create(vpc, ServiceTimeout="3600"), signed=SigV4(signed_at=time.time() - 100, expires_in=100))
    assert_failed(answer, TOO_LATE)
    assert aws_calls(servers) == calls


def test_service_timeout_at_the_events_top_level_bounds_the_wait_unless_the_properties_set_one(
    servers: Servers, vpc: dict[str, str]
) -> None:
    calls = aws_calls(servers)
    event = create(vpc)
    del event["ResourceProperties"]["ServiceTimeout"]
    event["ServiceTimeout"] = "60"
    assert_failed(invoke(event, signed=signed_ago(600)), "the resource's ServiceTimeout of 60 s")
    assert aws_calls(servers) == calls
    event["ResourceProperties"]["ServiceTimeout"] = "3600"  # the properties' wins: 50 minutes are left
    assert_success(invoke(event, signed=signed_ago(600)))
    assert len(app_rules(servers.moto, vpc)) == 2


@pytest.mark.parametrize("value", ["0", "3601", "5m", "", "-1"])
@pytest.mark.parametrize("event_file", ["vpc-create.json", "vpc-update.json"])
def test_a_bad_top_level_service_timeout_fails_a_create_or_update_by_name_without_a_call(
    servers: Servers, vpc: dict[str, str], event_file: str, value: str
) -> None:
    calls = aws_calls(servers)
    event = load_event(event_file, vpc)
    del event["ResourceProperties"]["ServiceTimeout"]
    event["ServiceTimeout"] = value
    assert_failed(invoke(event), "ServiceTimeout must be a number of seconds")
    assert aws_calls(servers) == calls


@pytest.mark.parametrize("where", ["ResourceProperties", "top level"])
def test_a_delete_with_a_bad_service_timeout_proceeds_with_cloudformations_default(
    servers: Servers, vpc: dict[str, str], where: str
) -> None:
    """Refusing a Delete would strand the stack: a bad ServiceTimeout is taken as not set (CloudFormation's hour
    from signing), and the rules go; past that hour, nothing is done."""
    created = invoke(create(vpc))
    assert_success(created)
    delete = load_event("vpc-delete.json", vpc, PhysicalResourceId=created["PhysicalResourceId"])
    del delete["ResourceProperties"]["ServiceTimeout"]
    (delete["ResourceProperties"] if where == "ResourceProperties" else delete)["ServiceTimeout"] = "0"
    assert_failed(invoke(delete, signed=signed_ago(3700)), "CloudFormation's default ServiceTimeout of 3600 s")
    assert len(app_rules(servers.moto, vpc)) == 2
    assert_success(invoke(delete, signed=signed_ago(3000)))
    assert app_rules(servers.moto, vpc) == set()


def test_a_failed_reason_at_the_receiver_ends_with_where_the_logs_are(
    servers: Servers, vpc: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function's log group, its stream and the request id, as the Lambda context gives them."""
    contexts: list[LambdaContext] = []

    class Recorded(LambdaContext):
        def __init__(self, seconds: float = 30.0) -> None:
            super().__init__(seconds)
            contexts.append(self)

    monkeypatch.setattr("tests.support.LambdaContext", Recorded)
    answer = invoke(create(vpc, ReplicationGroupId="no-such-cache"))
    (context,) = contexts
    assert_failed(answer, "no-such-cache")
    assert answer["Reason"].endswith(
        f" (logs: /aws/lambda/cache-sg-ingress, stream {context.log_stream_name}, request {context.aws_request_id})"
    )
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", context.log_stream_name)
    assert cause(answer)
