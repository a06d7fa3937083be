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

from cache_ingress import aws_api, drift_check
from cache_ingress.classic_lifecycle import ClassicMode
from cache_ingress.custom_resource import CustomResource
from cache_ingress.errors import AccessRefused, CacheNotFound, CacheUnusable, InvalidProperties, LedgerUnreachable
from cache_ingress.modes import Granted, Modes, Request
from cache_ingress.protocol import Change, Instance, Result
from cache_ingress.quota_check import RuleQuota
from cache_ingress.response_body import FAILED
from cache_ingress.survey import Apis, Survey
from cache_ingress.timing import Deadline
from cache_ingress.vpc_lifecycle import VpcMode

logger = Logger(
    service="cache-sg-ingress",
    level=os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO",
)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or "CacheIngress")
helper = CustomResource(logger)


@functools.cache
def api() -> aws_api.ElastiCacheApi:
    """The ElastiCache client, made on first use so that a bad setting fails the request, not the import."""
    return aws_api.ElastiCacheApi(aws_api.make_client("elasticache"))


@functools.cache
def ec2() -> aws_api.Ec2Api:
    return aws_api.Ec2Api(aws_api.make_client("ec2"))


@functools.cache
def memorydb() -> aws_api.MemoryDbApi:
    """MemoryDB, where a MemoryDBClusterName is looked up."""
    return aws_api.MemoryDbApi(aws_api.make_client("memorydb"))


@functools.cache
def ledger() -> aws_api.LedgerApi:
    """The ownership ledger, the DynamoDB table LEDGER_TABLE names (template.yaml sets it); checked on first use."""
    return aws_api.LedgerApi(aws_api.make_client("dynamodb"), os.environ.get("LEDGER_TABLE", ""))


@functools.cache
def cloudformation() -> aws_api.CloudFormationApi:
    """CloudFormation, where the scheduled check asks whether each holder's stack still exists."""
    return aws_api.CloudFormationApi(aws_api.make_client("cloudformation"))


@functools.cache
def service_quotas() -> aws_api.ServiceQuotasApi:
    """Service Quotas, where the quota of rules per security group is read when a grant nears EC2's default."""
    return aws_api.ServiceQuotasApi(aws_api.make_client("service-quotas"))


@functools.cache
def rule_quota() -> RuleQuota:
    """The sandbox's quota of rules per security group: read from Service Quotas, then kept a few minutes."""
    return RuleQuota(service_quotas())


@functools.cache
def modes() -> Modes:
    vpc = VpcMode(api(), ec2(), memorydb(), ledger(), quota=rule_quota())
    return Modes(classic=ClassicMode(api(), ledger()), vpc=vpc)


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
    deadline = helper.deadline  # this invocation's, whatever a later one sets
    request = _request(event)
    granted = request.resolve(deadline=deadline)

    def held() -> None:
        # Reported once a hold is recorded, even if a call after fails, so the rollback Delete lets go of it and
        # revokes what may have gone through; a Create whose hold failed answers with crhelper's id, naming nothing.
        helper.PhysicalResourceId = granted.physical_id

    result = granted.grant(
        request=request, instance=_instance(event), deadline=deadline, undo_on_failure=False, on_held=held
    )
    _record(granted, result)
    return granted.physical_id


@helper.update
def update(event: dict[str, Any], _context: Any) -> str:
    deadline = helper.deadline
    instance = _instance(event)
    try:
        request = _request(event)
        granted = request.resolve(deadline=deadline)
    except (InvalidProperties, CacheNotFound, CacheUnusable) as err:
        return _restore_held_id(event, instance, err, deadline)
    replacing = _replacing(granted.physical_id, instance.physical_id)
    # A failed replacement keeps the old id, so no Delete would ever come for what it added: take that back.
    result = granted.grant(request=request, instance=instance, deadline=deadline, undo_on_failure=replacing)
    if not replacing:
        _take_back_failed_attempt(event, instance, request, deadline)
    _record(granted, result)
    return granted.physical_id


def _restore_held_id(event: dict[str, Any], instance: Instance, err: Exception, deadline: Deadline) -> str:
    """An Update whose properties cannot be resolved: a rollback keeps the id it holds, anything else fails.

    A rollback Update carries the properties its held id was made from, which
    may no longer resolve: the cache was deleted by hand, or they no longer
    parse (a stricter check since). It cannot fail, or the stack is stuck in
    UPDATE_ROLLBACK_FAILED: it keeps the held id. It is told apart without any
    API call by its OldResourceProperties (the failed attempt), which do not
    describe the held id; or, when only the description differs, by both
    asking for the same rules, in which case the held id's rules are the
    resource whichever way the update goes. Otherwise the error stands.
    """
    held = modes().granted(instance.physical_id)
    if held is None:
        raise err
    try:
        old: Request[Any, Any] | None = _request(event, "OldResourceProperties")
    except InvalidProperties:
        old = None
    try:
        new: Request[Any, Any] | None = _request(event)
    except InvalidProperties:
        new = None
    if new is not None and not new.could_name(held):
        raise err
    rolling_back = old is None or not old.could_name(held) or (new is not None and old.same_asked(new))
    if not rolling_back:
        raise err
    logger.warning("the properties do not resolve: keeping the rules the held id names", extra={"why": str(err)})
    if new is None:
        # Nothing to ask AWS with: the held id stands as it is; bad input makes no call.
        _record(held, Result(Change.ALREADY_PRESENT, held.attributes()))
    else:
        _record(held, held.reassert(request=new, instance=instance, deadline=deadline))
    return instance.physical_id


def _take_back_failed_attempt(
    event: dict[str, Any], instance: Instance, request: Request[Any, Any], deadline: Deadline
) -> None:
    """If this Update rolls back a failed Update of this resource, revoke what that one may have added.

    The failed attempt is OldResourceProperties, in either mode: a rollback
    may also cross from one mode to the other. This is cleanup on top of the
    restore that already succeeded, so nothing here fails the request: what
    cannot be taken back (its cache refused or gone, the deadline) is logged
    and left.
    """
    try:
        attempted = _request(event, "OldResourceProperties")
        left = attempted.left_by_failed_update(now=request, physical_id=instance.physical_id, deadline=deadline)
        if left is not None:
            logger.info("rolling back a failed update: taking back what it may have granted")
            _record(left, left.release(instance=instance, deadline=deadline))
    except InvalidProperties:
        return  # a failed attempt with bad input made no call
    except Exception as err:  # the restore stands; a leftover is reported, not a failure
        logger.warning(
            "could not take back what a failed update may have granted", extra={"why": f"{type(err).__name__}: {err}"}
        )


def _replacing(new_id: str, current_id: str) -> bool:
    if new_id == current_id:
        return False
    # A new id tells CloudFormation to Delete the old one once the update completes.
    logger.info("the ingress changes: replacing", extra={"old_physical_id": current_id, "new_physical_id": new_id})
    return True


@helper.delete
def delete(event: dict[str, Any], _context: Any) -> str:
    deadline = helper.deadline
    instance = _instance(event)
    physical_id = instance.physical_id
    granted = modes().granted(physical_id)
    if granted is None:
        # Not an id of ours: crhelper's after a failed Create, or one CloudFormation made up
        # when it stopped waiting for a Create that may have gone through. If the cache cannot
        # be found, or looking it up is refused, that Create could not have granted anything either.
        try:
            granted = _request(event).resolve(deadline=deadline)
        except (InvalidProperties, CacheNotFound, CacheUnusable, AccessRefused) as err:
            _nothing_to_revoke("the id is not ours and names no ingress", err, logger.info)
            return physical_id
        try:
            _record(granted, granted.release(instance=instance, deadline=deadline))
        except LedgerUnreachable as err:
            # The Create that failed before this id was reported held nothing: it changed nothing in AWS either.
            _nothing_to_revoke("the id is not ours and the ledger cannot say more", err, logger.warning)
        return physical_id
    _record(granted, granted.release(instance=instance, deadline=deadline))
    return physical_id


def _nothing_to_revoke(why: str, err: Exception, log: Any) -> None:
    """A Delete of an id that is not ours, answered SUCCESS with nothing taken back: logged and counted."""
    log(f"nothing to revoke: {why}", extra={"why": str(err)})
    metrics.add_metric(name=Change.ALREADY_ABSENT.value, unit=MetricUnit.Count, value=1)


def _record(granted: Granted[Any, Any], result: Result) -> None:
    helper.Data.update(result.data)
    metrics.add_metric(name=result.change.value, unit=MetricUnit.Count, value=1)
    logger.info("ingress %s", result.change.name.lower().replace("_", " "), extra={"ingress": granted.attributes()})


def scheduled_check(context: Any) -> dict[str, Any]:
    """The drift check a scheduled event asks for (template.yaml, DriftCheckSchedule): counted, logged, never
    answered to anyone; with RepairDrift, drift is repaired."""
    deadline = Deadline.for_invocation(context.get_remaining_time_in_millis() / 1000.0, None)
    # The function's own account and region, from its ARN: the stacks it can ask CloudFormation about.
    _, _, _, region, account, *_ = str(context.invoked_function_arn).split(":")
    survey = Survey(Apis(ledger(), ec2(), api(), memorydb(), cloudformation()), deadline, account, region)
    outcome = drift_check.run(
        survey,
        repair_drift=drift_check.repair_on(os.environ),
        log=lambda message, fields: logger.warning(message, extra=fields),
    )
    for name, count in outcome.counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
    logger.info("drift check done", extra={"findings": outcome.counts, "repaired": len(outcome.repaired)})
    return {"findings": outcome.counts, "repaired": [str(action) for action in outcome.repaired]}


@metrics.log_metrics
def lambda_handler(event: Any, context: Any) -> dict[str, Any] | None:
    if drift_check.is_scheduled(event):
        return scheduled_check(context)
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
