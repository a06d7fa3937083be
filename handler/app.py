"""Lambda entry point: wires crhelper to the modes, one path per request type.

Which mode a request is in (EC2-Classic cache security groups, or EC2 ingress
rules on a VPC cache's security groups) is decided once, in
:mod:`cache_ingress.modes`, from the properties or the physical id; this
module never asks.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cache_ingress import aws_api
from cache_ingress.classic_lifecycle import ClassicMode
from cache_ingress.custom_resource import CustomResource
from cache_ingress.errors import CacheNotFound, CacheUnusable, InvalidProperties
from cache_ingress.modes import Granted, Modes, Request
from cache_ingress.protocol import Change, Instance, Result
from cache_ingress.response_body import FAILED
from cache_ingress.vpc_lifecycle import VpcMode

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
def modes() -> Modes:
    return Modes(classic=ClassicMode(api()), vpc=VpcMode(api(), ec2()))


def _instance(event: dict[str, Any]) -> Instance:
    """Who the request comes from: what this resource grants is held in its name."""
    return Instance(
        stack_id=str(event.get("StackId") or ""),
        logical_id=str(event.get("LogicalResourceId") or ""),
        physical_id=str(event.get("PhysicalResourceId") or ""),
    )


def _request(event: dict[str, Any], key: str = "ResourceProperties") -> Request[Any, Any]:
    """The request the event's properties (or its old ones) describe, in their mode."""
    return modes().request(event.get(key), stack_id=event["StackId"], logical_id=str(event.get("LogicalResourceId")))


@helper.create
def create(event: dict[str, Any], _context: Any) -> str:
    request = _request(event)
    granted = request.resolve(deadline=helper.deadline)
    # Reported even if a call below fails, so the rollback Delete revokes what may have gone through.
    helper.PhysicalResourceId = granted.physical_id
    _record(
        granted,
        granted.grant(request=request, instance=_instance(event), deadline=helper.deadline, undo_on_failure=False),
    )
    return granted.physical_id


@helper.update
def update(event: dict[str, Any], _context: Any) -> str:
    request = _request(event)
    granted = request.resolve(deadline=helper.deadline)
    replacing = _replacing(granted.physical_id, event.get("PhysicalResourceId"))
    # A failed replacement keeps the old id, so no Delete would ever come for what it added: take that back.
    result = granted.grant(
        request=request, instance=_instance(event), deadline=helper.deadline, undo_on_failure=replacing
    )
    if not replacing:
        _take_back_failed_attempt(event, request)
    _record(granted, result)
    return granted.physical_id


def _take_back_failed_attempt(event: dict[str, Any], request: Request[Any, Any]) -> None:
    """If this Update rolls back a failed Update of this resource, revoke what that one may have added.

    The failed attempt is OldResourceProperties, in either mode: a rollback
    may also cross from one mode to the other.
    """
    current_id = str(event.get("PhysicalResourceId") or "")
    try:
        attempted = _request(event, "OldResourceProperties")
    except InvalidProperties:
        return  # a failed attempt with bad input made no call
    left = attempted.left_by_failed_update(now=request, physical_id=current_id, deadline=helper.deadline)
    if left is not None:
        logger.info("rolling back a failed update: taking back what it may have granted")
        _record(left, left.revoke(instance=_instance(event), deadline=helper.deadline))


def _replacing(new_id: str, current_id: Any) -> bool:
    if new_id == current_id:
        return False
    # A new id tells CloudFormation to Delete the old one once the update completes.
    logger.info("the ingress changes: replacing", extra={"old_physical_id": current_id, "new_physical_id": new_id})
    return True


@helper.delete
def delete(event: dict[str, Any], _context: Any) -> str:
    physical_id = str(event.get("PhysicalResourceId") or "")
    granted = modes().granted(physical_id)
    if granted is None:
        # Not an id of ours: crhelper's after a failed Create, or one CloudFormation made up
        # when it stopped waiting for a Create that may have gone through.
        try:
            granted = _request(event).resolve(deadline=helper.deadline)
        except (InvalidProperties, CacheNotFound, CacheUnusable) as err:
            logger.info("nothing to revoke: the id is not ours and names no ingress", extra={"why": str(err)})
            metrics.add_metric(name=Change.ALREADY_ABSENT.value, unit=MetricUnit.Count, value=1)
            return physical_id
    _record(granted, granted.revoke(instance=_instance(event), deadline=helper.deadline))
    return physical_id


def _record(granted: Granted[Any, Any], result: Result) -> None:
    helper.Data.update(result.data)
    metrics.add_metric(name=result.change.value, unit=MetricUnit.Count, value=1)
    logger.info("ingress %s", result.change.name.lower().replace("_", " "), extra={"ingress": granted.attributes()})


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
