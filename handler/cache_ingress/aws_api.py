"""The only module that talks to AWS: ElastiCache, MemoryDB, EC2, Service Quotas and DynamoDB calls, errors mapped.

Clients are passed in, so tests hand them a botocore Stubber or point them at
the loopback stand-ins; nothing here decides what an error means for the stack
(that is each mode's rules). It takes and returns plain values, so it imports
nothing from the rules.
"""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from . import send_gate
from .errors import OutOfTime
from .timing import CONNECT_TIMEOUT_S, READ_TIMEOUT_S

#: botocore's own retries are off: its standard mode charges a quota shared by
#: every call of the client (so, in a warm sandbox, by every invocation) and
#: refunds only the last retry on success, so under sustained errors it drains
#: and nothing is retried any more; its backoff and read timeout know nothing
#: of the deadline either. The one retry policy is :mod:`cache_ingress.retry`.
#:
#: Timeouts: botocore sets them per client, so a client per invocation (or per
#: call) would be the only way to shorten them, at ~10 ms a client and at the
#: cost of the tests' Stubbers, which stub the sandbox's one client. Instead
#: the connect timeout is short and fixed (an attempt starts only with more
#: than that left) and the read timeout is lowered per call to the time left
#: (:func:`time_limit`), through the request context's ``read_timeout``, which
#: botocore honours since August 2026 (PR boto/botocore#3770; 1.44.8, pinned
#: for the tests, has it). An older botocore in the Lambda runtime keeps the
#: fixed :data:`~cache_ingress.timing.READ_TIMEOUT_S`: a call may then outlast
#: the deadline by that much at most, inside the answer's reserve, and the
#: backstop answers on time all the same. The connect timeout bounds name
#: resolution too, and a change's read is cut again when it is sent, on the
#: connections :mod:`cache_ingress.send_gate` gives every client.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
)

_read_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar("read_timeout", default=None)


def make_client(service: str = "elasticache", config: Config = CLIENT_CONFIG) -> Any:
    """A client that honours the standard SDK settings, its read timeout bounded by :func:`time_limit`.

    Whatever the service, its connections are gated (:func:`cache_ingress.send_gate.install`): a change
    reaches AWS before the answer or never, the promise :class:`~cache_ingress.timing.Deadline` states.

    ``AWS_REGION``, ``AWS_ENDPOINT_URL_ELASTICACHE``, ``AWS_ENDPOINT_URL_EC2``,
    ``AWS_ENDPOINT_URL_MEMORYDB`` and friends are read by boto3 itself, which
    is how tests, ``sam local invoke`` and the demo point the function at the
    stand-ins.
    """
    # boto3 reads AWS_DEFAULT_REGION; Lambda and sam local also set AWS_REGION, the documented one.
    client = boto3.client(service, region_name=os.environ.get("AWS_REGION") or None, config=config)
    client.meta.events.register("before-call", _bound_read_timeout)
    send_gate.install(client)
    return client


@contextmanager
def time_limit(read_timeout: float) -> Iterator[None]:
    """Calls made inside wait at most ``read_timeout`` seconds for each read (never more than the client's own)."""
    token = _read_timeout.set(max(0.01, min(READ_TIMEOUT_S, read_timeout)))
    try:
        yield
    finally:
        _read_timeout.reset(token)


def _bound_read_timeout(context: dict[str, Any], **_: Any) -> None:
    """botocore's ``before-call`` hook: the call's read timeout, from the request context."""
    bound = _read_timeout.get()
    if bound is not None:
        context["read_timeout"] = bound


class ApiError(Exception):
    """An error answer from AWS, reduced to what the rules need: the operation, the code and the message.

    ``status`` is the HTTP status (0 when no answer came); ``connection`` marks
    a call that got no answer at all (refused, dropped, timed out), whose
    ``code`` is botocore's exception name. ``reasons`` are DynamoDB's codes for
    each write of a cancelled transaction (``ConditionalCheckFailed``,
    ``TransactionConflict``, ``None``), in order.
    """

    def __init__(
        self,
        operation: str,
        code: str,
        message: str,
        status: int = 0,
        connection: bool = False,
        reasons: tuple[str, ...] = (),
    ) -> None:
        super().__init__(f"{operation} failed with {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message
        self.status = status
        self.connection = connection
        self.reasons = reasons


@dataclass(frozen=True)
class Entry:
    """The state of one ingress inside its cache security group."""

    status: str
    group_arn: str | None = None


class ElastiCacheApi:
    def __init__(self, client: Any) -> None:
        self.client = client

    def authorize(self, *, cache_group: str, ec2_group: str, owner_id: str) -> Entry | None:
        return self._change(self.client.authorize_cache_security_group_ingress, cache_group, ec2_group, owner_id)

    def revoke(self, *, cache_group: str, ec2_group: str, owner_id: str) -> Entry | None:
        return self._change(self.client.revoke_cache_security_group_ingress, cache_group, ec2_group, owner_id)

    def _change(self, method: Any, cache_group: str, ec2_group: str, owner_id: str) -> Entry | None:
        """Authorize or revoke: both answer with the whole group, in which the entry shows its new status."""
        response = _call(
            method, CacheSecurityGroupName=cache_group, EC2SecurityGroupName=ec2_group, EC2SecurityGroupOwnerId=owner_id
        )
        return _entry_in(response.get("CacheSecurityGroup", {}), ec2_group, owner_id)

    def entry(self, *, cache_group: str, ec2_group: str, owner_id: str) -> Entry | None:
        """The ingress's current entry, or None once it is gone from the group.

        ElastiCache stores the group's name in lower case, so it is matched whatever its spelling here.
        """
        response = _call(self.client.describe_cache_security_groups, CacheSecurityGroupName=cache_group)
        for group in response.get("CacheSecurityGroups", []):
            if str(group.get("CacheSecurityGroupName", "")).lower() == cache_group.lower():
                return _entry_in(group, ec2_group, owner_id)
        return None

    def cache_security_group(self, name: str) -> dict[str, Any]:
        """The whole cache security group, every ingress with its status."""
        return _first(
            _call(self.client.describe_cache_security_groups, CacheSecurityGroupName=name), "CacheSecurityGroups"
        )

    def replication_group(self, group_id: str) -> dict[str, Any]:
        response = _call(self.client.describe_replication_groups, ReplicationGroupId=group_id)
        return _first(response, "ReplicationGroups")

    def cache_cluster(self, cluster_id: str) -> dict[str, Any]:
        """With node info: a single-node Redis cluster shows its port only on its node's endpoint."""
        response = _call(self.client.describe_cache_clusters, CacheClusterId=cluster_id, ShowCacheNodeInfo=True)
        return _first(response, "CacheClusters")

    def serverless_cache(self, name: str) -> dict[str, Any]:
        return _first(_call(self.client.describe_serverless_caches, ServerlessCacheName=name), "ServerlessCaches")


class MemoryDbApi:
    """MemoryDB, whose clusters VPC mode finds by name like ElastiCache's caches; its one call is a lookup."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def cluster(self, name: str) -> dict[str, Any]:
        """Without shard details: the cluster endpoint's port is the one every node serves on."""
        return _first(_call(self.client.describe_clusters, ClusterName=name), "Clusters")


class Ec2Api:
    """Ingress rules on VPC security groups; ``permissions`` are EC2 IpPermissions."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def authorize(
        self, group_id: str, permissions: list[dict[str, Any]], tags: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """The rules made, tagged in the same call (tags for people: nothing reads them to decide)."""
        response = _call(
            self.client.authorize_security_group_ingress,
            GroupId=group_id,
            IpPermissions=permissions,
            TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": _tag_list(tags)}],
        )
        rules: list[dict[str, Any]] = response.get("SecurityGroupRules") or []
        return rules

    def rules(self, group_id: str) -> list[dict[str, Any]]:
        """Every rule of the group, page by page."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"Filters": [{"Name": "group-id", "Values": [group_id]}], "MaxResults": 1000}
        while True:
            response = _call(self.client.describe_security_group_rules, **params)
            found += response.get("SecurityGroupRules") or []
            token = response.get("NextToken")
            if not token:
                return found
            params["NextToken"] = token

    def rule(self, rule_id: str) -> dict[str, Any] | None:
        """One rule as it is now, or None once it is gone."""
        try:
            response = _call(self.client.describe_security_group_rules, SecurityGroupRuleIds=[rule_id])
        except ApiError as err:
            if err.code == "InvalidSecurityGroupRuleId.NotFound":
                return None
            raise
        items: list[dict[str, Any]] = response.get("SecurityGroupRules") or []
        return items[0] if items else None

    def prefix_list_sizes(self, prefix_list_ids: Iterable[str]) -> dict[str, int]:
        """Each named prefix list's MaxEntries, by id, as far as EC2 shows it.

        Asked by filter, not by PrefixListIds, so that a list EC2 does not show
        (not shared with this account, or made a moment ago) is left out
        rather than failing the whole call; so is a list without MaxEntries.
        """
        wanted = sorted(set(prefix_list_ids))
        sizes: dict[str, int] = {}
        for start in range(0, len(wanted), _FILTER_VALUES):
            ids = wanted[start : start + _FILTER_VALUES]
            params: dict[str, Any] = {"Filters": [{"Name": "prefix-list-id", "Values": ids}], "MaxResults": 100}
            while True:
                response = _call(self.client.describe_managed_prefix_lists, **params)
                for item in response.get("PrefixLists") or []:
                    size = item.get("MaxEntries")
                    if isinstance(item.get("PrefixListId"), str) and isinstance(size, int):
                        sizes[item["PrefixListId"].lower()] = size
                token = response.get("NextToken")
                if not token:
                    break
                params["NextToken"] = token
        return sizes

    def set_description(self, group_id: str, rule_id: str, description: str) -> None:
        _call(
            self.client.update_security_group_rule_descriptions_ingress,
            GroupId=group_id,
            SecurityGroupRuleDescriptions=[{"SecurityGroupRuleId": rule_id, "Description": description}],
        )

    def revoke(self, group_id: str, rule_ids: list[str]) -> None:
        _call(self.client.revoke_security_group_ingress, GroupId=group_id, SecurityGroupRuleIds=rule_ids)


class ServiceQuotasApi:
    """Service Quotas, asked for one quota's value in this account and region."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def quota(self, service_code: str, quota_code: str) -> Any:
        """The quota's Value as Service Quotas answers it (a number), None if the answer holds none."""
        response = _call(self.client.get_service_quota, ServiceCode=service_code, QuotaCode=quota_code)
        return (response.get("Quota") or {}).get("Value")


#: How many values one EC2 filter is sent at once.
_FILTER_VALUES = 100


#: A value the ledger stores: a string (S) or a number (N).
Value = str | int | float


@dataclass(frozen=True)
class Write:
    """One write to a ledger item (``pk``, ``sk``): a put of ``item``, an ``update`` expression, or a ``delete``.

    ``condition`` must hold for it to happen. Expressions name attributes as
    ``#name`` (any attribute name, reserved words included) and values as
    ``:value``, given in ``values``.
    """

    pk: str
    sk: str
    item: Mapping[str, Value] | None = None
    update: str | None = None
    delete: bool = False
    condition: str | None = None
    values: Mapping[str, Value] = field(default_factory=dict)


class LedgerApi:
    """The ownership ledger: one DynamoDB table of items keyed by ``pk`` and ``sk``, strongly consistent reads."""

    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    def get(self, pk: str, sk: str) -> dict[str, Value] | None:
        """The item as the table holds it now (a consistent read), or None."""
        response = _call(self.client.get_item, TableName=self.table, Key=_key(pk, sk), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else {name: _decoded(value) for name, value in item.items()}

    def transact(self, writes: Sequence[Write]) -> None:
        """All of ``writes`` or none of them; a condition that fails cancels the lot (``reasons`` say which)."""
        _call(self.client.transact_write_items, TransactItems=[_transact_item(self.table, w) for w in writes])

    def update(self, write: Write) -> None:
        """One conditional update (``write.update``) or delete (``write.delete``) of one item."""
        params = _write_params(self.table, write)
        if write.delete:
            _call(self.client.delete_item, **params)
        else:
            _call(self.client.update_item, **params)

    def query(self, index: str, name: str, value: str) -> list[dict[str, Value]]:
        """Every item of the index ``index`` whose ``name`` is ``value``, page by page.

        A secondary index is read eventually consistently: what an operator's
        report reads; nothing that decides a write reads it.
        """
        params: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": name},
            "ExpressionAttributeValues": {":v": _encoded(value)},
        }
        return self._pages(self.client.query, params)

    def keys(self, index: str, name: str) -> set[str]:
        """Every value of ``name`` in the index ``index`` (its partition key): the one listing no key names.

        A scan of the index, reading only that attribute: how the check finds
        every cache the ledger knows, which no query can list.
        """
        params: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": index,
            "ProjectionExpression": "#k",
            "ExpressionAttributeNames": {"#k": name},
        }
        return {str(item.get(name, "")) for item in self._pages(self.client.scan, params)} - {""}

    def _pages(self, method: Any, params: dict[str, Any]) -> list[dict[str, Value]]:
        found: list[dict[str, Value]] = []
        while True:
            response = _call(method, **params)
            found += [{k: _decoded(v) for k, v in item.items()} for item in response.get("Items") or []]
            last = response.get("LastEvaluatedKey")
            if not last:
                return found
            params = {**params, "ExclusiveStartKey": last}


class CloudFormationApi:
    """Stacks, as the operator's check reads them: whether a holder's stack still exists, and its outputs."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def stack(self, stack: str) -> dict[str, Any] | None:
        """The stack (by name, or by id: a deleted stack's id still answers, DELETE_COMPLETE), None if none."""
        try:
            response = _call(self.client.describe_stacks, StackName=stack)
        except ApiError as err:
            if err.code == "ValidationError" and "does not exist" in err.message:
                return None
            raise
        return _first(response, "Stacks") or None


class IdentityApi:
    """Who the caller is: the account whose stacks CloudFormation will describe to it.

    GetCallerIdentity needs no permission (the STS API Reference: "No
    permissions are required to perform this operation").
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def account(self) -> str:
        return str(_call(self.client.get_caller_identity).get("Account", ""))


def _transact_item(table: str, write: Write) -> dict[str, Any]:
    """One TransactItems entry: IAM authorizes each as the action it contains (PutItem, UpdateItem, DeleteItem)."""
    params = _write_params(table, write)
    if write.item is not None:
        return {"Put": params}
    if write.delete:
        return {"Delete": params}
    return {"Update": params}


def _write_params(table: str, write: Write) -> dict[str, Any]:
    params: dict[str, Any] = {"TableName": table}
    expressions = [write.condition or "", write.update or ""]
    if write.item is not None:
        params["Item"] = {**_key(write.pk, write.sk), **{k: _encoded(v) for k, v in write.item.items()}}
    else:
        params["Key"] = _key(write.pk, write.sk)
    if write.update is not None:
        params["UpdateExpression"] = write.update
    if write.condition is not None:
        params["ConditionExpression"] = write.condition
    names = sorted(set(re.findall(r"#(\w+)", " ".join(expressions))))
    if names:
        params["ExpressionAttributeNames"] = {f"#{name}": name for name in names}
    if write.values:
        params["ExpressionAttributeValues"] = {k: _encoded(v) for k, v in sorted(write.values.items())}
    return params


def _key(pk: str, sk: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _encoded(value: Value) -> dict[str, str]:
    return {"S": value} if isinstance(value, str) else {"N": str(value)}


def _decoded(value: Mapping[str, Any]) -> Value:
    if "N" in value:
        number = str(value["N"])
        return float(number) if "." in number else int(number)
    return str(value.get("S", ""))


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def _first(response: dict[str, Any], key: str) -> dict[str, Any]:
    items = response.get(key) or [{}]
    first: dict[str, Any] = items[0]
    return first


def _call(method: Any, **params: Any) -> dict[str, Any]:
    try:
        response: dict[str, Any] = method(**params)
    except ClientError as err:
        error = err.response.get("Error", {})
        code, message = str(error.get("Code", "Unknown")), str(error.get("Message", ""))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        reasons = tuple(str(r.get("Code", "None")) for r in err.response.get("CancellationReasons") or [])
        raise ApiError(err.operation_name, code, message, status, reasons=reasons) from err
    except (HTTPClientError, BotoConnectionError) as err:
        refused = err.kwargs.get("error")
        if isinstance(refused, OutOfTime):  # the change's gate kept it from leaving: nothing was sent
            raise refused from None
        operation = _operation_name(method)
        raise ApiError(operation, type(err).__name__, str(err), connection=True) from err
    return response


def _operation_name(method: Any) -> str:
    """``authorize_security_group_ingress`` -> ``AuthorizeSecurityGroupIngress``, for a reason."""
    name = str(getattr(method, "__name__", "call"))
    return "".join(part.capitalize() for part in name.split("_"))


def _entry_in(group: dict[str, Any], ec2_group: str, owner_id: str) -> Entry | None:
    wanted = (ec2_group, owner_id)
    for item in group.get("EC2SecurityGroups", []):
        if (item.get("EC2SecurityGroupName"), item.get("EC2SecurityGroupOwnerId")) == wanted:
            return Entry(status=str(item.get("Status", "")), group_arn=group.get("ARN"))
    return None
