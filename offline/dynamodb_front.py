"""DynamoDB on loopback with faults: moto's server behind a front (:mod:`offline.front`) in DynamoDB's own errors.

The function's DynamoDB client (the ownership ledger, :mod:`offline.ledger_table`)
talks to this front in the JSON 1.0 protocol, so a test can throttle, fail, drop
or slow any item write or read, as it can EC2's calls. Faults are answered as
DynamoDB answers them (Developer Guide, "Error handling with DynamoDB"), every
``__type`` in DynamoDB's namespace: throttling is HTTP 400, and
``ProvisionedThroughputExceededException`` for a call on items (GetItem,
PutItem, UpdateItem, Query, TransactWriteItems...) but ``ThrottlingException``
for a call on the table itself (CreateTable, UpdateTable, DeleteTable...); both
are throttling to botocore's retry rules (``retries/standard.py``). A server
error is ``InternalServerError``, or ``ServiceUnavailable`` for a 503. The
answers carry no ``x-amz-crc32`` header, which botocore checks only when
present. Everything else goes to moto unchanged, and every call is logged with
its parameters (TableName, Key, TransactItems...).
"""

from __future__ import annotations

from offline.front import Answer, JsonFront

#: The actions on a table rather than its items: DynamoDB throttles them with ThrottlingException.
TABLE_ACTIONS = frozenset(
    {
        "CreateTable",
        "UpdateTable",
        "DeleteTable",
        "DescribeTable",
        "ListTables",
        "UpdateContinuousBackups",
        "DescribeContinuousBackups",
        "UpdateTimeToLive",
        "DescribeTimeToLive",
        "TagResource",
        "UntagResource",
        "ListTagsOfResource",
    }
)


class DynamoDbFront(JsonFront):
    thread_name = "dynamodb-front"
    service = "dynamodb"
    content_type = "application/x-amz-json-1.0"
    error_namespace = "com.amazonaws.dynamodb.v20120810"

    def throttled(self, action: str) -> Answer:
        code = "ThrottlingException" if action in TABLE_ACTIONS else "ProvisionedThroughputExceededException"
        return self.error(400, code, "Rate of requests exceeds the allowed throughput.")
