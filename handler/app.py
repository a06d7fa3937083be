"""Lambda entry point: wires crhelper to the lifecycle. The rules live in :mod:`cache_ingress`.

The properties choose the mode: ``CacheSecurityGroupName`` and friends for an
EC2-Classic cache security group, a cache name (``ReplicationGroupId``,
``CacheClusterId`` or ``ServerlessCacheName``) for EC2 ingress rules on the
security groups of a cache in a VPC. The physical id says which mode minted it.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cache_ingress import aws_api, lifecycle, rules, vpc, vpc_lifecycle
from cache_ingress.response import FAILED, CustomResource

logger = Logger(
    service="cache-sg-ingress",
    level=os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO",
)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "CacheSecurityGroupIngress")
helper = CustomResource(logger)


@functools.cache
def api() -> aws_api.ElastiCacheApi:
    """The ElastiCache client, made on first use so that a bad setting fails the request, not the import."""
    return aws_api.ElastiCacheApi(aws_api.make_client("elasticache"))


@functools.cache
def ec2() -> aws_api.Ec2Api:
    return aws_api.Ec2Api(aws_api.make_client("ec2"))


@functools.cache
def stacks() -> aws_api.StackRecords:
    return aws_api.StackRecords(aws_api.make_client("cloudformation", aws_api.LOOKUP_CONFIG))


def _request(event: dict[str, Any], key: str = "ResourceProperties") -> rules.Ingress | vpc.VpcRequest:
    """Either mode's request, from the event's properties (or its old ones)."""
    return vpc.parse_request(event.get(key), event["StackId"], str(event.get("LogicalResourceId")))


@helper.create
def create(event: dict[str, Any], _context: Any) -> str:
    request = _request(event)
    if isinstance(request, vpc.VpcRequest):
        rule_set = vpc_lifecycle.discover(api(), request, helper.deadline)
        # Reported even if a call below fails, so the rollback Delete revokes what may have gone through.
        helper.PhysicalResourceId = rule_set.physical_id
        _record(
            rule_set.attributes(), vpc_lifecycle.ensure_rules(ec2(), rule_set, request.description, helper.deadline)
        )
        return rule_set.physical_id
    helper.PhysicalResourceId = request.physical_id
    _record(request.api_params(), lifecycle.ensure_authorized(api(), request, helper.deadline))
    return request.physical_id


@helper.update
def update(event: dict[str, Any], _context: Any) -> str:
    request = _request(event)
    if isinstance(request, vpc.VpcRequest):
        return _update_vpc(event, request)
    return _update_classic(event, request)


def _update_vpc(event: dict[str, Any], request: vpc.VpcRequest) -> str:
    rule_set = vpc_lifecycle.discover(api(), request, helper.deadline)
    replacing = _replacing(rule_set.physical_id, event.get("PhysicalResourceId"))
    # A failed replacement keeps the old id, so no Delete would ever come for the new rules: take them back.
    result = vpc_lifecycle.ensure_rules(
        ec2(), rule_set, request.description, helper.deadline, undo_on_failure=replacing
    )
    if not replacing:
        _take_back_failed_attempt(event, request)
    _record(rule_set.attributes(), result)
    return rule_set.physical_id


def _update_classic(event: dict[str, Any], request: rules.Ingress) -> str:
    replacing = _replacing(request.physical_id, event.get("PhysicalResourceId"))
    result = lifecycle.ensure_authorized(api(), request, helper.deadline)
    if not replacing:
        _take_back_failed_attempt(event, request)
    _record(request.api_params(), result)
    return request.physical_id


def _take_back_failed_attempt(event: dict[str, Any], request: rules.Ingress | vpc.VpcRequest) -> None:
    """If this Update rolls back a failed Update of this resource, revoke what that one may have added.

    The failed attempt is OldResourceProperties, in either mode: a rollback
    may also cross from one mode to the other.
    """
    current_id = str(event.get("PhysicalResourceId") or "")
    attempted = _old_request(event)
    if isinstance(attempted, rules.Ingress):
        abandoned = rules.unrecorded_by_failed_update(attempted, current_id)
        if abandoned is not None:
            logger.info("rolling back a failed update: taking back what it may have authorized")
            _record(abandoned.api_params(), lifecycle.ensure_revoked(api(), abandoned, helper.deadline))
    elif isinstance(attempted, vpc.VpcRequest):
        asked = request if isinstance(request, vpc.VpcRequest) else None
        rule_set = vpc_lifecycle.unrecorded_by_failed_update(api(), attempted, asked, current_id, helper.deadline)
        if rule_set is not None:
            logger.info("rolling back a failed update: taking back the rules it may have added")
            keep = rule_set.shared_with(vpc.parse_physical_id(current_id))
            _record(rule_set.attributes(), vpc_lifecycle.ensure_revoked(ec2(), rule_set, helper.deadline, keep=keep))


def _old_request(event: dict[str, Any]) -> rules.Ingress | vpc.VpcRequest | None:
    try:
        return _request(event, "OldResourceProperties")
    except rules.InvalidProperties:
        return None  # a failed attempt with bad input made no call


def _replacing(new_id: str, current_id: Any) -> bool:
    if new_id == current_id:
        return False
    # A new id tells CloudFormation to Delete the old one once the update completes.
    logger.info("the ingress changes: replacing", extra={"old_physical_id": current_id, "new_physical_id": new_id})
    return True


@helper.delete
def delete(event: dict[str, Any], _context: Any) -> str:
    physical_id = str(event.get("PhysicalResourceId") or "")
    ingress = rules.parse_physical_id(physical_id)
    rule_set = vpc.parse_physical_id(physical_id)
    if ingress is None and rule_set is None:
        # Not an id of ours: crhelper's after a failed Create, or one CloudFormation made up
        # when it stopped waiting for a Create that may have gone through.
        try:
            request = _request(event)
            if isinstance(request, vpc.VpcRequest):
                rule_set = vpc_lifecycle.discover(api(), request, helper.deadline)
            else:
                ingress = request
        except (rules.InvalidProperties, vpc_lifecycle.CacheNotFound, vpc.CacheUnusable) as err:
            logger.info("nothing to revoke: the id is not ours and names no ingress", extra={"why": str(err)})
            metrics.add_metric(name=lifecycle.Change.ALREADY_ABSENT.value, unit=MetricUnit.Count, value=1)
            return physical_id
    if rule_set is not None:
        keep = vpc_lifecycle.rules_still_declared(stacks(), event, rule_set)
        if keep:
            logger.info("the id the stack now holds names some of these rules: they stay", extra={"kept": sorted(keep)})
        _record(rule_set.attributes(), vpc_lifecycle.ensure_revoked(ec2(), rule_set, helper.deadline, keep=keep))
    elif ingress is not None:
        _record(ingress.api_params(), lifecycle.ensure_revoked(api(), ingress, helper.deadline))
    return physical_id


def _record(what: dict[str, str], result: lifecycle.Result) -> None:
    helper.Data.update(result.data)
    metrics.add_metric(name=result.change.value, unit=MetricUnit.Count, value=1)
    logger.info("ingress %s", result.change.name.lower().replace("_", " "), extra={"ingress": what})


@metrics.log_metrics
def lambda_handler(event: Any, context: Any) -> dict[str, Any] | None:
    envelope = event if isinstance(event, dict) else {}
    logger.set_correlation_id(envelope.get("RequestId"))
    logger.append_keys(
        request_type=envelope.get("RequestType"),
        logical_resource_id=envelope.get("LogicalResourceId"),
        stack_id=envelope.get("StackId"),
    )
    logger.info("request received", extra={"properties": envelope.get("ResourceProperties")})
    helper(event, context)
    answer = helper.answer
    if answer is None or answer["Status"] == FAILED:
        metrics.add_metric(name="Failures", unit=MetricUnit.Count, value=1)
    logger.info("answered", extra={"answer": answer})
    return answer
