"""Lambda entry point: wires crhelper to the lifecycle. The rules live in :mod:`cache_ingress`."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from cache_ingress import elasticache_api, lifecycle, rules
from cache_ingress.response import FAILED, CustomResource

logger = Logger(
    service="cache-sg-ingress",
    level=os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO",
)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "CacheSecurityGroupIngress")
helper = CustomResource(logger)
_api: elasticache_api.ElastiCacheApi | None = None


def api() -> elasticache_api.ElastiCacheApi:
    """The ElastiCache client, made on first use so that a bad setting fails the request, not the import."""
    global _api
    if _api is None:
        _api = elasticache_api.ElastiCacheApi(elasticache_api.make_client())
    return _api


@helper.create
def create(event: dict[str, Any], _context: Any) -> str:
    ingress = rules.parse_properties(event.get("ResourceProperties"), event["StackId"])
    # Reported even if a call below fails, so the rollback Delete revokes what may have gone through.
    helper.PhysicalResourceId = ingress.physical_id
    _record(ingress, lifecycle.ensure_authorized(api(), ingress, helper.deadline))
    return ingress.physical_id


@helper.update
def update(event: dict[str, Any], _context: Any) -> str:
    ingress = rules.parse_properties(event.get("ResourceProperties"), event["StackId"])
    current_id = event.get("PhysicalResourceId")
    replacing = ingress.physical_id != current_id
    if replacing:
        # A new id tells CloudFormation to Delete the old one once the update completes.
        logger.info("the ingress changes: replacing", extra={"old_physical_id": current_id})
    result = lifecycle.ensure_authorized(api(), ingress, helper.deadline)
    if not replacing:
        abandoned = rules.unrecorded_by_failed_update(event.get("OldResourceProperties"), event["StackId"], current_id)
        if abandoned is not None:
            logger.info("rolling back a failed update: taking back what it may have authorized")
            _record(abandoned, lifecycle.ensure_revoked(api(), abandoned, helper.deadline))
    _record(ingress, result)
    return ingress.physical_id


@helper.delete
def delete(event: dict[str, Any], _context: Any) -> str:
    physical_id = str(event.get("PhysicalResourceId") or "")
    ingress = rules.parse_physical_id(physical_id)
    if ingress is None:
        # Not an id of ours: crhelper's after a failed Create, or one CloudFormation made up
        # when it stopped waiting for a Create that may have gone through.
        try:
            ingress = rules.parse_properties(event.get("ResourceProperties"), event["StackId"])
        except rules.InvalidProperties as err:
            logger.info("nothing to revoke: the id is not ours and the properties are invalid", extra={"why": str(err)})
            metrics.add_metric(name=lifecycle.Change.ALREADY_ABSENT.value, unit=MetricUnit.Count, value=1)
            return physical_id
    _record(ingress, lifecycle.ensure_revoked(api(), ingress, helper.deadline))
    return physical_id


def _record(ingress: rules.Ingress, result: lifecycle.Result) -> None:
    helper.Data.update(result.data)
    metrics.add_metric(name=result.change.value, unit=MetricUnit.Count, value=1)
    logger.info("ingress %s", result.change.name.lower().replace("_", " "), extra={"ingress": ingress.api_params()})


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
