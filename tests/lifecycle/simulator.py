"""CloudFormation's side of the custom resource protocol, played against the real handler.

The simulator sends the events CloudFormation sends, in the order it sends
them, for stack create, update (with and without replacement), rollbacks,
cleanups and delete, to the real ``lambda_handler`` through the tests' one
driver (``tests.support.handle``); ElastiCache is the loopback stand-in and
the answers travel over https to the receiver. Every
invocation is checked as CloudFormation would take it: one answer, before the
deadline, a non-empty id of at most 1 KB, a body of at most 4096 bytes.
Where an answer never arrives, CloudFormation's own behaviour is modelled: it
stops waiting, counts the request as failed and, for a Create, later sends
Delete with an id it made up. An answer after the resource's ServiceTimeout
(counted from the invocation's start) is a protocol violation: CloudFormation
would have stopped waiting, and sent that Delete while the work went on.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from cache_ingress import classic_rules
from cache_ingress.errors import InvalidProperties
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.support import OFFLINE_MODES, handle, parse_request

TOKEN = "arn:aws:lambda:us-east-1:123456789012:function:cache-sg-ingress"
RESOURCE_TYPE = "Custom::CacheIngress"

Properties = Mapping[str, Any]
Template = Mapping[str, Properties]  # logical id -> properties


@dataclass(frozen=True)
class Answer:
    status: str
    physical_id: str
    reason: str
    data: dict[str, Any]


@dataclass
class Resource:
    physical_id: str
    properties: Properties


@dataclass
class Stack:
    name: str
    stack_id: str
    resources: dict[str, Resource] = field(default_factory=dict)
    status: str = "CREATE_IN_PROGRESS"
    cleanup_failed: bool = False

    def declared(self) -> Template:
        return {logical: r.properties for logical, r in self.resources.items()}


class ProtocolViolation(AssertionError):
    """The function broke a rule CloudFormation relies on."""


@dataclass
class Invocation:
    event: dict[str, Any]
    answer: Answer | None
    answered_after: float | None
    budget: float


class CloudFormation:
    def __init__(
        self,
        receiver: ResponseReceiver,
        standin: ElastiCacheStandIn,
        budget: float = 10.0,
        before_each: Callable[[dict[str, Any]], float | None] | None = None,
    ) -> None:
        """``before_each`` sees every event before it is sent and may return a shorter Lambda budget."""
        self.receiver = receiver
        self.standin = standin
        self.budget = budget
        self.before_each = before_each
        self.log: list[Invocation] = []
        self.duplicate_deliveries = False

    # -- stack operations ------------------------------------------------------------

    def create_stack(self, name: str, template: Template) -> Stack:
        stack = Stack(name, f"arn:aws:cloudformation:us-east-1:123456789012:stack/{name}/{uuid.uuid4()}")
        for logical, properties in template.items():
            answer = self._send("Create", stack, logical, properties)
            if answer is None or answer.status != "SUCCESS":
                # The failed resource is deleted with the id it reported, or one CloudFormation invents.
                failed_id = answer.physical_id if answer else f"{name}-{logical}-{uuid.uuid4().hex[:12].upper()}"
                stack.resources[logical] = Resource(failed_id, properties)
                stack.status = "ROLLBACK_IN_PROGRESS"
                stack.status = "ROLLBACK_COMPLETE" if self._delete_all(stack) else "ROLLBACK_FAILED"
                return stack
            stack.resources[logical] = Resource(answer.physical_id, properties)
        stack.status = "CREATE_COMPLETE"
        return stack

    def update_stack(self, stack: Stack, template: Template, another_resource_fails: bool = False) -> Stack:
        """Update, then either cleanup (old ids of replacements, removed resources) or rollback."""
        before = {logical: Resource(r.physical_id, r.properties) for logical, r in stack.resources.items()}
        touched: dict[str, Properties] = {}  # logical id -> the properties this update tried
        failed = False
        for logical, properties in template.items():
            if logical in before and dict(before[logical].properties) == dict(properties):
                continue
            touched[logical] = properties
            if logical in before:
                answer = self._send(
                    "Update", stack, logical, properties, before[logical].physical_id, before[logical].properties
                )
            else:
                answer = self._send("Create", stack, logical, properties)
            if answer is None or answer.status != "SUCCESS":
                failed = True
                if logical not in before:  # a failed new resource is deleted in rollback cleanup
                    fallback = f"{stack.name}-{logical}-{uuid.uuid4().hex[:12].upper()}"
                    stack.resources[logical] = Resource(answer.physical_id if answer else fallback, properties)
                break
            stack.resources[logical] = Resource(answer.physical_id, properties)
        if failed or another_resource_fails:
            return self._roll_back_update(stack, before, touched)
        stack.status = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
        ok = True
        for logical, old in before.items():
            current = stack.resources.get(logical)
            if logical not in template:
                ok &= self._delete(stack, logical, old)
                del stack.resources[logical]
            elif current is not None and current.physical_id != old.physical_id:
                ok &= self._delete(stack, logical, old)  # the replaced resource's old id
        stack.status = "UPDATE_COMPLETE"  # a failed cleanup does not fail the update; it leaves a resource behind
        stack.cleanup_failed = not ok
        return stack

    def delete_stack(self, stack: Stack, retain: frozenset[str] = frozenset()) -> Stack:
        stack.status = "DELETE_IN_PROGRESS"
        kept = {k: v for k, v in stack.resources.items() if k in retain}
        for logical in retain:  # DeletionPolicy: Retain: no Delete is sent
            stack.resources.pop(logical, None)
        ok = self._delete_all(stack)
        stack.resources = kept if ok else {**stack.resources, **kept}
        stack.status = "DELETE_COMPLETE" if ok else "DELETE_FAILED"
        return stack

    # -- internals --------------------------------------------------------------------

    def _roll_back_update(self, stack: Stack, before: dict[str, Resource], touched: dict[str, Properties]) -> Stack:
        stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
        ok = True
        new_ids: list[tuple[str, Resource]] = []
        for logical in reversed(list(touched)):
            current = stack.resources.get(logical)
            if logical not in before:
                if current is not None:
                    new_ids.append((logical, current))
                    del stack.resources[logical]
                continue
            old = before[logical]
            # The failed resource's new id was never recorded; a succeeded one's was.
            recorded = current.physical_id if current is not None else old.physical_id
            answer = self._send("Update", stack, logical, old.properties, recorded, touched[logical])
            if answer is None or answer.status != "SUCCESS":
                ok = False
                continue
            if recorded != answer.physical_id and current is not None:
                new_ids.append((logical, current))
            stack.resources[logical] = Resource(answer.physical_id, old.properties)
        stack.status = "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"
        for logical, resource in new_ids:
            ok &= self._delete(stack, logical, resource)
        stack.status = "UPDATE_ROLLBACK_COMPLETE" if ok else "UPDATE_ROLLBACK_FAILED"
        return stack

    def _delete_all(self, stack: Stack) -> bool:
        ok = True
        for logical, resource in reversed(list(stack.resources.items())):
            ok &= self._delete(stack, logical, resource)
        if ok:
            stack.resources = {}
        return ok

    def _delete(self, stack: Stack, logical: str, resource: Resource) -> bool:
        answer = self._send("Delete", stack, logical, resource.properties, resource.physical_id)
        return answer is not None and answer.status == "SUCCESS"

    def _send(
        self,
        request_type: str,
        stack: Stack,
        logical: str,
        properties: Properties,
        physical_id: str | None = None,
        old_properties: Properties | None = None,
    ) -> Answer | None:
        event: dict[str, Any] = {
            "RequestType": request_type,
            "ServiceToken": TOKEN,
            "ResponseURL": "",  # the driver gives each delivery its own URL on the receiver
            "StackId": stack.stack_id,
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": logical,
            "ResourceType": RESOURCE_TYPE,
            "ResourceProperties": {"ServiceToken": TOKEN, **properties},
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        if old_properties is not None:
            event["OldResourceProperties"] = {"ServiceToken": TOKEN, **old_properties}
        answer = self._invoke(event)
        if self.duplicate_deliveries:
            # Delivered again, as an async retry would: CloudFormation acts on the first answer that arrives.
            again = self._invoke(event)
            if (
                answer is not None
                and again is not None
                and answer.status == "SUCCESS"
                and (again.status != "SUCCESS" or again.physical_id != answer.physical_id)
            ):
                raise ProtocolViolation(f"a repeated delivery undid a success: {answer} then {again}")
            answer = answer or again
        return answer

    def _invoke(self, event: dict[str, Any]) -> Answer | None:
        budget = (self.before_each(event) if self.before_each else None) or self.budget
        started = time.monotonic()  # the stand-in's clock: a call counts as this request's if it arrived since
        delivery = handle(event, seconds=budget)
        # A call an earlier request left hanging is answered, and so logged, during this one: it is not this one's.
        if not may_call_the_api(event) and any(c.arrived >= started for c in self.standin.calls()):
            raise ProtocolViolation(f"a request with bad input reached the API: {event['ResourceProperties']}")
        puts = delivery.puts
        if len(puts) > 1:
            raise ProtocolViolation(f"{len(puts)} answers to one {event['RequestType']}")
        if not puts:
            # Lost on the way (the receiver failed every try): CloudFormation stops waiting.
            self.log.append(Invocation(delivery.event, None, None, budget))
            return None
        put = puts[0]
        answered_after = put.at - delivery.started
        if answered_after > budget:
            raise ProtocolViolation(f"answered after {answered_after:.2f} s, past the {budget} s deadline")
        waited = service_timeout(event)
        if waited is not None and answered_after > waited:
            raise ProtocolViolation(f"answered after {answered_after:.2f} s, when CloudFormation stopped at {waited} s")
        if len(put.body) > 4096:
            raise ProtocolViolation(f"a body of {len(put.body)} bytes")
        body = put.json()
        physical_id = body.get("PhysicalResourceId")
        if not isinstance(physical_id, str) or not physical_id or len(physical_id.encode()) > 1024:
            raise ProtocolViolation(f"bad PhysicalResourceId {physical_id!r}")
        if body["Status"] not in ("SUCCESS", "FAILED") or body["RequestId"] != event["RequestId"]:
            raise ProtocolViolation(f"a body CloudFormation would reject: {body}")
        if request_type_keeps_id(event) and physical_id != event["PhysicalResourceId"]:
            raise ProtocolViolation(f"a Delete answered with another id: {physical_id!r}")
        answer = Answer(body["Status"], physical_id, body.get("Reason", ""), body.get("Data", {}))
        self.log.append(Invocation(delivery.event, answer, answered_after, budget))
        return answer


def history_shards(name: str, shards: int) -> list[Any]:
    """One stateful history as ``shards`` pytest parameters that draw its examples between them.

    Under ``pytest -n`` the shards run on separate workers at once, so the
    longest test is a fraction of the history. Each is marked ``slow``, which
    the conftest schedules first, and is its own ``xdist_group``.
    """
    return [
        pytest.param(shard, marks=[pytest.mark.slow, pytest.mark.xdist_group(f"{name}-{shard}")], id=f"shard{shard}")
        for shard in range(shards)
    ]


def history_settings(examples: int, shards: int) -> settings:
    """One shard's settings, for a history that draws ``examples`` in all in CI, 60 with
    HYPOTHESIS_PROFILE=thorough (make thorough); rounded up, so the shards never draw fewer in all."""
    thorough = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
    total = 60 if thorough else examples
    return settings(
        max_examples=-(-total // shards),
        stateful_step_count=8 if thorough else 5,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def may_call_the_api(event: Mapping[str, Any]) -> bool:
    """Only valid properties, or a Delete of an id this resource minted, may lead to an API call."""
    physical_id = event.get("PhysicalResourceId")
    if event["RequestType"] == "Delete" and OFFLINE_MODES.granted(str(physical_id or "")) is not None:
        return True
    try:
        parse_request(event.get("ResourceProperties"), event["StackId"], event["LogicalResourceId"])
    except InvalidProperties:
        return False
    return True


def declared_ingress(stack_id: str, properties: Properties) -> tuple[str, str, str] | None:
    """The (cache group, EC2 group, owner) a resource's properties declare, None if they are invalid."""
    try:
        ingress = classic_rules.parse_properties({"ServiceToken": TOKEN, **properties}, stack_id)
    except InvalidProperties:
        return None
    return (ingress.cache_group, ingress.ec2_group, ingress.owner_id)


def service_timeout(event: Mapping[str, Any]) -> float | None:
    """How long CloudFormation waits for this request's answer (ServiceTimeout), if the resource says."""
    value = event["ResourceProperties"].get("ServiceTimeout")
    return float(value) if isinstance(value, str) and value.isascii() and value.isdigit() else None


def request_type_keeps_id(event: Mapping[str, Any]) -> bool:
    return event["RequestType"] == "Delete" and bool(event.get("PhysicalResourceId"))
