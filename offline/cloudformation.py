"""A loopback stand-in for CloudFormation's DescribeStackResource: which physical id a logical id holds now.

VPC mode asks it on Delete, so that the cleanup after a replacement leaves the
rules the new resource shares with the old one. Whoever plays CloudFormation
(the lifecycle simulator, the demo) keeps :meth:`record` up to date.
"""

from __future__ import annotations

import threading

from offline.loopback import LoopbackService
from offline.query_protocol import ApiFault, error_xml, response_xml, serve

NAMESPACE = "http://cloudformation.amazonaws.com/doc/2010-05-15/"


class StackRecordsStandIn(LoopbackService):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[tuple[str, str], str] = {}
        #: Drop every connection unanswered, as an API that cannot be reached.
        self.unreachable = False

    def start(self) -> str:
        self._server = serve(self, "cloudformation-standin")
        return self.url

    def record(self, stack_id: str, logical_id: str, physical_id: str | None) -> None:
        """What CloudFormation now holds for the resource; None once it is gone from the stack."""
        with self._lock:
            if physical_id is None:
                self._records.pop((stack_id, logical_id), None)
            else:
                self._records[(stack_id, logical_id)] = physical_id

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self.unreachable = False

    def handle(self, form: dict[str, str]) -> tuple[int, str | None]:
        if self.unreachable:
            return 0, None
        action = form.get("Action", "")
        stack, logical = form.get("StackName", ""), form.get("LogicalResourceId", "")
        try:
            if action != "DescribeStackResource":
                raise ApiFault(400, "InvalidAction", f"The action {action} is not valid for this stand-in.")
            with self._lock:
                physical_id = self._records.get((stack, logical))
                if physical_id is None and not any(s == stack for s, _ in self._records):
                    raise ApiFault(400, "ValidationError", f"Stack with id {stack} does not exist")
            if physical_id is None:
                raise ApiFault(400, "ValidationError", f"Resource {logical} does not exist for stack {stack}")
        except ApiFault as fault:
            return fault.status, error_xml(fault, NAMESPACE)
        detail = (
            f"<StackResourceDetail><StackId>{stack}</StackId><LogicalResourceId>{logical}</LogicalResourceId>"
            f"<PhysicalResourceId>{physical_id}</PhysicalResourceId>"
            "<ResourceType>Custom::CacheIngress</ResourceType><ResourceStatus>UPDATE_COMPLETE</ResourceStatus>"
            "<LastUpdatedTimestamp>2026-01-01T00:00:00Z</LastUpdatedTimestamp></StackResourceDetail>"
        )
        return 200, response_xml(action, detail, NAMESPACE)
