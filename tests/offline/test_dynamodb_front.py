"""The DynamoDB front, seen through a real boto3 DynamoDB client: each fault as DynamoDB would answer it, the rest moto's.

The front is the session's (``servers.dynamodb``, the function's endpoint),
before moto's empty ledger table made from template.yaml. The client's own
retries are off unless a test turns them on, so every fault armed shows.
Errors as DynamoDB writes them: the Developer Guide, "Error handling with
DynamoDB" (Programming.Errors.html): throttling is HTTP 400
``ProvisionedThroughputExceededException`` (items) or ``ThrottlingException``
(tables), server errors ``InternalServerError`` (500) and
``ServiceUnavailable`` (503), each ``__type`` in DynamoDB's namespace.
"""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError
from botocore.retries import standard

from offline.dynamodb_front import DynamoDbFront
from offline.ledger_table import LEDGER_TABLE, table_definition
from offline.moto_backend import MotoBackend
from offline.upstream import post
from tests.support import Servers

KEY = {"pk": {"S": "rule#sgr-0a"}, "sk": {"S": "claim#stack-1"}}
ITEM = {**KEY, "stack_id": {"S": "stack-1"}, "cache": {"S": "app-cache"}}


def client(front: DynamoDbFront, read_timeout: float = 5.0, attempts: int = 1) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=read_timeout)
    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=front.url, config=config)


def held(moto: MotoBackend, key: dict[str, Any] = KEY) -> dict[str, Any] | None:
    """The item under ``key``, asked of moto itself, past the front."""
    found: dict[str, Any] | None = moto.client("dynamodb").get_item(TableName=LEDGER_TABLE, Key=key).get("Item")
    return found


def put_error(front: DynamoDbFront) -> tuple[str, int] | None:
    """The (code, HTTP status) a PutItem fails with, or None if it succeeds."""
    try:
        client(front).put_item(TableName=LEDGER_TABLE, Item=ITEM)
    except ClientError as err:
        return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]
    return None


def test_the_function_is_pointed_at_the_front_and_the_table_is_the_templates(ledger: DynamoDbFront) -> None:
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == ledger.url
    assert os.environ["LEDGER_TABLE"] == LEDGER_TABLE
    table = boto3.client("dynamodb").describe_table(TableName=LEDGER_TABLE)["Table"]
    assert table["KeySchema"] == table_definition()["KeySchema"]
    indexes = {index["IndexName"]: index["KeySchema"] for index in table["GlobalSecondaryIndexes"]}
    assert indexes == {
        "by-stack": [{"AttributeName": "stack_id", "KeyType": "HASH"}, {"AttributeName": "pk", "KeyType": "RANGE"}],
        "by-cache": [{"AttributeName": "cache", "KeyType": "HASH"}, {"AttributeName": "pk", "KeyType": "RANGE"}],
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_item_calls_and_transactions_are_answered_by_moto_and_logged(ledger: DynamoDbFront, moto: MotoBackend) -> None:
    dynamodb = client(ledger)
    dynamodb.put_item(TableName=LEDGER_TABLE, Item=ITEM, ConditionExpression="attribute_not_exists(pk)")
    assert dynamodb.get_item(TableName=LEDGER_TABLE, Key=KEY)["Item"] == ITEM
    other = {"pk": {"S": "rule#sgr-0b"}, "sk": {"S": "claim#stack-1"}}
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": LEDGER_TABLE, "Item": {**other, "stack_id": {"S": "stack-1"}}}},
            {"Delete": {"TableName": LEDGER_TABLE, "Key": KEY, "ConditionExpression": "attribute_exists(pk)"}},
        ]
    )
    with pytest.raises(ClientError) as refused:
        dynamodb.put_item(TableName=LEDGER_TABLE, Item={**other}, ConditionExpression="attribute_not_exists(pk)")
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"

    assert held(moto) is None
    assert held(moto, other) == {**other, "stack_id": {"S": "stack-1"}}
    put, get, transaction, conflict = ledger.calls()
    assert (put.action, put.params["TableName"], put.params["Item"], put.status) == ("PutItem", LEDGER_TABLE, ITEM, 200)
    assert (get.action, get.params["Key"], get.error) == ("GetItem", KEY, None)
    assert transaction.action == "TransactWriteItems"
    assert [next(iter(item)) for item in transaction.params["TransactItems"]] == ["Put", "Delete"]
    assert (conflict.status, conflict.error) == (400, "ConditionalCheckFailedException")


@pytest.mark.parametrize(
    ("arm", "action", "expected"),
    [
        (lambda f: f.throttle_next(1), "PutItem", ("ProvisionedThroughputExceededException", 400)),
        (lambda f: f.throttle_next(1), "DescribeTable", ("ThrottlingException", 400)),
        (lambda f: f.fail_next(1, 500), "PutItem", ("InternalServerError", 500)),
        (lambda f: f.fail_next(1), "PutItem", ("ServiceUnavailable", 503)),
    ],
    ids=["items-throttled", "table-throttled", "internal-error", "unavailable"],
)
def test_faults_are_dynamodbs_own_and_the_sdk_retries_them_as_such(
    ledger: DynamoDbFront, moto: MotoBackend, arm: Any, action: str, expected: tuple[str, int]
) -> None:
    code, status = expected
    request = json.dumps({"TableName": LEDGER_TABLE, "Item": ITEM} if action == "PutItem" else {"TableName": "t"})
    arm(ledger)
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{action}"}
    answered, body = post(ledger.url, "dynamodb", "us-east-1", request, headers)
    assert (answered, json.loads(body)["__type"]) == (status, f"com.amazonaws.dynamodb.v20120810#{code}")

    arm(ledger)
    dynamodb = client(ledger)
    with pytest.raises(ClientError) as caught:
        dynamodb.put_item(TableName=LEDGER_TABLE, Item=ITEM) if action == "PutItem" else dynamodb.describe_table(
            TableName=LEDGER_TABLE
        )
    assert (caught.value.response["Error"]["Code"], caught.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (
        code,
        status,
    )
    context = standard.RetryContext(
        1,
        operation_model=dynamodb.meta.service_model.operation_model(action),
        parsed_response=caught.value.response,
        http_response=SimpleNamespace(status_code=status),
    )
    throttled = standard.ThrottlingErrorDetector(standard.RetryEventAdapter()).is_throttling_error_from_context(context)
    assert throttled == (status == 400)
    assert standard.StandardRetryConditions().is_retryable(context)

    arm(ledger)
    retried = client(ledger, attempts=2)
    answer = (
        retried.put_item(TableName=LEDGER_TABLE, Item=ITEM)
        if action == "PutItem"
        else retried.describe_table(TableName=LEDGER_TABLE)
    )
    assert answer["ResponseMetadata"]["RetryAttempts"] == 1
    assert [c.error for c in ledger.calls()] == [code, code, code, None]
    assert held(moto) == (ITEM if action == "PutItem" else None)


def test_a_dropped_call_gets_no_answer_and_never_reaches_moto(ledger: DynamoDbFront, moto: MotoBackend) -> None:
    ledger.drop_next(1)
    with pytest.raises(ConnectionClosedError):
        client(ledger).transact_write_items(TransactItems=[{"Put": {"TableName": LEDGER_TABLE, "Item": ITEM}}])
    assert held(moto) is None
    assert [(c.action, c.status, c.error) for c in ledger.calls()] == [("TransactWriteItems", 0, "dropped")]


def test_a_stalled_call_is_held_then_dropped(ledger: DynamoDbFront) -> None:
    ledger.stall_next(1, 0.5)
    with pytest.raises(ConnectionClosedError):
        client(ledger).get_item(TableName=LEDGER_TABLE, Key=KEY)
    (stalled,) = ledger.calls()
    assert (stalled.error, stalled.answered - stalled.arrived >= 0.5) == ("dropped", True)


def test_a_slowed_write_reaches_moto_after_the_client_gave_up_on_it(ledger: DynamoDbFront, moto: MotoBackend) -> None:
    ledger.slow_next(1, 1.0)
    with pytest.raises(ReadTimeoutError):
        client(ledger, read_timeout=0.3).put_item(TableName=LEDGER_TABLE, Item=ITEM)
    assert held(moto) is None  # still held by the front
    waited = time.monotonic() + 10.0
    while not ledger.calls("PutItem") and time.monotonic() < waited:
        time.sleep(0.05)
    assert held(moto) == ITEM
    (late,) = ledger.calls("PutItem")
    assert (late.status, late.answered - late.arrived >= 1.0) == (200, True)


def test_a_reset_leaves_an_empty_ledger_and_a_quiet_front(
    servers: Servers, ledger: DynamoDbFront, moto: MotoBackend
) -> None:
    """What a test left (an item, a fault armed, calls) is gone once the ``moto`` fixture resets the account."""
    ledger.throttle_next(3)
    assert put_error(ledger) == ("ProvisionedThroughputExceededException", 400)
    ledger.clear_faults()
    assert put_error(ledger) is None
    ledger.throttle_next(1)
    servers.reset_aws()
    assert (held(moto), ledger.calls(), put_error(ledger)) == (None, [], None)
