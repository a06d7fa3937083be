from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.stub import Stubber

import app
from tests.support import Servers


def stubbed(client: BaseClient) -> Iterator[Stubber]:
    """botocore's Stubber on one of the handler's clients, for a fixture to yield; every queued answer must be used."""
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture(autouse=True)
def empty_ledger(servers: Servers) -> None:
    """Every test starts with the ledger's table empty; a test that does not stub DynamoDB uses moto's."""
    servers.reset_aws()


@pytest.fixture
def stubber(servers: Servers) -> Iterator[Stubber]:
    """botocore's Stubber on the handler's own ElastiCache client; every queued answer must be used.

    Each Stubber fixture asks for the servers first: the handler makes each client once per process, so the
    client stubbed here is the one a later tier reaches the stand-ins with, and must point at them already.
    """
    yield from stubbed(app.api().client)


class JsonLogs:
    """What the function logs, as the JSON lines CloudWatch would get."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]


@pytest.fixture
def json_logs() -> Iterator[JsonLogs]:
    """A second handler on the function's logger with its JSON formatter; the first was bound to stdout at import."""
    logs = JsonLogs()
    handler = logging.StreamHandler(logs.stream)
    handler.setFormatter(app.logger.registered_formatter)
    app.logger._logger.addHandler(handler)
    yield logs
    app.logger._logger.removeHandler(handler)


@pytest.fixture
def ec2_stubber(servers: Servers) -> Iterator[Stubber]:
    """botocore's Stubber on the handler's EC2 client; every queued answer must be used."""
    yield from stubbed(app.ec2().client)


@pytest.fixture
def memorydb_stubber(servers: Servers) -> Iterator[Stubber]:
    """botocore's Stubber on the handler's MemoryDB client; every queued answer must be used."""
    yield from stubbed(app.memorydb().client)


@pytest.fixture
def ledger_stubber(servers: Servers) -> Iterator[Stubber]:
    """botocore's Stubber on the handler's DynamoDB client, the ownership ledger's; every queued answer must be used."""
    yield from stubbed(app.ledger().client)


@pytest.fixture
def quotas_stubber(servers: Servers) -> Iterator[Stubber]:
    """botocore's Stubber on the handler's Service Quotas client; the quota the sandbox keeps is forgotten around it."""
    app.rule_quota().forget()
    yield from stubbed(app.service_quotas().client)
    app.rule_quota().forget()
