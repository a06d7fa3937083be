"""The one way the tests drive the handler, and the servers it talks to.

Every tier that runs ``lambda_handler`` does it through :func:`handle` (or
:func:`invoke`, which also reads the answer): the event gets a fresh
ResponseURL on the session's https receiver, the handler runs with a
Lambda-like context, and what CloudFormation would have received is read back
from the receiver. Events come from :func:`load_event`, the same loader the
demo and ``make invoke`` use.

The servers (moto, the ElastiCache stand-in, the fronts before moto's EC2,
MemoryDB and DynamoDB, and the receiver) start on the first call of :func:`servers`, not at
import: the unit tier never calls it, so it pays for none of them.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cache_ingress.aws_api import Ec2Api, ElastiCacheApi, LedgerApi, MemoryDbApi
from cache_ingress.classic_lifecycle import ClassicMode
from cache_ingress.classic_rules import Ingress
from cache_ingress.modes import Modes
from cache_ingress.vpc_lifecycle import VpcMode
from cache_ingress.vpc_rules import RuleSet, VpcRequest
from offline.harness import OFFLINE_ENV, LambdaContext, load_event

if TYPE_CHECKING:
    from offline.dynamodb_front import DynamoDbFront
    from offline.ec2_front import Ec2Front
    from offline.memorydb_front import MemoryDbFront
    from offline.moto_backend import MotoBackend
    from offline.receiver import Put, ResponseReceiver, SigV2, SigV4
    from offline.standin import ElastiCacheStandIn

__all__ = [
    "BASE_ENV",
    "OFFLINE_MODES",
    "Delivery",
    "LambdaContext",
    "Servers",
    "assert_failed",
    "assert_success",
    "attribute_names",
    "cause",
    "handle",
    "invoke",
    "load_event",
    "make",
    "parse_request",
    "run_make",
    "run_module",
    "servers",
    "stop_servers",
]

ROOT = Path(__file__).resolve().parent.parent

#: What every tier runs with: the offline runs' fake credentials, and no real AWS endpoint.
BASE_ENV = {
    **OFFLINE_ENV,
    "AWS_SESSION_TOKEN": "testing",
    "POWERTOOLS_METRICS_NAMESPACE": "CacheIngressTests",
}


@dataclass(frozen=True)
class Servers:
    """The session's loopback stand-ins for AWS and CloudFormation's ResponseURL."""

    moto: MotoBackend
    standin: ElastiCacheStandIn
    receiver: ResponseReceiver
    ec2: Ec2Front  # the function's EC2 endpoint: moto, behind a front that takes faults and logs calls
    memorydb: MemoryDbFront  # the function's MemoryDB endpoint: moto's clusters, behind a front of the same kind
    dynamodb: DynamoDbFront  # the function's DynamoDB endpoint: the ledger's table in moto, behind a front too

    def reset_aws(self) -> None:
        """An empty account: moto reset, the ledger's table made again empty, the fronts without faults or calls."""
        from offline.ledger_table import LEDGER_TABLE, create_ledger_table

        self.moto.reset()
        create_ledger_table(self.moto.url, LEDGER_TABLE)
        self.ec2.reset()
        self.memorydb.reset()
        self.dynamodb.reset()


@functools.cache
def servers() -> Servers:
    """The session's servers, started on the first call, with the SDK's endpoints pointed at them.

    The handler makes its clients once per process, on first use, from these
    variables; so anything that makes a handler client (the driver, the
    Stubber fixtures) calls this first, whichever tier runs first. The server
    modules are imported here, not at the top, so that a tier which never
    calls it never imports moto. The ledger's table is made in moto here, and again
    after each reset of moto (the ``moto`` fixture); its name is ``LEDGER_TABLE``.
    """
    from offline.dynamodb_front import DynamoDbFront
    from offline.ec2_front import Ec2Front
    from offline.ledger_table import LEDGER_TABLE, create_ledger_table
    from offline.memorydb_front import MemoryDbFront
    from offline.moto_backend import MotoBackend
    from offline.receiver import ResponseReceiver
    from offline.standin import ElastiCacheStandIn

    started = Servers(
        MotoBackend(),
        ElastiCacheStandIn(settle_delay=0.0),
        ResponseReceiver(),
        Ec2Front(),
        MemoryDbFront(),
        DynamoDbFront(),
    )
    started.ec2.upstream = started.memorydb.upstream = started.dynamodb.upstream = started.moto.start()
    create_ledger_table(started.moto.url, LEDGER_TABLE)
    os.environ["AWS_ENDPOINT_URL_ELASTICACHE"] = started.standin.start()
    os.environ["AWS_ENDPOINT_URL_EC2"] = started.ec2.start()
    os.environ["AWS_ENDPOINT_URL_MEMORYDB"] = started.memorydb.start()
    os.environ["AWS_ENDPOINT_URL_SERVICE_QUOTAS"] = started.moto.url  # moto knows EC2's default quotas
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = started.dynamodb.start()
    os.environ["AWS_ENDPOINT_URL_CLOUDFORMATION"] = started.moto.url  # the holders' stacks, made in moto
    os.environ["AWS_ENDPOINT_URL_STS"] = started.moto.url  # who cache-ingress runs as
    os.environ["LEDGER_TABLE"] = LEDGER_TABLE
    started.receiver.start()
    # CloudFormation's ResponseURL is https; the sender trusts the receiver's self-signed certificate this way.
    os.environ["SSL_CERT_FILE"] = started.receiver.cafile
    return started


def stop_servers() -> None:
    """Stops the servers if :func:`servers` ever started them."""
    if servers.cache_info().currsize == 0:
        return
    running = servers()
    running.standin.stop()
    running.receiver.stop()
    running.ec2.stop()
    running.memorydb.stop()
    running.dynamodb.stop()
    running.moto.stop()
    servers.cache_clear()


@dataclass(frozen=True)
class Delivery:
    """One invocation as CloudFormation's side sees it: the event sent, when, and what reached its ResponseURL."""

    event: dict[str, Any]
    started: float
    returned: float
    puts: list[Put]
    attempts: int

    def answer(self) -> dict[str, Any]:
        """The one body CloudFormation received; fails if there was none or more than one."""
        if len(self.puts) != 1:
            raise AssertionError(f"expected exactly one answer, got {len(self.puts)}")
        body: dict[str, Any] = self.puts[0].json()
        return body


def handle(event: Mapping[str, Any], seconds: float = 30.0, *, signed: SigV4 | SigV2 | None = None) -> Delivery:
    """Runs the real ``lambda_handler`` on ``event`` with ``seconds`` left, and records what was delivered.

    The event's ResponseURL is replaced by a fresh one on the session's
    receiver, so an answer is never mistaken for another's; ``signed`` gives it
    a signing time or expiry, as CloudFormation's carry. An event without
    a ResponseURL is sent without one. Use it when the delivery itself is the
    point (timing, retries, an answer that never arrives); else :func:`invoke`.
    """
    import app  # here: the unit tier never needs the handler, and the environment is set by now

    receiver = servers().receiver
    sent = dict(event)
    if "ResponseURL" in sent:
        sent["ResponseURL"] = receiver.new_url(signed)
    started = time.monotonic()
    app.lambda_handler(sent, LambdaContext(seconds))
    returned = time.monotonic()
    url = sent.get("ResponseURL")
    if not isinstance(url, str):
        return Delivery(sent, started, returned, [], 0)
    return Delivery(sent, started, returned, receiver.puts(url), receiver.attempts(url))


def invoke(event: Mapping[str, Any], seconds: float = 30.0, *, signed: SigV4 | SigV2 | None = None) -> dict[str, Any]:
    """What CloudFormation received for ``event``: the one answer PUT to its ResponseURL, parsed."""
    return handle(event, seconds, signed=signed).answer()


def assert_success(answer: Mapping[str, Any]) -> None:
    """The answer says SUCCESS; when it does not, the failure shows CloudFormation's reason."""
    assert answer["Status"] == "SUCCESS", answer.get("Reason")


def assert_failed(answer: Mapping[str, Any], reason_contains: str = "") -> None:
    """The answer says FAILED, with a reason that contains ``reason_contains``."""
    assert answer["Status"] == "FAILED", answer
    assert reason_contains in answer["Reason"], answer["Reason"]


#: How every FAILED Reason ends: where the rest is, from the Lambda context (see response_body.where_the_logs_are).
LOGS_POINTER = re.compile(r" \(logs: [^()]*, stream [^()]*, request [^()]*\)$")


def cause(answer: Mapping[str, Any]) -> str:
    """A FAILED answer's Reason without the pointer to the logs it ends with; fails if the pointer is missing."""
    reason: str = answer["Reason"]
    pointer = LOGS_POINTER.search(reason)
    assert pointer, f"the Reason does not end with where the logs are: {reason!r}"
    return reason[: pointer.start()]


def run_module(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` from the project's root, as ``make`` runs it; output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def make(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``make args`` from the project's root, output captured. The variables of an enclosing ``make test``
    are left out, so make behaves (and prints) as it does at a prompt; ``env`` adds variables."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    return subprocess.run(
        [shutil.which("make") or "/usr/bin/make", "--no-print-directory", *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_make(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``make args`` as a user types it, with this interpreter's virtualenv as the Makefile's ``BIN`` and
    ``.venv`` taken as built (``-o``): the recipe runs, never a pip install."""
    return make("-o", ".venv/.installed", f"BIN={Path(sys.executable).parent}", *args, timeout=timeout)


#: Both modes without clients: enough to parse properties and ids, which makes no call.
OFFLINE_MODES = Modes(
    classic=ClassicMode(ElastiCacheApi(None), LedgerApi(None, "")),
    vpc=VpcMode(ElastiCacheApi(None), Ec2Api(None), MemoryDbApi(None), LedgerApi(None, "")),
)


def parse_request(properties: Any, stack_id: str, logical_id: str = "AppCacheIngress") -> Any:
    """Either mode's request, as the handler's switch reads the properties; raises InvalidProperties."""
    return OFFLINE_MODES.request(properties, stack_id=stack_id, logical_id=logical_id).value


def attribute_names(request: VpcRequest | Ingress) -> set[str]:
    """The attributes ``Fn::GetAtt`` can read once a Create of ``request`` succeeded, without calling AWS.

    What the granted rules or ingress name (their ``attributes()``), and what each mode's grant adds
    to them: ``VpcMode.grant`` the rules' Description and ids, ``ClassicMode``'s the entry's Status and,
    when ElastiCache returns it, the group's ARN.
    """
    if isinstance(request, VpcRequest):
        rules = RuleSet.of(request.source, [6379], ["sg-0123456789abcdef0"])
        return {*rules.attributes(), "Description", "SecurityGroupRuleIds"}
    return {*request.attributes(), "Status", "CacheSecurityGroupArn"}


def ledger_view(moto: MotoBackend) -> dict[str, dict[str, Any]]:
    """The ownership ledger as moto's table holds it (:func:`offline.ledger_table.read_ledger`)."""
    from offline.ledger_table import read_ledger

    return read_ledger(moto.url)


def known_gap(reason: str) -> pytest.MarkDecorator:
    """Marks a test of a limit the design does not yet lift: it must fail, so a fix shows when it passes."""
    return pytest.mark.xfail(strict=True, reason=reason)
