"""The stand-in speaks ElastiCache's query protocol: boto3 parses every answer and maps every error to its modelled class."""

from __future__ import annotations

import math
import time
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from offline.standin import ElastiCacheStandIn

OWNER = "123456789012"


@pytest.fixture
def client(standin: ElastiCacheStandIn) -> Any:
    """A plain boto3 client with retries off, so each fault is seen as it is served."""
    return boto3.client("elasticache", config=Config(retries={"total_max_attempts": 1, "mode": "standard"}))


def ingress(name: str = "web") -> dict[str, str]:
    return {"CacheSecurityGroupName": "cache-sg", "EC2SecurityGroupName": name, "EC2SecurityGroupOwnerId": OWNER}


def test_create_describe_authorize_revoke_parse_with_boto3(client: Any, standin: ElastiCacheStandIn) -> None:
    standin.settle_delay = 0.2
    created = client.create_cache_security_group(CacheSecurityGroupName="cache-sg", Description="d")
    assert created["CacheSecurityGroup"]["ARN"] == f"arn:aws:elasticache:us-east-1:{OWNER}:securitygroup:cache-sg"
    authorized = client.authorize_cache_security_group_ingress(**ingress("web & <friends>"))
    entry = authorized["CacheSecurityGroup"]["EC2SecurityGroups"][0]
    assert entry == {
        "Status": "authorizing",
        "EC2SecurityGroupName": "web & <friends>",
        "EC2SecurityGroupOwnerId": OWNER,
    }
    time.sleep(0.25)
    described = client.describe_cache_security_groups(CacheSecurityGroupName="cache-sg")["CacheSecurityGroups"][0]
    assert described["EC2SecurityGroups"][0]["Status"] == "authorized"
    revoked = client.revoke_cache_security_group_ingress(**ingress("web & <friends>"))
    assert revoked["CacheSecurityGroup"]["EC2SecurityGroups"][0]["Status"] == "revoking"
    time.sleep(0.25)
    assert (
        client.describe_cache_security_groups(CacheSecurityGroupName="cache-sg")["CacheSecurityGroups"][0][
            "EC2SecurityGroups"
        ]
        == []
    )


@pytest.mark.parametrize(
    ("call", "exception", "status"),
    [
        (lambda c: c.revoke_cache_security_group_ingress(**ingress()), "AuthorizationNotFoundFault", 404),
        (lambda c: c.authorize_cache_security_group_ingress(**ingress()), "AuthorizationAlreadyExistsFault", 400),
        (
            lambda c: c.describe_cache_security_groups(CacheSecurityGroupName="nope"),
            "CacheSecurityGroupNotFoundFault",
            404,
        ),
        (
            lambda c: c.authorize_cache_security_group_ingress(**{**ingress(), "CacheSecurityGroupName": "nope"}),
            "CacheSecurityGroupNotFoundFault",
            404,
        ),
        (
            lambda c: c.create_cache_security_group(CacheSecurityGroupName="cache-sg", Description="d"),
            "CacheSecurityGroupAlreadyExistsFault",
            400,
        ),
        (
            lambda c: c.authorize_cache_security_group_ingress(**{**ingress("x"), "EC2SecurityGroupOwnerId": "12"}),
            "InvalidParameterValueException",
            400,
        ),
        (
            lambda c: c.create_cache_security_group(CacheSecurityGroupName="Default", Description="d"),
            "InvalidParameterValueException",
            400,
        ),
    ],
)
def test_errors_come_back_as_the_modelled_exceptions(
    client: Any, standin: ElastiCacheStandIn, call: Any, exception: str, status: int
) -> None:
    standin.add_group("cache-sg")
    client.authorize_cache_security_group_ingress(**ingress("existing"))
    if exception == "AuthorizationAlreadyExistsFault":
        client.authorize_cache_security_group_ingress(**ingress())
    with pytest.raises(getattr(client.exceptions, exception)) as caught:
        call(client)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_changes_in_flight_make_the_group_busy(client: Any, standin: ElastiCacheStandIn) -> None:
    standin.add_group("cache-sg")
    standin.settle_delay = 30
    client.authorize_cache_security_group_ingress(**ingress())
    with pytest.raises(client.exceptions.InvalidCacheSecurityGroupStateFault):
        client.revoke_cache_security_group_ingress(**ingress())
    standin.settle_delay = 0
    client.revoke_cache_security_group_ingress(**ingress())
    standin.settle_delay = 30
    client.authorize_cache_security_group_ingress(**ingress("other"))
    assert {r["EC2SecurityGroupName"]: r["Status"] for r in standin.ingress_table()} == {"other": "authorizing"}


def test_an_account_without_ec2_classic_is_refused_as_aws_does(client: Any, standin: ElastiCacheStandIn) -> None:
    standin.classic_enabled = False
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="not permitted in this API version"):
        client.describe_cache_security_groups()


def test_throttling_and_server_errors_are_served_as_aws_does(client: Any, standin: ElastiCacheStandIn) -> None:
    standin.throttle_next(1)
    with pytest.raises(ClientError) as throttled:
        client.describe_cache_security_groups()
    assert throttled.value.response["Error"]["Code"] == "Throttling"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    standin.fail_next(1, 500)
    with pytest.raises(ClientError) as failed:
        client.describe_cache_security_groups()
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    standin.drop_next(1)
    with pytest.raises(Exception, match="Connection"):
        client.describe_cache_security_groups()
    assert [c.error for c in standin.calls()] == ["Throttling", "InternalFailure", "dropped"]


def test_the_rate_limit_throttles_calls_beyond_it(client: Any, standin: ElastiCacheStandIn) -> None:
    standin.set_rate_limit(5)
    outcomes = []
    started = time.monotonic()
    for _ in range(12):
        try:
            client.describe_cache_security_groups()
            outcomes.append("ok")
        except ClientError as err:
            outcomes.append(err.response["Error"]["Code"])
    took = time.monotonic() - started
    # A bucket of 5, refilled at 5 per second while the loop runs: how many more got through depends on how
    # long the loop took, which on a busy machine (make test runs several workers per core) is not a constant.
    assert 5 <= outcomes.count("ok") <= 5 + math.ceil(took * 5)
    assert "Throttling" in outcomes


def test_latency_delays_only_the_chosen_actions(client: Any, standin: ElastiCacheStandIn) -> None:
    standin.add_group("cache-sg")
    standin.set_latency(0.3, {"AuthorizeCacheSecurityGroupIngress"})
    started = time.monotonic()
    client.describe_cache_security_groups()
    fast = time.monotonic() - started
    client.authorize_cache_security_group_ingress(**ingress())
    slow = time.monotonic() - started - fast
    assert fast < 0.3 <= slow


@pytest.mark.parametrize(
    ("form", "code"),
    [
        (b"Version=2015-02-02", b"MissingAction"),
        (b"Action=DescribeEvents&Version=2015-02-02", b"InvalidAction"),
        (b"Action=AuthorizeCacheSecurityGroupIngress&CacheSecurityGroupName=x", b"MissingParameter"),
    ],
)
def test_malformed_requests_get_query_protocol_errors(standin: ElastiCacheStandIn, form: bytes, code: bytes) -> None:
    request = urllib.request.Request(standin.url, data=form, method="POST")  # noqa: S310 - loopback http
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
    assert caught.value.code == 400
    assert b"<Code>" + code + b"</Code>" in caught.value.read()


def test_the_stand_in_runs_alone(tmp_path: Any) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "offline.standin", "--port", str(port), "--group", "solo", "--settle", "0"),
            *("--cluster", "memo=sg-0000000a,sg-0000000b:11211", "--serverless", "sessions=sg-0000000c"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "ElastiCache stand-in on" in (server.stdout.readline() if server.stdout else "")
        client = boto3.client("elasticache", endpoint_url=f"http://127.0.0.1:{port}")
        groups = client.describe_cache_security_groups()["CacheSecurityGroups"]
        assert [g["CacheSecurityGroupName"] for g in groups] == ["solo"]
        (memo,) = client.describe_cache_clusters(CacheClusterId="memo", ShowCacheNodeInfo=True)["CacheClusters"]
        assert [g["SecurityGroupId"] for g in memo["SecurityGroups"]] == ["sg-0000000a", "sg-0000000b"]
        assert memo["CacheNodes"][0]["Endpoint"]["Port"] == 11211
        (sessions,) = client.describe_serverless_caches(ServerlessCacheName="sessions")["ServerlessCaches"]
        assert (sessions["Endpoint"]["Port"], sessions["ReaderEndpoint"]["Port"]) == (6379, 6380)
        assert sessions["SecurityGroupIds"] == ["sg-0000000c"]
    finally:
        server.terminate()
        server.wait(timeout=10)
