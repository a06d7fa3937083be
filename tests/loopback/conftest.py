"""The loopback tier's VPC world: the examples' groups and caches in moto, the ids the events name swapped in."""

from __future__ import annotations

import pytest

from offline.harness import build_vpc_example
from offline.moto_backend import MotoBackend
from offline.standin import ElastiCacheStandIn
from tests.support import Servers


@pytest.fixture
def vpc(servers: Servers, moto: MotoBackend, standin: ElastiCacheStandIn) -> dict[str, str]:
    """The example world's ids (the events' example ids -> moto's): app-servers into app-cache's two groups."""
    return build_vpc_example(moto, standin)
