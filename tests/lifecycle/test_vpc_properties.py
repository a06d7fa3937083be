"""Random VPC-mode stack histories with random faults, against moto's EC2: the rules always match the stack.

Two resources with disjoint sources (``app`` and ``batch``) vary their ports,
target groups and description at random; replacements that narrow, widen or
keep rules, rollbacks, lost answers and repeated deliveries all occur. After
every stack operation that settles, the rules in EC2 are exactly the ones the
live resources declare, as the cache would resolve them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from offline.harness import build_vpc_example
from tests.lifecycle.simulator import CloudFormation, Stack, history_settings
from tests.support import servers

SETTLED = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE", "DELETE_COMPLETE"}
SOURCES = {"Access": "app", "Batch": "batch"}
TARGETS = [None, ["cache"], ["shared"], ["cache", "shared"]]
PORTS = [None, "6380", "7000"]
FAULTS = st.sampled_from(
    ["throttling", "ec2-throttling", "ec2-errors", "hang", "ec2-hang", "receiver-retried", "answer-lost", "none"]
)
#: CloudFormation's own wait: with "3", the function's deadline is 2.25 s, shorter than a hang.
SERVICE_TIMEOUTS = [None, None, "300", "3"]


@st.composite
def access(draw: st.DrawFn, logical: str) -> dict[str, Any]:
    """Properties with group names for ids: the world's ids are only known once it is built."""
    properties: dict[str, Any] = {"ReplicationGroupId": "app-cache", "SourceSecurityGroupId": SOURCES[logical]}
    targets, port = draw(st.sampled_from(TARGETS)), draw(st.sampled_from(PORTS))
    if targets is not None:
        properties["TargetSecurityGroupIds"] = targets
    if port is not None:
        properties["Port"] = port
    if draw(st.booleans()):
        properties["Description"] = draw(st.sampled_from(["sessions", "sessions (v2)"]))
    service_timeout = draw(st.sampled_from(SERVICE_TIMEOUTS))
    if service_timeout is not None:
        properties["ServiceTimeout"] = service_timeout
    trouble = draw(st.integers(0, 11))
    if trouble == 0:
        properties["ReplicationGroupId"] = "gone"  # a cache that does not exist
    elif trouble == 1:
        properties["Port"] = "not-a-port"  # input the function must refuse
    return properties


@st.composite
def templates(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    chosen = draw(st.lists(st.sampled_from(sorted(SOURCES)), min_size=1, max_size=2, unique=True))
    return {logical: draw(access(logical)) for logical in chosen}


class VpcStackHistory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        servers().moto.reset()
        servers().ec2.reset()
        servers().standin.reset()
        servers().standin.upstream = servers().moto.url
        servers().receiver.reset()
        servers().records.reset()
        ids = build_vpc_example(servers().moto, servers().standin)
        app, cache, shared = ids.values()
        (batch,) = servers().moto.security_groups("batch").values()
        self.ids = {"app": app, "batch": batch, "cache": cache, "shared": shared}
        self.cfn = CloudFormation(servers().receiver, servers().standin, budget=30.0, records=servers().records)
        self.stack: Stack | None = None
        self.last_status = "NONE"
        self.count = 0

    def _with_ids(self, template: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        def swap(value: Any) -> Any:
            if isinstance(value, list):
                return [swap(v) for v in value]
            return self.ids.get(value, value) if isinstance(value, str) else value

        return {logical: {k: swap(v) for k, v in props.items()} for logical, props in template.items()}

    @rule(
        action=st.sampled_from(["update", "update", "delete"]),
        template=templates(),
        fault=FAULTS,
        another_fails=st.booleans(),
        twice=st.booleans(),
    )
    def stack_operation(
        self, action: str, template: dict[str, dict[str, Any]], fault: str, another_fails: bool, twice: bool
    ) -> None:
        """As in the classic history: no stack, create; a failed state, delete; else as drawn."""
        if fault == "throttling":
            servers().standin.throttle_next(3)
        elif fault == "ec2-throttling":
            servers().ec2.throttle_next(3)
        elif fault == "ec2-errors":
            servers().ec2.fail_next(1, 500)
            servers().ec2.throttle_next(1)
        elif fault == "hang":  # a Describe held 3 s, then dropped
            servers().standin.stall_next(1, 3.0)
        elif fault == "ec2-hang":  # an EC2 call held 3 s, then dropped unapplied
            servers().ec2.stall_next(1, 3.0)
        elif fault in ("receiver-retried", "answer-lost"):
            servers().receiver.fail_next(2 if fault == "receiver-retried" else 5, 503)
        self.cfn.duplicate_deliveries = twice
        concrete = self._with_ids(template)
        if self.stack is None:
            self.count += 1
            stack = self.cfn.create_stack(f"stack{self.count}", concrete)
            self.last_status = stack.status
            self.stack = stack if stack.status == "CREATE_COMPLETE" or stack.resources else None
        elif action == "delete" or self.stack.status not in SETTLED:
            self.cfn.duplicate_deliveries = False
            self.cfn.delete_stack(self.stack)
            self.last_status = self.stack.status
            if self.stack.status == "DELETE_COMPLETE":
                self.stack = None
        else:
            self.cfn.update_stack(self.stack, concrete, another_resource_fails=another_fails)
            self.last_status = self.stack.status if not self.stack.cleanup_failed else "CLEANUP_FAILED"
        servers().standin.clear_faults()
        servers().ec2.clear_faults()
        servers().receiver.fail_next(0)

    def declared(self) -> set[tuple[str, str, int]]:
        """(source, target, port) the live resources declare, resolved as the cache would resolve them."""
        rules = set()
        for props in self.stack.declared().values() if self.stack else []:
            targets = props.get("TargetSecurityGroupIds") or [self.ids["cache"], self.ids["shared"]]
            port = int(props.get("Port", "6379"))
            rules |= {(props["SourceSecurityGroupId"], target, port) for target in targets}
        return rules

    @invariant()
    def rules_are_what_the_live_resources_declare(self) -> None:
        if self.last_status not in SETTLED:
            return  # a failed operation leaves work for the next one (CloudFormation's *_FAILED states)
        actual = {
            (source, target, port)
            for target in (self.ids["cache"], self.ids["shared"])
            for source, _owner, port, _description in servers().moto.ingress(target)
        }
        assert actual == self.declared()


VpcStackHistory.TestCase.settings = history_settings(10)
TestVpcStackHistory = VpcStackHistory.TestCase
