"""The handler through lambda_handler: ElastiCache answered by botocore's Stubber, the answer PUT over https."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from botocore.stub import Stubber

import app
from offline.receiver import ResponseReceiver
from tests.functional.conftest import JsonLogs
from tests.support import LambdaContext, assert_failed, cause, handle, invoke, load_event

OUR_ID = "cache-sg-ingress:app-cache-sg:123456789012:app-servers"
NEW_ID = "cache-sg-ingress:app-cache-sg:210987654321:batch workers / nightly"
ARN = "arn:aws:elasticache:us-east-1:123456789012:securitygroup:app-cache-sg"
PARAMS = {
    "CacheSecurityGroupName": "app-cache-sg",
    "EC2SecurityGroupName": "app-servers",
    "EC2SecurityGroupOwnerId": "123456789012",
}
NEW_PARAMS = {**PARAMS, "EC2SecurityGroupName": "batch workers / nightly", "EC2SecurityGroupOwnerId": "210987654321"}


def group(*entries: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "OwnerId": "123456789012",
        "CacheSecurityGroupName": "app-cache-sg",
        "Description": "app cache",
        "EC2SecurityGroups": [
            {"EC2SecurityGroupName": name, "EC2SecurityGroupOwnerId": owner, "Status": status}
            for name, owner, status in entries
        ],
        "ARN": ARN,
    }


def authorize_ok(stubber: Stubber, status: str, params: dict[str, str] = PARAMS) -> None:
    entry = (params["EC2SecurityGroupName"], params["EC2SecurityGroupOwnerId"], status)
    stubber.add_response("authorize_cache_security_group_ingress", {"CacheSecurityGroup": group(entry)}, params)


def describe(stubber: Stubber, *entries: tuple[str, str, str]) -> None:
    stubber.add_response(
        "describe_cache_security_groups",
        {"CacheSecurityGroups": [group(*entries)]},
        {"CacheSecurityGroupName": "app-cache-sg"},
    )


def error(
    stubber: Stubber, operation: str, code: str, status: int, params: dict[str, str] = PARAMS, message: str = ""
) -> None:
    stubber.add_client_error(operation, code, message or code, status, expected_params=params)


def assert_succeeds_with_our_id(event_file: str) -> None:
    """Invoke with the sample event; CloudFormation must get SUCCESS and the canonical id of this ingress."""
    answer = invoke(load_event(event_file))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", OUR_ID)


def already_authorized(stubber: Stubber) -> None:
    """The ingress is there already: AWS refuses the authorize, and a describe shows the entry authorized."""
    error(stubber, "authorize_cache_security_group_ingress", "AuthorizationAlreadyExists", 400)
    describe(stubber, ("app-servers", "123456789012", "authorized"))


def test_create_authorizes_and_reports_the_canonical_id(stubber: Stubber) -> None:
    authorize_ok(stubber, "authorized")
    answer = invoke(load_event("create.json"))
    assert answer["Status"] == "SUCCESS"
    assert answer["PhysicalResourceId"] == OUR_ID
    assert answer["Data"] == {**PARAMS, "Status": "authorized", "CacheSecurityGroupArn": ARN}


def test_create_waits_until_the_entry_reads_authorized(stubber: Stubber) -> None:
    authorize_ok(stubber, "authorizing")
    describe(stubber, ("app-servers", "123456789012", "authorizing"), ("other", "123456789012", "authorized"))
    describe(stubber, ("app-servers", "123456789012", "authorized"))
    answer = invoke(load_event("create.json"))
    assert (answer["Status"], answer["Data"]["Status"]) == ("SUCCESS", "authorized")


def test_create_of_an_existing_authorization_succeeds(stubber: Stubber) -> None:
    already_authorized(stubber)
    assert_succeeds_with_our_id("create.json")


def test_create_fails_when_the_entry_never_settles_but_still_reports_its_id(stubber: Stubber) -> None:
    authorize_ok(stubber, "authorizing")
    for _ in range(3):
        describe(stubber, ("app-servers", "123456789012", "authorizing"))
    # Deadline 2.4 s; a poll needs 0.6 s left for its Describe: polls at 0.2, 0.6, 1.4 s, not 2.2 s.
    answer = invoke(load_event("create.json"), seconds=3.2)
    assert_failed(answer, "still reads 'authorizing'")
    # The rollback Delete must name the authorization that may have gone through.
    assert answer["PhysicalResourceId"] == OUR_ID


def test_throttling_that_outlasts_botocore_retries_is_tried_again(stubber: Stubber) -> None:
    error(stubber, "authorize_cache_security_group_ingress", "Throttling", 400, message="Rate exceeded")
    authorize_ok(stubber, "authorized")
    assert invoke(load_event("create.json"))["Status"] == "SUCCESS"


def test_accounts_without_ec2_classic_get_a_reason_that_explains(stubber: Stubber) -> None:
    message = "Use of cache security groups is not permitted in this API version for your account."
    error(stubber, "authorize_cache_security_group_ingress", "InvalidParameterValue", 400, message=message)
    answer = invoke(load_event("create.json"))
    assert_failed(answer, "EC2-Classic, which AWS retired in August 2023")
    assert "set ReplicationGroupId, CacheClusterId or ServerlessCacheName" in answer["Reason"]
    assert "SourceSecurityGroupId" in answer["Reason"]


def test_other_api_errors_fail_with_the_code_and_message(stubber: Stubber) -> None:
    error(
        stubber,
        "authorize_cache_security_group_ingress",
        "CacheSecurityGroupNotFound",
        404,
        message="CacheSecurityGroup app-cache-sg not found.",
    )
    answer = invoke(load_event("create.json"))
    assert answer["Status"] == "FAILED"
    assert cause(answer) == (
        "AuthorizeCacheSecurityGroupIngress failed with CacheSecurityGroupNotFound: CacheSecurityGroup app-cache-sg not found."
    )


@pytest.mark.parametrize(
    ("properties", "reason"),
    [
        ({"CacheSecurityGroupName": "app-cache-sg"}, "EC2SecurityGroupName is required"),
        (
            {
                "CacheSecurityGroupName": "app-cache-sg",
                "EC2SecurityGroupName": "a",
                "EC2SecurityGroupOwnerId": "AKIAIOSFODNN7EXAMPLE",
            },
            "not an access key id",
        ),
        (
            {"CacheSecurityGroupName": ["x"], "EC2SecurityGroupName": "a"},
            "CacheSecurityGroupName must be a string, got a list",
        ),
    ],
)
def test_bad_input_fails_before_any_api_call(stubber: Stubber, properties: dict[str, Any], reason: str) -> None:
    answer = invoke(load_event("create.json", ResourceProperties=properties))
    assert_failed(answer, reason)
    assert answer["PhysicalResourceId"]  # the Stubber has no answers queued: any call would have failed differently


def test_the_bad_input_sample_event_names_the_misspelt_property(stubber: Stubber) -> None:
    answer = invoke(load_event("create-bad-input.json"))
    assert_failed(answer, "unknown property 'EC2SecurityGroupOwnerID' (did you mean EC2SecurityGroupOwnerId?)")


def test_update_keeping_the_id_reauthorizes_and_keeps_it(stubber: Stubber) -> None:
    already_authorized(stubber)
    assert_succeeds_with_our_id("update.json")


def test_update_repairs_a_revoke_made_by_hand(stubber: Stubber) -> None:
    authorize_ok(stubber, "authorized")
    assert_succeeds_with_our_id("update.json")


def test_update_to_another_ingress_authorizes_it_and_returns_the_new_id(stubber: Stubber) -> None:
    authorize_ok(stubber, "authorized", NEW_PARAMS)  # the old one is left for CloudFormation's Delete
    answer = invoke(load_event("update-replace.json"))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", NEW_ID)


def test_a_replacement_that_does_not_settle_fails_and_keeps_the_old_id(stubber: Stubber) -> None:
    authorize_ok(stubber, "authorizing", NEW_PARAMS)
    for _ in range(3):
        describe(stubber, ("batch workers / nightly", "210987654321", "authorizing"))
    answer = invoke(load_event("update-replace.json"), seconds=3.2)
    assert answer["Status"] == "FAILED"
    assert answer["PhysicalResourceId"] == OUR_ID  # CloudFormation keeps the old id after a failed update


def test_the_rollback_of_a_failed_replacement_takes_back_what_it_tried(stubber: Stubber) -> None:
    """The failed replacement held the new ingress in the ledger before authorizing it: the rollback revokes it."""
    authorize_ok(stubber, "authorizing", NEW_PARAMS)
    for _ in range(3):
        describe(stubber, ("batch workers / nightly", "210987654321", "authorizing"))
    assert invoke(load_event("update-replace.json"), seconds=3.2)["Status"] == "FAILED"
    # CloudFormation's rollback Update: old properties (naming the id it holds), the failed ones as OldResourceProperties.
    rollback = load_event("update-replace.json")
    already_authorized(stubber)
    revoking = ("batch workers / nightly", "210987654321", "revoking")
    stubber.add_response("revoke_cache_security_group_ingress", {"CacheSecurityGroup": group(revoking)}, NEW_PARAMS)
    describe(stubber, ("app-servers", "123456789012", "authorized"))
    answer = invoke(
        load_event(
            "update.json",
            ResourceProperties=load_event("create.json")["ResourceProperties"],
            OldResourceProperties=rollback["ResourceProperties"],
        )
    )
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", OUR_ID)
    assert answer["Data"]["EC2SecurityGroupName"] == "app-servers"


def test_a_rollback_of_an_attempt_that_held_nothing_revokes_nothing(stubber: Stubber) -> None:
    """Another resource's ingress, named by a failed attempt of this one that never held it, stays."""
    already_authorized(stubber)
    answer = invoke(
        load_event(
            "update.json",
            ResourceProperties=load_event("create.json")["ResourceProperties"],
            OldResourceProperties=load_event("update-replace.json")["ResourceProperties"],
        )
    )
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", OUR_ID)


def test_delete_revokes_what_the_id_names_not_what_the_properties_say(stubber: Stubber) -> None:
    stubber.add_response("revoke_cache_security_group_ingress", {"CacheSecurityGroup": group()}, PARAMS)
    answer = invoke(
        load_event(
            "delete.json", ResourceProperties={"CacheSecurityGroupName": "elsewhere", "EC2SecurityGroupName": "x"}
        )
    )
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", OUR_ID)


def test_delete_waits_for_the_revoke_to_finish(stubber: Stubber) -> None:
    revoking = ("app-servers", "123456789012", "revoking")
    stubber.add_response("revoke_cache_security_group_ingress", {"CacheSecurityGroup": group(revoking)}, PARAMS)
    describe(stubber, revoking)
    describe(stubber)
    assert invoke(load_event("delete.json"))["Status"] == "SUCCESS"


@pytest.mark.parametrize(("code", "status"), [("AuthorizationNotFound", 404), ("CacheSecurityGroupNotFound", 404)])
def test_delete_of_something_already_gone_succeeds(stubber: Stubber, code: str, status: int) -> None:
    error(stubber, "revoke_cache_security_group_ingress", code, status)
    assert_succeeds_with_our_id("delete.json")


def test_delete_in_an_account_without_ec2_classic_succeeds(stubber: Stubber) -> None:
    message = "Use of cache security groups is not permitted in this API version for your account."
    error(stubber, "revoke_cache_security_group_ingress", "InvalidParameterValue", 400, message=message)
    assert invoke(load_event("delete.json"))["Status"] == "SUCCESS"


def test_delete_with_an_id_not_ours_and_bad_properties_makes_no_call(stubber: Stubber) -> None:
    answer = invoke(load_event("delete-after-failed-create.json"))
    assert answer == {
        "Status": "SUCCESS",
        "PhysicalResourceId": "cache-access_AppCacheIngress_K3X9Q2PL",
        "StackId": answer["StackId"],
        "RequestId": "6c1e1b6e-0005-4b4e-9a51-delfailed005",
        "LogicalResourceId": "AppCacheIngress",
        "NoEcho": False,
        "Data": {},
    }


def test_delete_with_an_invented_id_falls_back_to_valid_properties(stubber: Stubber) -> None:
    """CloudFormation stopped waiting for a Create that went through: the ingress it held is revoked."""
    authorize_ok(stubber, "authorized")
    assert invoke(load_event("create.json"))["Status"] == "SUCCESS"
    error(stubber, "revoke_cache_security_group_ingress", "AuthorizationNotFound", 404)
    answer = invoke(load_event("delete.json", PhysicalResourceId="AppCacheIngress-invented-by-cloudformation"))
    assert (answer["Status"], answer["PhysicalResourceId"]) == ("SUCCESS", "AppCacheIngress-invented-by-cloudformation")


def test_unknown_request_type_fails_with_a_clear_reason(stubber: Stubber) -> None:
    answer = invoke(load_event("create.json", RequestType="Upsert"))
    assert answer["Status"] == "FAILED"
    assert cause(answer) == "RequestType must be one of Create, Update, Delete, got 'Upsert'"


def test_an_event_without_a_response_url_is_logged_and_not_answered(
    stubber: Stubber, receiver: ResponseReceiver, json_logs: JsonLogs
) -> None:
    handle(load_event("create.json", ResponseURL=None))
    assert receiver.puts() == []
    assert "the event has no ResponseURL: CloudFormation cannot be answered" in json_logs.text()


def test_sam_local_prints_the_answer_instead_of_sending_it(
    stubber: Stubber, receiver: ResponseReceiver, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    delivery = handle(load_event("create-bad-input.json"))
    printed = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"Status"')]
    assert [body["Status"] for body in printed] == ["FAILED"]
    assert delivery.attempts == 0
    assert receiver.puts() == []


def test_logs_are_json_with_the_request_id_as_correlation_id(
    stubber: Stubber, json_logs: JsonLogs, capfd: pytest.CaptureFixture[str]
) -> None:
    authorize_ok(stubber, "authorized")
    event = handle(load_event("create.json")).event
    logs = json_logs.lines()
    assert logs
    assert all(line["correlation_id"] == event["RequestId"] for line in logs)
    assert {"request received", "ingress authorized", "answered"} <= {line["message"] for line in logs}
    assert next(line for line in logs if line["message"] == "ingress authorized")["ingress"] == PARAMS
    metrics = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert metrics[-1]["Authorizations"] == [1.0]
    assert metrics[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "CacheIngressTests"


def test_nothing_logs_the_response_url_even_at_debug(
    stubber: Stubber,
    json_logs: JsonLogs,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    authorize_ok(stubber, "authorized")
    app.logger.setLevel("DEBUG")
    caplog.set_level(logging.DEBUG)
    try:
        event = handle(load_event("create.json")).event
    finally:
        app.logger.setLevel("INFO")
    printed = capfd.readouterr()
    everything = printed.out + printed.err + caplog.text + json_logs.text()
    signature = event["ResponseURL"].split("X-Amz-Signature=")[1].split("&")[0]
    assert "response delivered" in everything  # DEBUG lines were there to leak
    assert signature not in everything
    assert "cfn-response" not in everything


@pytest.mark.parametrize(
    "url",
    ["http://cloudformation-custom-resource-response.example/x?X-Amz-Signature=s", "ftp://x/y", "https:///no-host"],
)
def test_a_response_url_that_is_not_https_is_refused_before_any_call(
    stubber: Stubber, json_logs: JsonLogs, url: str
) -> None:
    # The Stubber has nothing queued: any call would fail the request, and log so.
    assert app.lambda_handler(load_event("create.json", ResponseURL=url), LambdaContext(10)) is None
    messages = [line["message"] for line in json_logs.lines()]
    assert "the event's ResponseURL is not an https URL: no answer can be sent, nothing is done" in messages
    assert "request failed" not in messages
    assert url not in json_logs.text()


def test_under_sam_local_the_sample_http_url_is_still_accepted(
    stubber: Stubber, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    authorize_ok(stubber, "authorized")
    app.lambda_handler(load_event("create.json", ResponseURL="http://localhost/response"), LambdaContext(10))
    printed = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"Status"')]
    assert [body["Status"] for body in printed] == ["SUCCESS"]
