from __future__ import annotations

import pytest

from offline.dynamodb_front import DynamoDbFront
from offline.harness import build_vpc_example
from offline.moto_backend import MotoBackend
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.lifecycle.simulator import CloudFormation
from tests.vpc_world import World


@pytest.fixture
def cfn(standin: ElastiCacheStandIn, receiver: ResponseReceiver, ledger: DynamoDbFront) -> CloudFormation:
    """EC2-Classic stacks: the stand-in's cache security groups, and the ownership ledger's table, empty."""
    standin.add_group("app-cache-sg")
    standin.add_group("other-sg")
    return CloudFormation(receiver, standin)


@pytest.fixture
def world(moto: MotoBackend, standin: ElastiCacheStandIn) -> World:
    """VPC stacks on one rule: app-servers, and the replication group app-cache behind the group app-cache.

    The examples' world (:mod:`tests.vpc_world`); a module whose scenarios need more of it (the simulator's
    stacks, the serverless cache) overrides this fixture with its own ``world``.
    """
    app, cache, _shared = build_vpc_example(moto, standin).values()
    return World(moto, app, cache)
