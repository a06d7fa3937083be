"""Runs the real handler offline: the AWS stand-ins, the https receiver, and a Lambda-like context.

moto's server plays EC2, the replication groups (the ElastiCache stand-in
forwards to it what it does not serve itself), MemoryDB's clusters and
DynamoDB, which holds the ownership ledger's table (``LEDGER_TABLE``), made
as template.yaml declares it: both modes record who holds what there.

Used by ``make demo`` and ``make invoke``. The handler module is imported only
after the environment points boto3 at the stand-in and the sender at the
receiver's certificate, exactly as the Lambda runtime would configure it.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from offline.receiver import ResponseReceiver
from offline.standin import Cache, ElastiCacheStandIn

if TYPE_CHECKING:
    from offline.moto_backend import MotoBackend

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
STACK_ACCOUNT = "123456789012"
_NO_SECRET = "offline-secret-key-the-stand-ins-never-check"  # noqa: S105 - no signature is checked  # nosec B105
_NO_TOKEN = "offline-session-token-the-stand-ins-never-check"  # noqa: S105  # nosec B105
#: What every offline run sets: a region and credentials the stand-in accepts without checking. Each is a
#: string found nowhere else, so a test can search the logs for it (tests/loopback/test_no_secrets_in_logs.py).
OFFLINE_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIAOFFLINEDEMOKEY42",
    "AWS_SECRET_ACCESS_KEY": _NO_SECRET,
    "AWS_SESSION_TOKEN": _NO_TOKEN,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class LambdaContext:
    """The parts of the Lambda context the handler reads, counting down from ``seconds``.

    Each invocation gets a request id of its own, and a log stream named as Lambda names them.
    """

    function_name = "cache-sg-ingress"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cache-sg-ingress"
    memory_limit_in_mb = 256
    log_group_name = "/aws/lambda/cache-sg-ingress"

    def __init__(self, seconds: float = 30.0) -> None:
        self._ends_at = time.monotonic() + seconds
        self.aws_request_id = str(uuid.uuid4())
        self.log_stream_name = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{uuid.uuid4().hex}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._ends_at - time.monotonic()) * 1000))


class OfflineAws:
    def __init__(self, settle_delay: float = 0.5, quiet: bool = True, debug: bool = False) -> None:
        from offline.moto_backend import MotoBackend  # moto takes a second to import: not at the module's import

        self.standin = ElastiCacheStandIn(settle_delay=settle_delay, account_id=STACK_ACCOUNT)
        self.receiver = ResponseReceiver()
        self.moto: MotoBackend = MotoBackend()
        self._quiet = quiet and not debug
        self._debug = debug
        self._app: ModuleType | None = None

    def __enter__(self) -> OfflineAws:
        endpoint = self.standin.start()
        self.receiver.start()
        os.environ.update(
            OFFLINE_ENV,
            AWS_ENDPOINT_URL_ELASTICACHE=endpoint,
            SSL_CERT_FILE=self.receiver.cafile,
        )
        from offline.ledger_table import LEDGER_TABLE, create_ledger_table

        self.standin.upstream = self.moto.start()
        create_ledger_table(self.moto.url, LEDGER_TABLE)
        os.environ["AWS_ENDPOINT_URL_EC2"] = self.moto.url
        os.environ["AWS_ENDPOINT_URL_MEMORYDB"] = self.moto.url
        os.environ["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = self.moto.url
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = self.moto.url
        os.environ["AWS_ENDPOINT_URL_CLOUDFORMATION"] = self.moto.url
        os.environ["AWS_ENDPOINT_URL_STS"] = self.moto.url  # who cache-ingress runs as
        os.environ["LEDGER_TABLE"] = LEDGER_TABLE
        os.environ.pop("AWS_PROFILE", None)
        if self._debug:
            # Everything at DEBUG, botocore and crhelper included: what a function deployed with LogLevel=DEBUG logs.
            os.environ["POWERTOOLS_LOG_LEVEL"] = "DEBUG"
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
            self.handler_module()  # as in Lambda, the function is loaded before anything calls AWS
        if self._quiet:
            os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
            os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
        return self

    def __exit__(self, *exc: object) -> None:
        self.standin.stop()
        self.receiver.stop()
        self.moto.stop()

    def create_cache_security_group(self, name: str) -> None:
        """Through the real API, with a boto3 client of its own: the demo's one piece of set-up."""
        import boto3

        client = boto3.client("elasticache")
        client.create_cache_security_group(CacheSecurityGroupName=name, Description="made by the offline demo")

    def build_vpc_example(self) -> dict[str, str]:
        return build_vpc_example(self.moto, self.standin)

    def vpc_rules(self, group_id: str) -> set[tuple[str, str, int, str]]:
        """The TCP rules into ``group_id``, as moto holds them: (source group, owner, port, description)."""
        return self.moto.ingress(group_id)

    def ledger(self) -> dict[str, dict[str, Any]]:
        """The ownership ledger as its table holds it: rule key -> entry, and who holds it (``held_by``)."""
        from offline.ledger_table import read_ledger

        return read_ledger(self.moto.url)

    def invoke(self, event: dict[str, Any], seconds: float = 60.0) -> dict[str, Any]:
        """Send the event to the real lambda_handler; return the body CloudFormation received."""
        event = {**event, "ResponseURL": self.receiver.new_url()}
        self.handler_module().lambda_handler(event, LambdaContext(seconds))
        return self.receiver.answer(event["ResponseURL"])

    def handler_module(self) -> ModuleType:
        """The handler, from ``handler/`` or from the folder ``CACHE_INGRESS_HANDLER_DIR`` names (a built package)."""
        if self._app is None:
            sys.path.insert(0, os.environ.get("CACHE_INGRESS_HANDLER_DIR") or str(ROOT / "handler"))
            self._app = importlib.import_module("app")
        return self._app


def build_vpc_example(moto: MotoBackend, standin: ElastiCacheStandIn) -> dict[str, str]:
    """The world the ``events/vpc-*.json`` examples assume: the replication group ``app-cache`` guarded by
    groups ``app-cache`` and ``shared-clients``, the MemoryDB cluster ``app-store`` guarded by
    ``shared-clients``, both on 6379 and reached over IPv4 and IPv6 (``dual_stack``), and a group
    ``app-servers`` to let in.

    Returns each example id of the events -> the id moto gave that group.
    """
    groups = moto.security_groups(*EXAMPLE_GROUPS.values())
    guards = (groups["app-cache"], groups["shared-clients"])
    # moto keeps the replication group and its port...
    moto.client("elasticache").create_replication_group(
        ReplicationGroupId="app-cache",
        ReplicationGroupDescription="sessions (offline)",
        Engine="redis",
        CacheNodeType="cache.t4g.micro",
        NumCacheClusters=1,
        SecurityGroupIds=list(guards),
        Port=6379,
        NetworkType="dual_stack",
    )
    # ...and the stand-in keeps what moto leaves out: the security groups its member clusters show.
    standin.add_cache_cluster(
        Cache("app-cache-001", guards, 6379, replication_group="app-cache", network_type="dual_stack")
    )
    # moto keeps MemoryDB clusters whole: their endpoint's port and their security groups.
    moto.client("memorydb").create_cluster(
        ClusterName=MEMORYDB_EXAMPLE,
        NodeType="db.t4g.small",
        ACLName="open-access",
        SecurityGroupIds=[groups["shared-clients"]],
        Port=6379,
        NetworkType="dual_stack",
    )
    return {example: groups[name] for example, name in EXAMPLE_GROUPS.items()}


def load_event(name: str | Path, ids: Mapping[str, str] | None = None, **changes: Any) -> dict[str, Any]:
    """A sample event, as the demo, ``make invoke``, the benchmarks and the tests all read it.

    ``name`` is a file in ``events/`` (``"create.json"``) or a path to one. The
    example security group ids are swapped for ``ids`` (see
    :func:`build_vpc_example`), since moto makes its own. Then each of
    ``changes`` replaces that top-level field, or removes it when ``None``: one
    loader, so what the tests check is the event the demo sends.
    """
    path = EVENTS / name if Path(name).parent == Path() else Path(name)
    text = path.read_text()
    for example, actual in (ids or {}).items():
        text = text.replace(example, actual)
    event: dict[str, Any] = json.loads(text)
    physical_id = event.get("PhysicalResourceId")
    if ids and isinstance(physical_id, str) and physical_id.startswith("cache-vpc-ingress:"):
        # The example id lists the example groups in order; the swapped-in ids may sort differently.
        head, targets = physical_id.rsplit(":", 1)
        event["PhysicalResourceId"] = f"{head}:{','.join(sorted(targets.split(',')))}"
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = copy.deepcopy(value)
    return event


def is_vpc_event(event: dict[str, Any]) -> bool:
    properties = event.get("ResourceProperties")
    return isinstance(properties, dict) and any(
        name in properties
        for name in ("ReplicationGroupId", "CacheClusterId", "ServerlessCacheName", "MemoryDBClusterName")
    )


#: The MemoryDB cluster of the VPC example world (``events/vpc-memorydb-*.json``).
MEMORYDB_EXAMPLE = "app-store"

#: The security group ids the VPC example events use, and the group each stands for.
EXAMPLE_GROUPS = {
    "sg-0a1b2c3d4e5f60718": "app-servers",
    "sg-0c0c0c0c0c0c0c0c1": "app-cache",
    "sg-0d0d0d0d0d0d0d0d2": "shared-clients",
}
