"""Every tier runs offline: fake credentials, and every AWS endpoint pointed at loopback.

The servers start lazily, once per session, the first time a test asks for
one of the fixtures below (or calls :func:`tests.support.servers`); their
endpoints are set in the environment as they start, before the handler makes
its clients. The unit and template tiers ask for none, so they start none.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

from tests import support

if TYPE_CHECKING:
    from offline.dynamodb_front import DynamoDbFront
    from offline.moto_backend import MotoBackend
    from offline.receiver import ResponseReceiver
    from offline.standin import ElastiCacheStandIn

os.environ.update(support.BASE_ENV)
for _leak in ("AWS_PROFILE", "AWS_SAM_LOCAL", "POWERTOOLS_LOG_LEVEL", "LOG_LEVEL"):
    os.environ.pop(_leak, None)


@pytest.fixture(scope="session")
def servers() -> support.Servers:
    """moto, the fronts before it, the ElastiCache stand-in and the receiver, started on first use."""
    return support.servers()


@pytest.fixture
def standin(servers: support.Servers) -> Iterator[ElastiCacheStandIn]:
    """The session's stand-in, emptied, with no faults, settle delay 0 and no upstream."""
    standin = servers.standin
    standin.reset()
    standin.settle_delay = 0.0
    standin.upstream = None
    yield standin
    standin.reset()


@pytest.fixture
def moto(servers: support.Servers, standin: ElastiCacheStandIn) -> MotoBackend:
    """moto's server, emptied: EC2, MemoryDB, the replication groups the stand-in now forwards to it, and the
    ledger's table, made again empty.

    The function reaches EC2, MemoryDB and DynamoDB through the fronts (``servers.ec2``, ``servers.memorydb``,
    ``servers.dynamodb``), emptied of faults and calls too.
    """
    servers.reset_aws()
    standin.upstream = servers.moto.url
    return servers.moto


@pytest.fixture
def ledger(servers: support.Servers, moto: MotoBackend) -> DynamoDbFront:
    """The function's DynamoDB endpoint, before moto's empty ledger table (``LEDGER_TABLE``): no fault, no call."""
    return servers.dynamodb


@pytest.fixture
def receiver(servers: support.Servers) -> Iterator[ResponseReceiver]:
    """CloudFormation's side of the ResponseURL, emptied; :func:`tests.support.invoke` sends the answers here."""
    servers.receiver.reset()
    yield servers.receiver
    servers.receiver.reset()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The shards of the long stateful histories first, each followed by one short test.

    ``make test`` runs ``pytest -n N --dist load --maxschedchunk 1``: xdist
    hands each worker two consecutive tests to start with, then one at a time.
    So each history shard starts at once on a worker of its own, and the short
    tests fill the other workers around them. Without xdist only the order changes.
    """
    slow = [item for item in items if item.get_closest_marker("slow")]
    rest = [item for item in items if not item.get_closest_marker("slow")]
    ordered: list[pytest.Item] = []
    for item in slow:
        ordered.append(item)
        if rest:
            ordered.append(rest.pop(0))
    items[:] = ordered + rest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    support.stop_servers()


settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
