from __future__ import annotations

import pytest

from offline.receiver import ResponseReceiver
from offline.standin import ElastiCacheStandIn
from tests.lifecycle.simulator import CloudFormation


@pytest.fixture
def cfn(standin: ElastiCacheStandIn, receiver: ResponseReceiver) -> CloudFormation:
    standin.add_group("app-cache-sg")
    standin.add_group("other-sg")
    return CloudFormation(receiver, standin)
