"""A loopback stand-in for the ElastiCache API: cache security groups, and what VPC mode reads of caches.

AWS no longer serves cache security groups to today's accounts and moto does
not implement them, so the demo and the end-to-end tests talk to this server
instead. For VPC mode it also answers DescribeCacheClusters (with the
security groups moto leaves out) and DescribeServerlessCaches (which moto
lacks), and forwards every other action to an ``upstream`` ElastiCache
(moto's server: replication groups and their ports). It speaks the AWS query
protocol (:mod:`offline.query_protocol`) as the API reference documents it: XML
answers in the 2015-02-02 namespace, errors with the documented codes and HTTP
statuses.

Changes are asynchronous, as in ElastiCache: an authorized entry reads
``authorizing`` for ``settle_delay`` seconds, then ``authorized``; a revoked one
reads ``revoking``, then disappears. Tests inject faults (:mod:`offline.faults`:
throttling, a rate limit, 5xx, latency, dropped connections) and read back the
calls it got.

Run it alone for ``sam local invoke`` or any boto3 client::

    python -m offline.standin --port 4566 --group my-cache-sg --settle 1 [--upstream http://127.0.0.1:5000]
    AWS_ENDPOINT_URL_ELASTICACHE=http://127.0.0.1:4566 aws elasticache describe-cache-security-groups
"""

from __future__ import annotations

import argparse
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from xml.sax.saxutils import escape  # used to write XML; nothing here parses any  # nosec B406

from offline.caches import Cache as Cache
from offline.caches import CacheCatalog
from offline.call_log import Call, CallLog
from offline.faults import Fault, FaultPlan
from offline.query_protocol import ApiFault, QueryService, error_xml, forward, response_xml

VERSION = "2015-02-02"
NAMESPACE = f"http://elasticache.amazonaws.com/doc/{VERSION}/"
DEFAULT_ACCOUNT = "123456789012"
CLASSIC_RETIRED_MESSAGE = "Use of cache security groups is not permitted in this API version for your account."


@dataclass
class _Entry:
    ec2_group: str
    owner_id: str
    status: str
    since: float


@dataclass
class _Group:
    name: str
    description: str
    owner_id: str
    entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)


class ElastiCacheStandIn(FaultPlan, QueryService):
    """The API's state, its faults and its record of calls; :meth:`start` serves it on 127.0.0.1."""

    thread_name = "elasticache-standin"

    def __init__(
        self,
        settle_delay: float = 0.0,
        account_id: str = DEFAULT_ACCOUNT,
        region: str = "us-east-1",
        classic_enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        upstream: str | None = None,
    ) -> None:
        """``upstream``: an ElastiCache endpoint (moto's server) for the actions not served here."""
        super().__init__(clock)
        self.settle_delay = settle_delay
        self.account_id = account_id
        self.region = region
        self.classic_enabled = classic_enabled
        self._clock = clock
        self._lock = threading.RLock()
        self._groups: dict[str, _Group] = {}
        self._caches = CacheCatalog(region, account_id)
        self.upstream = upstream
        self._log = CallLog(self._clock)

    # -- serving ---------------------------------------------------------

    # -- control, for tests and the demo ----------------------------------

    def reset(self) -> None:
        """Forget every group, fault and recorded call."""
        with self._lock:
            self._groups.clear()
            self._caches = CacheCatalog(self.region, self.account_id)
            self.clear_faults()
            self._log.clear()
            self.classic_enabled = True

    def add_group(self, name: str, description: str = "stand-in group") -> None:
        with self._lock:
            self._groups[name.lower()] = _Group(name.lower(), description, self.account_id)

    def add_cache_cluster(self, cache: Cache) -> None:
        """A cache cluster (a replication group's member, or a cluster of its own) with its security groups."""
        with self._lock:
            self._caches.clusters[cache.name] = cache

    def add_serverless_cache(self, cache: Cache) -> None:
        with self._lock:
            self._caches.serverless[cache.name] = cache

    def delete_cache(self, name: str) -> None:
        """A cache cluster or serverless cache deleted by hand: Describe no longer finds it."""
        with self._lock:
            self._caches.clusters.pop(name, None)
            self._caches.serverless.pop(name, None)

    def calls(self, action: str | None = None) -> list[Call]:
        return self._log.calls(action)

    def ingress_table(self) -> list[dict[str, str]]:
        """Every entry of every group, as the API would describe it now."""
        with self._lock:
            rows = []
            for group in self._groups.values():
                for entry in self._settled(group):
                    rows.append(
                        {
                            "CacheSecurityGroupName": group.name,
                            "EC2SecurityGroupName": entry.ec2_group,
                            "EC2SecurityGroupOwnerId": entry.owner_id,
                            "Status": entry.status,
                        }
                    )
            return rows

    def authorized(self) -> set[tuple[str, str, str]]:
        """(cache group, EC2 group, owner) of every entry not on its way out."""
        return {
            (r["CacheSecurityGroupName"], r["EC2SecurityGroupName"], r["EC2SecurityGroupOwnerId"])
            for r in self.ingress_table()
            if r["Status"] != "revoking"
        }

    # -- the API -----------------------------------------------------------

    def handle(self, form: dict[str, str]) -> tuple[int, str | None]:
        """Carry out one request; return (HTTP status, XML body), or (0, None) to drop the connection."""
        arrived = self._clock()
        action = form.get("Action", "")
        params = {k: v for k, v in form.items() if k not in ("Action", "Version")}
        fault = self.take_fault(action)
        if fault is not None:
            time.sleep(fault.wait)
        status, body, error = self._answer(action, params, fault)
        self._log.record(Call(action, params, status, error, arrived, self._clock()))
        return status, body

    def _answer(self, action: str, params: dict[str, str], fault: Fault | None) -> tuple[int, str | None, str | None]:
        if fault is not None and fault.kind == "drop":
            return 0, None, "dropped"
        try:
            _raise_injected(fault)
            if action and action not in _OWN_ACTIONS and self.upstream:
                return forward(
                    self.upstream, "elasticache", self.region, {"Action": action, "Version": VERSION, **params}
                )
            result = self._dispatch(action, params)
        except ApiFault as error:
            return error.status, error_xml(error, NAMESPACE), error.code
        return 200, response_xml(action, result, NAMESPACE), None

    def _dispatch(self, action: str, params: dict[str, str]) -> str | None:
        handlers: dict[str, Callable[[dict[str, str]], str | None]] = {
            "CreateCacheSecurityGroup": self._create_group,
            "DescribeCacheSecurityGroups": self._describe,
            "AuthorizeCacheSecurityGroupIngress": lambda p: self._change(p, "authorizing"),
            "RevokeCacheSecurityGroupIngress": lambda p: self._change(p, "revoking"),
            "DescribeCacheClusters": self._caches.describe_clusters,
            "DescribeServerlessCaches": self._caches.describe_serverless,
        }
        if not action:
            raise ApiFault(400, "MissingAction", "The request must contain the parameter Action")
        if action not in handlers:
            raise ApiFault(400, "InvalidAction", f"The action {action} is not valid for this web service.")
        if not self.classic_enabled and action in _CLASSIC_ACTIONS:
            raise ApiFault(400, "InvalidParameterValue", CLASSIC_RETIRED_MESSAGE)
        with self._lock:
            return handlers[action](params)

    def _create_group(self, params: dict[str, str]) -> str:
        name = _required(params, "CacheSecurityGroupName")
        description = _required(params, "Description")
        name = name.lower()  # ElastiCache stores a cache security group's name in lower case
        if name == "default":
            raise ApiFault(400, "InvalidParameterValue", "CacheSecurityGroupName cannot be 'Default'.")
        if name in self._groups:
            raise ApiFault(400, "CacheSecurityGroupAlreadyExists", f"Cache security group {name} already exists.")
        group = self._groups[name] = _Group(name, description, self.account_id)
        return self._group_xml(group)

    def _describe(self, params: dict[str, str]) -> str:
        if "CacheSecurityGroupName" in params:
            groups = [self._group(params["CacheSecurityGroupName"])]
        else:
            groups = sorted(self._groups.values(), key=lambda g: g.name)
        return f"<CacheSecurityGroups>{''.join(self._group_xml(g) for g in groups)}</CacheSecurityGroups>"

    def _change(self, params: dict[str, str], status: str) -> str:
        """Start authorizing or revoking one entry (``status``), refused as ElastiCache refuses it."""
        group, key = self._ingress_target(params)
        current = self._entry(group, key)
        if current is None and status == "revoking":
            raise ApiFault(
                404, "AuthorizationNotFound", f"EC2 security group {key[0]} owned by {key[1]} is not authorized."
            )
        if current is not None and status == "authorizing" and current.status != "revoking":
            raise ApiFault(
                400,
                "AuthorizationAlreadyExists",
                f"EC2 security group {key[0]} owned by {key[1]} is already authorized for {group.name}.",
            )
        if current is not None and current.status != "authorized":
            raise ApiFault(
                400,
                "InvalidCacheSecurityGroupState",
                f"Cache security group {group.name} is {current.status} {key[0]}.",
            )
        group.entries[key] = _Entry(key[0], key[1], status, self._clock())
        return self._group_xml(group)

    def _ingress_target(self, params: dict[str, str]) -> tuple[_Group, tuple[str, str]]:
        name = _required(params, "CacheSecurityGroupName")
        ec2_group = _required(params, "EC2SecurityGroupName")
        owner = _required(params, "EC2SecurityGroupOwnerId")
        if not re.fullmatch(r"\d{12}", owner):
            raise ApiFault(400, "InvalidParameterValue", f"Invalid AWS account number: {owner}")
        return self._group(name), (ec2_group, owner)

    def _group(self, name: str) -> _Group:
        group = self._groups.get(name.lower())
        if group is None:
            raise ApiFault(404, "CacheSecurityGroupNotFound", f"CacheSecurityGroup {name} not found.")
        return group

    def _entry(self, group: _Group, key: tuple[str, str]) -> _Entry | None:
        list(self._settled(group))
        return group.entries.get(key)

    def _settled(self, group: _Group) -> Iterator[_Entry]:
        """Move entries whose change has had ``settle_delay`` to their final state, then yield them."""
        now = self._clock()
        for key, entry in list(group.entries.items()):
            if now - entry.since >= self.settle_delay:
                if entry.status == "authorizing":
                    entry.status = "authorized"
                elif entry.status == "revoking":
                    del group.entries[key]
                    continue
            yield entry

    def _group_xml(self, group: _Group) -> str:
        entries = "".join(
            "<EC2SecurityGroup>"
            f"<Status>{e.status}</Status>"
            f"<EC2SecurityGroupName>{escape(e.ec2_group)}</EC2SecurityGroupName>"
            f"<EC2SecurityGroupOwnerId>{e.owner_id}</EC2SecurityGroupOwnerId>"
            "</EC2SecurityGroup>"
            for e in self._settled(group)
        )
        arn = f"arn:aws:elasticache:{self.region}:{group.owner_id}:securitygroup:{group.name}"
        return (
            f"<CacheSecurityGroup><OwnerId>{group.owner_id}</OwnerId>"
            f"<CacheSecurityGroupName>{escape(group.name)}</CacheSecurityGroupName>"
            f"<Description>{escape(group.description)}</Description>"
            f"<EC2SecurityGroups>{entries}</EC2SecurityGroups>"
            f"<ARN>{escape(arn)}</ARN></CacheSecurityGroup>"
        )


_CLASSIC_ACTIONS = frozenset(
    {
        "CreateCacheSecurityGroup",
        "DescribeCacheSecurityGroups",
        "AuthorizeCacheSecurityGroupIngress",
        "RevokeCacheSecurityGroupIngress",
    }
)
#: Served here even with an upstream; everything else goes to it.
_OWN_ACTIONS = _CLASSIC_ACTIONS | CacheCatalog.ACTIONS


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ApiFault(400, "MissingParameter", f"The request must contain the parameter {name}")
    return value


def _raise_injected(fault: Fault | None) -> None:
    """An injected failure or throttling, as ElastiCache answers it."""
    if fault is not None and fault.kind == "fail":
        code = "ServiceUnavailable" if fault.status == 503 else "InternalFailure"
        raise ApiFault(fault.status, code, "The service is unavailable. Please try again later.", sender=False)
    if fault is not None and fault.kind == "throttle":
        raise ApiFault(400, "Throttling", "Rate exceeded")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the ElastiCache cache security group stand-in on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds an entry reads authorizing/revoking")
    parser.add_argument("--group", action="append", default=[], help="a cache security group to create at start")
    parser.add_argument("--upstream", help="an ElastiCache endpoint (moto_server) for the actions not served here")
    parser.add_argument(
        "--cluster", action="append", default=[], metavar="ID=SG[,SG...][:PORT]", help="a cache cluster and its groups"
    )
    parser.add_argument(
        "--serverless", action="append", default=[], metavar="NAME=SG[,SG...]", help="a serverless cache (6379, 6380)"
    )
    args = parser.parse_args(argv)
    standin = ElastiCacheStandIn(args.settle, upstream=args.upstream)
    for name in args.group:
        standin.add_group(name)
    for spec in args.cluster:
        name, _, rest = spec.partition("=")
        groups, _, port = rest.partition(":")
        standin.add_cache_cluster(Cache(name, tuple(groups.split(",")), int(port or 6379)))
    for spec in args.serverless:
        name, _, groups = spec.partition("=")
        standin.add_serverless_cache(Cache(name, tuple(groups.split(",")), 6379, reader_port=6380))
    print(f"ElastiCache stand-in on {standin.start(args.port)}; Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()


if __name__ == "__main__":
    main()
