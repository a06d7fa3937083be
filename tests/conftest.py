"""Every tier runs offline: fake credentials, and every AWS endpoint pointed at loopback.

The handler makes its clients once per process, on first use, from the
standard SDK settings; so the endpoints are set here, before any test runs,
and the servers live for the whole session: the ElastiCache stand-in (which
forwards what it does not serve to moto), moto's server for EC2, the
CloudFormation stack-records stand-in and the https receiver.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from offline.cloudformation import StackRecordsStandIn
from offline.moto_backend import MotoBackend
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.support import BASE_ENV

os.environ.update(BASE_ENV)
for _leak in ("AWS_PROFILE", "AWS_SAM_LOCAL", "POWERTOOLS_LOG_LEVEL", "LOG_LEVEL"):
    os.environ.pop(_leak, None)

SESSION_MOTO = MotoBackend()
SESSION_MOTO.start()
SESSION_STANDIN = ElastiCacheStandIn(settle_delay=0.0)
os.environ["AWS_ENDPOINT_URL_ELASTICACHE"] = SESSION_STANDIN.start()
os.environ["AWS_ENDPOINT_URL_EC2"] = SESSION_MOTO.url
SESSION_RECORDS = StackRecordsStandIn()
os.environ["AWS_ENDPOINT_URL_CLOUDFORMATION"] = SESSION_RECORDS.start()
SESSION_RECEIVER = ResponseReceiver()
SESSION_RECEIVER.start()
# CloudFormation's ResponseURL is https; the sender trusts the receiver's self-signed certificate this way.
os.environ["SSL_CERT_FILE"] = SESSION_RECEIVER.cafile


@pytest.fixture
def standin() -> Iterator[ElastiCacheStandIn]:
    """The session's stand-in, emptied, with no faults, settle delay 0 and no upstream."""
    SESSION_STANDIN.reset()
    SESSION_STANDIN.settle_delay = 0.0
    SESSION_STANDIN.upstream = None
    yield SESSION_STANDIN
    SESSION_STANDIN.reset()


@pytest.fixture
def moto(standin: ElastiCacheStandIn) -> MotoBackend:
    """moto's server, emptied: EC2, and the replication groups the stand-in now forwards to it."""
    SESSION_MOTO.reset()
    standin.upstream = SESSION_MOTO.url
    return SESSION_MOTO


@pytest.fixture
def records() -> Iterator[StackRecordsStandIn]:
    """What CloudFormation holds for each logical id; empty, so a Delete finds no record unless a test adds one."""
    SESSION_RECORDS.reset()
    yield SESSION_RECORDS
    SESSION_RECORDS.reset()


@pytest.fixture
def receiver() -> Iterator[ResponseReceiver]:
    SESSION_RECEIVER.reset()
    yield SESSION_RECEIVER
    SESSION_RECEIVER.reset()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    SESSION_STANDIN.stop()
    SESSION_RECEIVER.stop()
    SESSION_RECORDS.stop()
    SESSION_MOTO.stop()


settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
