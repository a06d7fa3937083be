"""Random VPC-mode histories of several stacks, people and concurrent operations, against moto's EC2 and ledger.

Two stacks, each with up to two resources whose cache (the serverless
cache ``sessions`` or the MemoryDB cluster ``sessions``, behind the same
groups), sources (the groups ``app`` and ``batch``, an IPv4 and an IPv6
range, a prefix list), ports and target groups are drawn so that resources of
both stacks often declare the same rules; replacements, rollbacks, lost answers,
repeated deliveries and throttling all occur, and the cache's Describe is
throttled or hangs whichever service it goes to (the ElastiCache stand-in, or
the MemoryDB front before moto). People add rules by hand. And
another stack's resource is created or deleted in the middle of an
operation, between two of its EC2 calls, as a second Lambda sandbox would.

After every settled operation the rules in EC2 are exactly the union of what
the live resources declare, as the cache would resolve them, and the rules
made by hand; each rule made by hand keeps its own description.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import app as handler
from cache_ingress import aws_api
from cache_ingress.errors import ResourceError
from cache_ingress.protocol import Instance
from cache_ingress.timing import Deadline
from cache_ingress.vpc_lifecycle import VpcMode
from cache_ingress.vpc_rules import RuleSet
from offline.harness import build_vpc_example
from offline.standin import Cache
from tests.lifecycle.simulator import CloudFormation, Stack, history_settings, history_shards
from tests.support import servers

SETTLED = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "ROLLBACK_COMPLETE", "DELETE_COMPLETE"}
#: Each source's name -> the property that names it; the world swaps names for ids (and the IPv6 range
#: is declared in an upper-case spelling, which must be the same rules as the canonical one).
SOURCES = {
    "app": "SourceSecurityGroupId",
    "batch": "SourceSecurityGroupId",
    "office": "SourceCidrIp",
    "vpn": "SourceCidrIpv6",
    "agents": "SourcePrefixListId",
}
CIDRS = {"office": "10.20.0.0/16", "vpn": "2001:DB8:AB::/48"}
TARGETS = [None, ["cache"], ["shared"], ["cache", "shared"]]
#: The caches a resource may name, each behind both groups, and their endpoint ports.
CACHES = {"ServerlessCacheName": (6379, 6380), "MemoryDBClusterName": (6379,)}
PORTS = [None, "6379", "6380"]
FAULTS = st.sampled_from(
    ["throttling", "ec2-throttling", "ec2-errors", "hang", "ec2-hang", "receiver-retried", "answer-lost", "none"]
)
#: CloudFormation's own wait: with "3", the function's deadline is 2.25 s, shorter than a hang.
SERVICE_TIMEOUTS = [None, None, "300", "3"]
OTHER_STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/elsewhere/0d0e0f00-1111-2222-3333-444455556666"

Rule = tuple[str, str, int]  # (source id, target id, port)


@st.composite
def access(draw: st.DrawFn) -> dict[str, Any]:
    """Properties with group names for ids: the world's ids are only known once it is built."""
    cache, source = draw(st.sampled_from(sorted(CACHES))), draw(st.sampled_from(sorted(SOURCES)))
    properties: dict[str, Any] = {cache: "sessions", SOURCES[source]: source}
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
    trouble = draw(st.integers(0, 13))
    if trouble == 0:
        properties[cache] = "gone"  # a cache that does not exist
    elif trouble == 1:
        properties["Port"] = "not-a-port"  # input the function must refuse
    elif trouble == 2:
        properties["Port"] = "22"  # a port the cache does not serve
    elif trouble == 3:
        properties = {"ServerlessCacheName": "sessions", "SourceCidrIp": "0.0.0.0/0"}  # the internet, not opted in
    return properties


@st.composite
def templates(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    chosen = draw(st.lists(st.sampled_from(["Access", "Batch"]), min_size=1, max_size=2, unique=True))
    return {logical: draw(access()) for logical in chosen}


class VpcStackHistory(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        servers().reset_aws()
        servers().standin.reset()
        servers().standin.upstream = servers().moto.url
        servers().receiver.reset()
        ids = build_vpc_example(servers().moto, servers().standin)
        app, cache, shared = ids.values()
        (batch,) = servers().moto.security_groups("batch").values()
        # Both caches are reached over IPv4 and IPv6, so every source may be let into either.
        servers().standin.add_serverless_cache(
            Cache("sessions", (cache, shared), port=6379, reader_port=6380, network_type="dual_stack")
        )
        servers().moto.client("memorydb").create_cluster(
            ClusterName="sessions",
            NodeType="db.t4g.small",
            ACLName="open-access",
            SecurityGroupIds=[cache, shared],
            NetworkType="dual_stack",
        )
        agents = servers().moto.prefix_list("build-agents", ["10.8.0.0/16"])
        self.ids = {"app": app, "batch": batch, "cache": cache, "shared": shared, "agents": agents, **CIDRS}
        self.cfn = CloudFormation(servers().receiver, servers().standin, budget=30.0)
        self.stacks: list[Stack | None] = [None, None]
        self.last_status = "NONE"
        self.count = 0
        self.by_hand: dict[Rule, str] = {}
        # Another stack's resource, run by another sandbox: its own clients, the same real code.
        self.elsewhere = VpcMode(
            aws_api.ElastiCacheApi(aws_api.make_client("elasticache")),
            aws_api.Ec2Api(aws_api.make_client("ec2")),
            aws_api.MemoryDbApi(aws_api.make_client("memorydb")),
            aws_api.LedgerApi(aws_api.make_client("dynamodb"), os.environ["LEDGER_TABLE"]),
        )
        self.elsewhere_held: tuple[RuleSet, dict[str, Any]] | None = None

    def _with_ids(self, template: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        def swap(value: Any) -> Any:
            if isinstance(value, list):
                return [swap(v) for v in value]
            return self.ids.get(value, value) if isinstance(value, str) else value

        return {logical: {k: swap(v) for k, v in props.items()} for logical, props in template.items()}

    @rule(
        which=st.integers(0, 1),
        action=st.sampled_from(["update", "update", "delete"]),
        template=templates(),
        fault=FAULTS,
        another_fails=st.booleans(),
        twice=st.booleans(),
        meanwhile=st.none() | st.tuples(st.integers(1, 6), access()),
        lag=st.sampled_from([0.0, 0.0, 0.5]),
    )
    def stack_operation(
        self,
        which: int,
        action: str,
        template: dict[str, dict[str, Any]],
        fault: str,
        another_fails: bool,
        twice: bool,
        meanwhile: tuple[int, dict[str, Any]] | None,
        lag: float,
    ) -> None:
        """No stack: create one; a failed state: delete; else as drawn. ``meanwhile``: the other sandbox's turn.

        ``lag``: EC2 as eventually consistent as AWS says it may be, for this operation: its reads show the
        writes of the last ``lag`` seconds late, and a rule made meanwhile answers NotFound that long.
        """
        servers().ec2.set_read_lag(lag)
        servers().ec2.new_resources_not_found_for(lag)
        if fault == "throttling":  # the cache's Describe, ElastiCache's or MemoryDB's
            servers().standin.throttle_next(3)
            servers().memorydb.throttle_next(3)
        elif fault == "ec2-throttling":
            servers().ec2.throttle_next(3)
        elif fault == "ec2-errors":
            servers().ec2.fail_next(1, 500)
            servers().ec2.throttle_next(1)
        elif fault == "hang":  # the cache's Describe held 3 s, then dropped
            servers().standin.stall_next(1, 3.0)
            servers().memorydb.stall_next(1, 3.0)
        elif fault == "ec2-hang":  # an EC2 call held 3 s, then dropped unapplied
            servers().ec2.stall_next(1, 3.0)
        elif fault in ("receiver-retried", "answer-lost"):
            servers().receiver.fail_next(2 if fault == "receiver-retried" else 5, 503)
        self.cfn.duplicate_deliveries = twice
        threads: list[threading.Thread] = []
        hook = self._interleave(*meanwhile, threads) if meanwhile else None
        events = handler.ec2().client.meta.events
        if hook:
            events.register("before-call.ec2", hook)
        try:
            self._operate(which, action, self._with_ids(template), another_fails)
        finally:
            if hook:
                events.unregister("before-call.ec2", hook)
            for thread in threads:
                thread.join()
            servers().standin.clear_faults()
            servers().memorydb.clear_faults()
            servers().ec2.clear_faults()
            servers().ec2.set_read_lag(0.0)
            servers().ec2.new_resources_not_found_for(0.0)
            servers().receiver.fail_next(0)

    def _operate(self, which: int, action: str, template: dict[str, dict[str, Any]], another_fails: bool) -> None:
        stack = self.stacks[which]
        if stack is None:
            self.count += 1
            stack = self.cfn.create_stack(f"stack{self.count}", template)
            self.last_status = stack.status
            self.stacks[which] = stack if stack.status == "CREATE_COMPLETE" or stack.resources else None
        elif action == "delete" or stack.status not in SETTLED:
            self.cfn.duplicate_deliveries = False
            self.cfn.delete_stack(stack)
            self.last_status = stack.status
            if stack.status == "DELETE_COMPLETE":
                self.stacks[which] = None
        else:
            self.cfn.update_stack(stack, template, another_resource_fails=another_fails)
            self.last_status = stack.status if not stack.cleanup_failed else "CLEANUP_FAILED"

    def _interleave(self, at: int, properties: dict[str, Any], threads: list[threading.Thread]) -> Any:
        """A hook that, at the handler's ``at``-th EC2 call, starts the other stack's operation beside it.

        The call waits a moment, so the other operation's first calls come
        between two of the handler's, then both run on at once.
        """
        seen = [0]

        def hook(**_: Any) -> None:
            seen[0] += 1
            if seen[0] == at:
                thread = threading.Thread(target=self._elsewhere, args=(self._with_ids({"R": properties})["R"],))
                threads.append(thread)
                thread.start()
                thread.join(timeout=0.3)

        return hook

    def _elsewhere(self, properties: dict[str, Any]) -> None:
        """Create the other stack's resource, or delete it, as its own CloudFormation and sandbox would."""
        if self.elsewhere_held is not None:
            granted, _ = self.elsewhere_held
            self.elsewhere.release(granted, instance=self._instance(granted.physical_id), deadline=Deadline(20.0))
            self.elsewhere_held = None
            return
        deadline = Deadline(20.0)
        try:
            request = self.elsewhere.parse_properties(properties, stack_id=OTHER_STACK, logical_id="Elsewhere")
            granted = self.elsewhere.resolve(request, deadline=deadline)
        except ResourceError:
            return  # refused before any change: nothing was granted
        try:
            self.elsewhere.grant(
                granted,
                request=request,
                instance=self._instance(""),
                deadline=deadline,
                undo_on_failure=False,
                on_held=lambda: None,
            )
        except ResourceError:  # the Create failed: its rollback Delete lets go of what it held
            self.elsewhere.release(granted, instance=self._instance(granted.physical_id), deadline=Deadline(20.0))
            return
        self.elsewhere_held = (granted, properties)

    @staticmethod
    def _instance(physical_id: str) -> Instance:
        return Instance(OTHER_STACK, "Elsewhere", physical_id)

    @precondition(lambda self: len(self.by_hand) < 3)
    @rule(
        source=st.sampled_from(sorted(SOURCES)),
        into=st.sampled_from(["cache", "shared"]),
        port=st.sampled_from([6379, 6380]),
    )
    def a_person_adds_a_rule(self, source: str, into: str, port: int) -> None:
        """Made by hand: counted only if it was new (adding an existing rule changes nothing in EC2)."""
        key = (canonical(SOURCES[source], self.ids[source]), self.ids[into], port)
        if key in self._actual():
            return
        description = f"by hand {len(self.by_hand)}"
        field, entry = {
            "SourceSecurityGroupId": ("UserIdGroupPairs", {"GroupId": key[0], "UserId": "123456789012"}),
            "SourceCidrIp": ("IpRanges", {"CidrIp": key[0]}),
            "SourceCidrIpv6": ("Ipv6Ranges", {"CidrIpv6": key[0]}),
            "SourcePrefixListId": ("PrefixListIds", {"PrefixListId": key[0]}),
        }[SOURCES[source]]
        permission = {
            "IpProtocol": "tcp",
            "FromPort": port,
            "ToPort": port,
            field: [{**entry, "Description": description}],
        }
        servers().moto.client("ec2").authorize_security_group_ingress(GroupId=key[1], IpPermissions=[permission])
        self.by_hand[key] = description

    def _declared(self, settled: bool = True) -> set[Rule]:
        """What the resources of settled stacks (or, with ``settled=False``, of stacks CloudFormation
        left in a failed state, whose last operation may or may not have gone through) declare, resolved
        as the cache they name would resolve them."""
        rules: set[Rule] = set()
        live = [p for s in self.stacks if s and (s.status in SETTLED) == settled for p in s.declared().values()]
        if settled and self.elsewhere_held is not None:
            live.append(self.elsewhere_held[1])
        for props in live:
            targets = props.get("TargetSecurityGroupIds") or [self.ids["cache"], self.ids["shared"]]
            cache = next(kind for kind in CACHES if kind in props)
            ports = [int(props["Port"])] if "Port" in props else list(CACHES[cache])
            (named,) = (name for name in set(SOURCES.values()) if name in props)
            source = canonical(named, props[named])
            rules |= {(source, t, p) for t in targets for p in ports}
        return rules

    def _actual(self) -> dict[Rule, str]:
        return {
            (source, target, port): description
            for target in (self.ids["cache"], self.ids["shared"])
            for source, _owner, port, description in servers().moto.ingress(target)
        }

    @invariant()
    def rules_are_what_live_resources_declare_plus_what_people_made(self) -> None:
        if self.last_status not in SETTLED:
            return  # a failed operation leaves work for the next one (CloudFormation's *_FAILED states)
        actual = self._actual()
        certain = self._declared() | set(self.by_hand)
        assert certain <= set(actual), "a rule a live resource or a person holds is missing"
        assert set(actual) <= certain | self._declared(settled=False), "a rule nothing holds is left"
        for key, description in self.by_hand.items():
            assert actual[key] == description, f"the rule made by hand {key} was rewritten"


def canonical(kind: str, value: str) -> str:
    """A source as EC2 holds it once the function has sent it: a CIDR in its shortest spelling."""
    return str(ipaddress.ip_network(value)) if kind.startswith("SourceCidr") else value


#: Its examples drawn by this many tests, run at once under pytest -n (see history_shards).
SHARDS = 3


@pytest.mark.parametrize("shard", history_shards("vpc-history", SHARDS))
def test_random_vpc_stack_histories_keep_the_invariants(shard: int) -> None:
    """Ten random VPC-mode histories of two stacks, people and concurrent operations, split across the shards."""
    run_state_machine_as_test(VpcStackHistory, settings=history_settings(10, SHARDS))
