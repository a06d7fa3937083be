"""Every tier runs offline: fake credentials, and ElastiCache pointed at the loopback stand-in.

The handler makes its ElastiCache client once per process, on first use, from
the standard SDK settings; so the endpoint is set here, before any test runs,
and the stand-in and the https receiver live for the whole session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.support import BASE_ENV

os.environ.update(BASE_ENV)
for _leak in ("AWS_PROFILE", "AWS_SAM_LOCAL", "POWERTOOLS_LOG_LEVEL", "LOG_LEVEL"):
    os.environ.pop(_leak, None)

SESSION_STANDIN = ElastiCacheStandIn(settle_delay=0.0)
os.environ["AWS_ENDPOINT_URL_ELASTICACHE"] = SESSION_STANDIN.start()
SESSION_RECEIVER = ResponseReceiver()
SESSION_RECEIVER.start()
# CloudFormation's ResponseURL is https; the sender trusts the receiver's self-signed certificate this way.
os.environ["SSL_CERT_FILE"] = SESSION_RECEIVER.cafile


@pytest.fixture
def standin() -> Iterator[ElastiCacheStandIn]:
    """The session's stand-in, emptied, with no faults and settle delay 0."""
    SESSION_STANDIN.reset()
    SESSION_STANDIN.settle_delay = 0.0
    yield SESSION_STANDIN
    SESSION_STANDIN.reset()


@pytest.fixture
def receiver() -> Iterator[ResponseReceiver]:
    SESSION_RECEIVER.reset()
    yield SESSION_RECEIVER
    SESSION_RECEIVER.reset()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    SESSION_STANDIN.stop()
    SESSION_RECEIVER.stop()


settings.register_profile("ci", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
