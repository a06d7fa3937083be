"""The MemoryDB front, seen through a real boto3 MemoryDB client: each fault as MemoryDB would answer it, the rest moto's.

The client's own retries are off, as the function's are, so every fault
armed shows; where the function's retry policy must take an answer for a
transient one, it is read as the function reads it (``MemoryDbApi``, then
``retry.transient``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from cache_ingress import retry
from cache_ingress.aws_api import ApiError, MemoryDbApi
from offline.memorydb_front import MemoryDbFront
from offline.moto_backend import MotoBackend
from tests.support import Servers


@pytest.fixture(scope="module")
def started(servers: Servers) -> Iterator[MemoryDbFront]:
    """A front of its own before the session's moto (a server takes half a second to stop: once per module)."""
    with MemoryDbFront(servers.moto.url) as front:
        yield front


@pytest.fixture
def front(started: MemoryDbFront, moto: MotoBackend) -> MemoryDbFront:
    """The front with no fault and no call, before an account that holds the cluster app-store behind two groups."""
    started.reset()
    moto.client("memorydb").create_cluster(
        ClusterName="app-store", NodeType="db.t4g.small", ACLName="open-access", SecurityGroupIds=["sg-0a", "sg-0b"]
    )
    return started


def client(front: MemoryDbFront, read_timeout: float = 5.0, attempts: int = 1) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts}, read_timeout=read_timeout)
    return boto3.client("memorydb", region_name="us-east-1", endpoint_url=front.url, config=config)


def error_of(front: MemoryDbFront, name: str = "app-store") -> tuple[str, int] | None:
    """The (code, HTTP status) a DescribeClusters of ``name`` fails with, or None if it succeeds."""
    try:
        client(front).describe_clusters(ClusterName=name)
    except ClientError as err:
        return err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]
    return None


def cluster_exists(moto: MotoBackend, name: str) -> bool:
    """Asked of moto itself, past the front."""
    try:
        moto.client("memorydb").describe_clusters(ClusterName=name)
    except ClientError:
        return False
    return True


def create(memorydb: Any, name: str) -> None:
    memorydb.create_cluster(ClusterName=name, NodeType="db.t4g.small", ACLName="open-access")


def test_a_call_no_fault_takes_is_answered_by_moto_and_logged(front: MemoryDbFront) -> None:
    (cluster,) = client(front).describe_clusters(ClusterName="app-store")["Clusters"]
    assert cluster["ClusterEndpoint"]["Port"] == 6379
    assert [g["SecurityGroupId"] for g in cluster["SecurityGroups"]] == ["sg-0a", "sg-0b"]
    assert error_of(front, "nope") == ("ClusterNotFoundFault", 400)
    found, missing = front.calls()
    assert (found.action, found.params, found.status, found.error) == (
        "DescribeClusters",
        {"ClusterName": "app-store"},
        200,
        None,
    )
    assert (missing.params, missing.status, missing.error) == ({"ClusterName": "nope"}, 400, "ClusterNotFoundFault")
    assert found.arrived <= found.answered <= missing.arrived <= missing.answered


@pytest.mark.parametrize(
    ("arm", "expected"),
    [
        (lambda f: f.throttle_next(1), ("ThrottlingException", 400)),
        (lambda f: f.fail_next(1), ("ServiceUnavailable", 503)),
        (lambda f: f.fail_next(1, 500), ("InternalServerError", 500)),
    ],
    ids=["throttled", "unavailable", "internal-error"],
)
def test_throttling_and_server_errors_are_memorydbs_own_and_the_function_retries_them(
    front: MemoryDbFront, arm: Any, expected: tuple[str, int]
) -> None:
    arm(front)
    assert error_of(front) == expected
    arm(front)
    with pytest.raises(ApiError) as caught:
        MemoryDbApi(client(front)).cluster("app-store")
    assert retry.transient(caught.value)
    assert error_of(front) is None  # each was used up
    assert [c.error for c in front.calls()] == [expected[0], expected[0], None]


def test_the_sdks_own_retries_take_the_throttling_for_throttling(front: MemoryDbFront) -> None:
    """botocore's standard mode, as any SDK user has it, retries the front's ThrottlingException as MemoryDB's."""
    front.throttle_next(1)
    assert client(front, attempts=2).describe_clusters(ClusterName="app-store")["Clusters"]
    assert [c.error for c in front.calls()] == ["ThrottlingException", None]


def test_a_dropped_call_gets_no_answer_and_never_reaches_moto(front: MemoryDbFront, moto: MotoBackend) -> None:
    front.drop_next(1)
    with pytest.raises(ConnectionClosedError):
        create(client(front), "dropped")
    assert not cluster_exists(moto, "dropped")
    assert [(c.action, c.status, c.error) for c in front.calls()] == [("CreateCluster", 0, "dropped")]


def test_a_stalled_call_is_held_then_dropped(front: MemoryDbFront) -> None:
    front.stall_next(1, 0.5)
    started = time.monotonic()
    with pytest.raises(ConnectionClosedError):
        client(front).describe_clusters(ClusterName="app-store")
    assert time.monotonic() - started >= 0.5
    (stalled,) = front.calls()
    assert stalled.error == "dropped"
    assert stalled.answered - stalled.arrived >= 0.5
    assert error_of(front) is None


def test_a_slowed_call_reaches_moto_after_the_client_gave_up_on_it(front: MemoryDbFront, moto: MotoBackend) -> None:
    front.slow_next(1, 1.0)
    with pytest.raises(ReadTimeoutError):
        create(client(front, read_timeout=0.3), "late")
    assert not cluster_exists(moto, "late")  # still held by the front
    waited = time.monotonic() + 10.0
    while not front.calls("CreateCluster") and time.monotonic() < waited:
        time.sleep(0.05)
    assert cluster_exists(moto, "late")
    (late,) = front.calls("CreateCluster")
    assert (late.status, late.answered - late.arrived >= 1.0) == (200, True)


def test_latency_holds_the_actions_named_and_no_other(front: MemoryDbFront) -> None:
    front.set_latency(1.0, {"DescribeClusters"})
    memorydb = client(front)
    memorydb.describe_clusters(ClusterName="app-store")
    memorydb.describe_subnet_groups()
    held, other = front.calls()
    assert (held.action, held.answered - held.arrived >= 1.0) == ("DescribeClusters", True)
    assert (other.action, other.answered - other.arrived < 1.0) == ("DescribeSubnetGroups", True)


def test_a_rate_limit_throttles_the_calls_beyond_it_until_it_is_lifted(front: MemoryDbFront) -> None:
    front.set_rate_limit(1)
    assert [error_of(front), error_of(front)] == [None, ("ThrottlingException", 400)]
    front.set_rate_limit(None)
    assert error_of(front) is None


def test_a_throttling_storm_throttles_every_call_until_it_passes(front: MemoryDbFront) -> None:
    front.throttle_for(1.0)
    ends = time.monotonic() + 1.0
    assert [error_of(front), error_of(front)] == [("ThrottlingException", 400)] * 2
    time.sleep(max(0.0, ends - time.monotonic()))
    assert error_of(front) is None


def test_reset_forgets_the_faults_armed_and_the_calls_made(front: MemoryDbFront) -> None:
    front.throttle_next(5)
    assert error_of(front) == ("ThrottlingException", 400)
    front.reset()
    assert front.calls() == []
    assert error_of(front) is None
