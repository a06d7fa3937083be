"""A loopback stand-in for the ElastiCache API: cache security groups, and what VPC mode reads of caches.

AWS no longer serves cache security groups to today's accounts and moto does
not implement them, so the demo and the end-to-end tests talk to this server
instead. For VPC mode it also answers DescribeCacheClusters (with the
security groups moto leaves out) and DescribeServerlessCaches (which moto
lacks), and forwards every other action to an ``upstream`` ElastiCache
(moto's server: replication groups and their ports). It speaks the AWS query protocol as the API reference documents it:
form-encoded requests, XML answers in the 2015-02-02 namespace, errors as
``ErrorResponse`` with the documented codes and HTTP statuses.

Changes are asynchronous, as in ElastiCache: an authorized entry reads
``authorizing`` for ``settle_delay`` seconds, then ``authorized``; a revoked one
reads ``revoking``, then disappears. Tests inject faults (throttling, a rate
limit, 5xx, latency, dropped connections) and read back the calls it got.

Run it alone for ``sam local invoke`` or any boto3 client::

    python -m offline.standin --port 4566 --group my-cache-sg --settle 1 [--upstream http://127.0.0.1:5000]
    AWS_ENDPOINT_URL_ELASTICACHE=http://127.0.0.1:4566 aws elasticache describe-cache-security-groups
"""

from __future__ import annotations

import argparse
import http.client
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.sax.saxutils import escape  # used to write XML; nothing here parses any  # nosec B406

from offline.loopback import LoopbackServer, LoopbackService

NAMESPACE = "http://elasticache.amazonaws.com/doc/2015-02-02/"
DEFAULT_ACCOUNT = "123456789012"
CLASSIC_RETIRED_MESSAGE = "Use of cache security groups is not permitted in this API version for your account."


class ApiFault(Exception):
    """An error answer: the documented code, HTTP status and message."""

    def __init__(self, status: int, code: str, message: str, sender: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.sender = sender


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


@dataclass(frozen=True)
class Cache:
    """A cache cluster or serverless cache as VPC mode reads it: its ports and its VPC security groups."""

    name: str
    security_groups: tuple[str, ...]
    port: int | None = 6379
    reader_port: int | None = None  # serverless caches only
    replication_group: str | None = None


@dataclass(frozen=True)
class Call:
    """One request as the stand-in saw it."""

    action: str
    params: dict[str, str]
    status: int
    error: str | None
    at: float


@dataclass
class _Faults:
    throttle_next: int = 0
    error_next: int = 0
    error_status: int = 503
    drop_next: int = 0
    latency_s: float = 0.0
    latency_actions: frozenset[str] | None = None
    rate_per_s: float | None = None
    bucket: float = 0.0
    bucket_at: float = 0.0


class ElastiCacheStandIn(LoopbackService):
    """The API's state, its faults and its record of calls; :meth:`start` serves it on 127.0.0.1."""

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
        self.settle_delay = settle_delay
        self.account_id = account_id
        self.region = region
        self.classic_enabled = classic_enabled
        self._clock = clock
        self._lock = threading.RLock()
        self._groups: dict[str, _Group] = {}
        self._clusters: dict[str, Cache] = {}
        self._serverless: dict[str, Cache] = {}
        self.upstream = upstream
        self._faults = _Faults()
        self._calls: list[Call] = []

    # -- serving ---------------------------------------------------------

    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (a free port unless one is given) and return the endpoint URL."""
        standin = self

        class Handler(QueryRequestHandler):
            api = standin

        self._server = LoopbackServer(Handler, "elasticache-standin", port)
        return self.url

    # -- control, for tests and the demo ----------------------------------

    def reset(self) -> None:
        """Forget every group, fault and recorded call."""
        with self._lock:
            self._groups.clear()
            self._clusters.clear()
            self._serverless.clear()
            self._faults = _Faults()
            self._calls.clear()
            self.classic_enabled = True

    def add_group(self, name: str, description: str = "stand-in group") -> None:
        with self._lock:
            self._groups[name] = _Group(name, description, self.account_id)

    def add_cache_cluster(self, cache: Cache) -> None:
        """A cache cluster (a replication group's member, or a cluster of its own) with its security groups."""
        with self._lock:
            self._clusters[cache.name] = cache

    def add_serverless_cache(self, cache: Cache) -> None:
        with self._lock:
            self._serverless[cache.name] = cache

    def throttle_next(self, count: int) -> None:
        """Answer the next ``count`` calls with ``Throttling`` (HTTP 400), as ElastiCache does."""
        with self._lock:
            self._faults.throttle_next = count

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` calls with a 5xx server error."""
        with self._lock:
            self._faults.error_next = count
            self._faults.error_status = status

    def drop_next(self, count: int) -> None:
        """Close the connection of the next ``count`` calls without answering."""
        with self._lock:
            self._faults.drop_next = count

    def set_latency(self, seconds: float, actions: set[str] | None = None) -> None:
        """Delay every call (or only ``actions``) by ``seconds`` before it is carried out."""
        with self._lock:
            self._faults.latency_s = seconds
            self._faults.latency_actions = frozenset(actions) if actions else None

    def set_rate_limit(self, per_second: float | None) -> None:
        """A token bucket of one second's worth of calls; calls beyond it are throttled."""
        with self._lock:
            self._faults.rate_per_s = per_second
            self._faults.bucket = per_second or 0.0
            self._faults.bucket_at = self._clock()

    def calls(self, action: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if action is None or c.action == action]

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
        action = form.get("Action", "")
        params = {k: v for k, v in form.items() if k not in ("Action", "Version")}
        delay = self._latency_for(action)
        if delay:
            time.sleep(delay)
        status, body, error = self._answer(action, params)
        with self._lock:
            self._calls.append(Call(action, params, status, error, self._clock()))
        return status, body

    def _latency_for(self, action: str) -> float:
        with self._lock:
            faults = self._faults
            if faults.latency_actions is None or action in faults.latency_actions:
                return faults.latency_s
            return 0.0

    def _answer(self, action: str, params: dict[str, str]) -> tuple[int, str | None, str | None]:
        try:
            injected = self._injected_fault()
            if injected == "drop":
                return 0, None, "dropped"
            if action and action not in _OWN_ACTIONS and self.upstream:
                return self._forward(action, params)
            result = self._dispatch(action, params)
        except ApiFault as fault:
            return fault.status, error_xml(fault), fault.code
        return 200, response_xml(action, result), None

    def _injected_fault(self) -> str | None:
        with self._lock:
            faults = self._faults
            if faults.drop_next > 0:
                faults.drop_next -= 1
                return "drop"
            if faults.error_next > 0:
                faults.error_next -= 1
                status = faults.error_status
                code = "ServiceUnavailable" if status == 503 else "InternalFailure"
                raise ApiFault(status, code, "The service is unavailable. Please try again later.", sender=False)
            if faults.throttle_next > 0:
                faults.throttle_next -= 1
                raise ApiFault(400, "Throttling", "Rate exceeded")
            if faults.rate_per_s:
                now = self._clock()
                faults.bucket = min(faults.rate_per_s, faults.bucket + (now - faults.bucket_at) * faults.rate_per_s)
                faults.bucket_at = now
                if faults.bucket < 1.0:
                    raise ApiFault(400, "Throttling", "Rate exceeded")
                faults.bucket -= 1.0
        return None

    def _dispatch(self, action: str, params: dict[str, str]) -> str | None:
        handlers: dict[str, Callable[[dict[str, str]], str | None]] = {
            "CreateCacheSecurityGroup": self._create_group,
            "DeleteCacheSecurityGroup": self._delete_group,
            "DescribeCacheSecurityGroups": self._describe,
            "AuthorizeCacheSecurityGroupIngress": self._authorize,
            "RevokeCacheSecurityGroupIngress": self._revoke,
            "DescribeCacheClusters": self._describe_clusters,
            "DescribeServerlessCaches": self._describe_serverless,
        }
        if not action:
            raise ApiFault(400, "MissingAction", "The request must contain the parameter Action")
        if action not in handlers:
            raise ApiFault(400, "InvalidAction", f"The action {action} is not valid for this web service.")
        if not self.classic_enabled and action in _CLASSIC_ACTIONS:
            raise ApiFault(400, "InvalidParameterValue", CLASSIC_RETIRED_MESSAGE)
        with self._lock:
            return handlers[action](params)

    def _forward(self, action: str, params: dict[str, str]) -> tuple[int, str | None, str | None]:
        """Relay the request to the upstream ElastiCache as it came; its answer goes back unchanged."""
        url = urlsplit(self.upstream or "")
        connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=30)
        try:
            body = urlencode({"Action": action, "Version": "2015-02-02", **params})
            # moto tells services apart by the credential scope of the signature, which it does not check.
            scope = f"Credential=offline/20260101/{self.region}/elasticache/aws4_request"
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=0",
            }
            connection.request("POST", "/", body, headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        error = re.search(r"<Code>([^<]*)</Code>", text) if response.status >= 400 else None
        return response.status, text, error.group(1) if error else None

    def _describe_clusters(self, params: dict[str, str]) -> str:
        name = params.get("CacheClusterId")
        if name is not None and name not in self._clusters:
            raise ApiFault(404, "CacheClusterNotFound", f"Cache cluster {name} not found.")
        clusters = [self._clusters[name]] if name else sorted(self._clusters.values(), key=lambda c: c.name)
        show_nodes = params.get("ShowCacheNodeInfo") == "true"
        return f"<CacheClusters>{''.join(self._cluster_xml(c, show_nodes) for c in clusters)}</CacheClusters>"

    def _cluster_xml(self, cache: Cache, show_nodes: bool) -> str:
        address = f"{cache.name}.abc123.0001.use1.cache.amazonaws.com"
        nodes = (
            f"<CacheNodes><CacheNode><CacheNodeId>0001</CacheNodeId><CacheNodeStatus>available</CacheNodeStatus>"
            f"<Endpoint><Address>{address}</Address><Port>{cache.port}</Port></Endpoint></CacheNode></CacheNodes>"
            if show_nodes and cache.port
            else ""
        )
        groups = "".join(
            f"<member><SecurityGroupId>{g}</SecurityGroupId><Status>active</Status></member>"
            for g in cache.security_groups
        )
        group = f"<ReplicationGroupId>{cache.replication_group}</ReplicationGroupId>" if cache.replication_group else ""
        return (
            f"<CacheCluster><CacheClusterId>{escape(cache.name)}</CacheClusterId>"
            f"<CacheClusterStatus>available</CacheClusterStatus><Engine>redis</Engine>{group}{nodes}"
            f"<SecurityGroups>{groups}</SecurityGroups>"
            f"<ARN>arn:aws:elasticache:{self.region}:{self.account_id}:cluster:{escape(cache.name)}</ARN></CacheCluster>"
        )

    def _describe_serverless(self, params: dict[str, str]) -> str:
        name = params.get("ServerlessCacheName")
        if name is not None and name not in self._serverless:
            raise ApiFault(404, "ServerlessCacheNotFoundFault", f"Serverless cache {name} not found.")
        caches = [self._serverless[name]] if name else sorted(self._serverless.values(), key=lambda c: c.name)
        return f"<ServerlessCaches>{''.join(self._serverless_xml(c) for c in caches)}</ServerlessCaches>"

    def _serverless_xml(self, cache: Cache) -> str:
        address = f"{cache.name}-abc123.serverless.use1.cache.amazonaws.com"
        endpoints = "".join(
            f"<{tag}><Address>{address}</Address><Port>{port}</Port></{tag}>"
            for tag, port in (("Endpoint", cache.port), ("ReaderEndpoint", cache.reader_port))
            if port
        )
        groups = "".join(f"<SecurityGroupId>{g}</SecurityGroupId>" for g in cache.security_groups)
        return (
            f"<member><ServerlessCacheName>{escape(cache.name)}</ServerlessCacheName><Status>available</Status>"
            f"<Engine>valkey</Engine><SecurityGroupIds>{groups}</SecurityGroupIds>{endpoints}</member>"
        )

    def _create_group(self, params: dict[str, str]) -> str:
        name = _required(params, "CacheSecurityGroupName")
        description = _required(params, "Description")
        if name.lower() == "default":
            raise ApiFault(400, "InvalidParameterValue", "CacheSecurityGroupName cannot be 'Default'.")
        if name in self._groups:
            raise ApiFault(400, "CacheSecurityGroupAlreadyExists", f"Cache security group {name} already exists.")
        group = self._groups[name] = _Group(name, description, self.account_id)
        return self._group_xml(group)

    def _delete_group(self, params: dict[str, str]) -> None:
        group = self._group(_required(params, "CacheSecurityGroupName"))
        del self._groups[group.name]

    def _describe(self, params: dict[str, str]) -> str:
        max_records = int(params.get("MaxRecords", "100")) if params.get("MaxRecords", "100").isdigit() else -1
        if not 20 <= max_records <= 100:
            raise ApiFault(400, "InvalidParameterValue", "MaxRecords must be between 20 and 100.")
        if "CacheSecurityGroupName" in params:
            groups = [self._group(params["CacheSecurityGroupName"])]
        else:
            groups = sorted(self._groups.values(), key=lambda g: g.name)
        marker = params.get("Marker", "")
        start = 0
        if marker:
            if not marker.isdigit() or int(marker) > len(groups):
                raise ApiFault(400, "InvalidParameterValue", "The Marker is not valid.")
            start = int(marker)
        page = groups[start : start + max_records]
        next_marker = str(start + max_records) if start + max_records < len(groups) else ""
        items = "".join(f"<CacheSecurityGroup>{self._group_body(g)}</CacheSecurityGroup>" for g in page)
        marker_xml = f"<Marker>{next_marker}</Marker>" if next_marker else ""
        return f"{marker_xml}<CacheSecurityGroups>{items}</CacheSecurityGroups>"

    def _authorize(self, params: dict[str, str]) -> str:
        group, key = self._ingress_target(params)
        current = self._entry(group, key)
        if current is not None and current.status == "revoking":
            raise ApiFault(
                400, "InvalidCacheSecurityGroupState", f"Cache security group {group.name} is revoking {key[0]}."
            )
        if current is not None:
            raise ApiFault(
                400,
                "AuthorizationAlreadyExists",
                f"EC2 security group {key[0]} owned by {key[1]} is already authorized for {group.name}.",
            )
        group.entries[key] = _Entry(key[0], key[1], "authorizing", self._clock())
        return self._group_xml(group)

    def _revoke(self, params: dict[str, str]) -> str:
        group, key = self._ingress_target(params)
        current = self._entry(group, key)
        if current is None:
            raise ApiFault(
                404, "AuthorizationNotFound", f"EC2 security group {key[0]} owned by {key[1]} is not authorized."
            )
        if current.status != "authorized":
            raise ApiFault(
                400,
                "InvalidCacheSecurityGroupState",
                f"Cache security group {group.name} is {current.status} {key[0]}.",
            )
        group.entries[key] = _Entry(key[0], key[1], "revoking", self._clock())
        return self._group_xml(group)

    def _ingress_target(self, params: dict[str, str]) -> tuple[_Group, tuple[str, str]]:
        name = _required(params, "CacheSecurityGroupName")
        ec2_group = _required(params, "EC2SecurityGroupName")
        owner = _required(params, "EC2SecurityGroupOwnerId")
        if not re.fullmatch(r"\d{12}", owner):
            raise ApiFault(400, "InvalidParameterValue", f"Invalid AWS account number: {owner}")
        return self._group(name), (ec2_group, owner)

    def _group(self, name: str) -> _Group:
        group = self._groups.get(name)
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
        return f"<CacheSecurityGroup>{self._group_body(group)}</CacheSecurityGroup>"

    def _group_body(self, group: _Group) -> str:
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
            f"<OwnerId>{group.owner_id}</OwnerId>"
            f"<CacheSecurityGroupName>{escape(group.name)}</CacheSecurityGroupName>"
            f"<Description>{escape(group.description)}</Description>"
            f"<EC2SecurityGroups>{entries}</EC2SecurityGroups>"
            f"<ARN>{escape(arn)}</ARN>"
        )


_CLASSIC_ACTIONS = frozenset(
    {
        "CreateCacheSecurityGroup",
        "DeleteCacheSecurityGroup",
        "DescribeCacheSecurityGroups",
        "AuthorizeCacheSecurityGroupIngress",
        "RevokeCacheSecurityGroupIngress",
    }
)
#: Served here even with an upstream; everything else goes to it.
_OWN_ACTIONS = _CLASSIC_ACTIONS | {"DescribeCacheClusters", "DescribeServerlessCaches"}


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ApiFault(400, "MissingParameter", f"The request must contain the parameter {name}")
    return value


def response_xml(action: str, result: str | None, namespace: str = NAMESPACE) -> str:
    """A query-protocol answer: ``<ActionResponse><ActionResult>result</ActionResult>`` and metadata."""
    request_id = uuid.uuid4()
    inner = f"<{action}Result>{result}</{action}Result>" if result is not None else ""
    return (
        f'<{action}Response xmlns="{namespace}">{inner}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    )


def error_xml(fault: ApiFault, namespace: str = NAMESPACE) -> str:
    kind = "Sender" if fault.sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type><Code>{escape(fault.code)}</Code>'
        f"<Message>{escape(fault.message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )


class QueryApi(Protocol):
    def handle(self, form: dict[str, str]) -> tuple[int, str | None]:
        """(HTTP status, XML body) for one form-encoded request, or (0, None) to drop the connection."""


class QueryRequestHandler(BaseHTTPRequestHandler):
    """Serves a :class:`QueryApi` over HTTP/1.1 on loopback."""

    # Headers and body leave in separate writes: without TCP_NODELAY, Nagle and
    # delayed ACKs add 40 ms to every exchange on loopback.
    disable_nagle_algorithm = True
    api: QueryApi
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8")
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        status, body = self.api.handle(form)
        if body is None:
            self.close_connection = True
            self.connection.close()
            return
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read the record of calls instead."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the ElastiCache cache security group stand-in on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--settle", type=float, default=1.0, help="seconds an entry reads authorizing/revoking")
    parser.add_argument("--group", action="append", default=[], help="a cache security group to create at start")
    parser.add_argument("--account", default=DEFAULT_ACCOUNT)
    parser.add_argument("--no-classic", action="store_true", help="answer as an account without EC2-Classic does")
    parser.add_argument("--upstream", help="an ElastiCache endpoint (moto_server) for the actions not served here")
    parser.add_argument(
        "--cluster", action="append", default=[], metavar="ID=SG[,SG...][:PORT]", help="a cache cluster and its groups"
    )
    parser.add_argument(
        "--serverless", action="append", default=[], metavar="NAME=SG[,SG...]", help="a serverless cache (6379, 6380)"
    )
    args = parser.parse_args(argv)
    standin = ElastiCacheStandIn(args.settle, args.account, classic_enabled=not args.no_classic, upstream=args.upstream)
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
