from __future__ import annotations

import pytest

from offline.dynamodb_front import DynamoDbFront
from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.lifecycle.simulator import CloudFormation


@pytest.fixture
def cfn(standin: ElastiCacheStandIn, receiver: ResponseReceiver, ledger: DynamoDbFront) -> CloudFormation:
    """EC2-Classic stacks: the stand-in's cache security groups, and the ownership ledger's table, empty."""
    standin.add_group("app-cache-sg")
    standin.add_group("other-sg")
    return CloudFormation(receiver, standin)
