"""The AWS JSON protocol on loopback, as the MemoryDB and DynamoDB fronts speak it: the action in ``X-Amz-Target``,
JSON in and out.

A request is a POST to ``/`` whose ``X-Amz-Target`` names the service and the
action (``AmazonMemoryDB.DescribeClusters``, ``DynamoDB_20120810.PutItem``) and
whose body is the JSON of the parameters; an error answer is
``{"__type": code, "message": ...}`` with an HTTP status, and botocore reads
the code from ``__type`` alone (dropping any ``namespace#`` before it). The
versions differ only in the content type: MemoryDB speaks JSON 1.1, DynamoDB
JSON 1.0 (each service's ``jsonVersion`` in botocore's model). :func:`forward`
hands a request on, unchanged, to moto's server, as
:func:`offline.query_protocol.forward` does for the query protocol; both send
through :func:`offline.upstream.post`.

MemoryDB's model in botocore lists ``smithy-rpc-v2-cbor`` before ``json``;
botocore 1.44.8 (the pin) still speaks JSON 1.1 to it, which
``tests/offline/test_memorydb_front.py`` would notice if it changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from offline.loopback import LoopbackHandler, LoopbackServer, LoopbackService
from offline.upstream import post

#: JSON 1.1, MemoryDB's; a service of JSON 1.0 (DynamoDB) sets its own.
CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class JsonRequest:
    """One request as it came: its ``X-Amz-Target`` and its body, to be read or handed on unchanged."""

    target: str
    body: bytes

    @property
    def action(self) -> str:
        """``AmazonMemoryDB.DescribeClusters`` -> ``DescribeClusters``."""
        return self.target.rpartition(".")[2]

    def params(self) -> dict[str, Any]:
        """The body's parameters (an SDK sends ``{}`` for none; anything but a JSON object is a client's bug)."""
        parsed = json.loads(self.body or b"{}")
        if not isinstance(parsed, dict):
            raise ValueError(f"{self.target}: the body is not a JSON object")
        return parsed


def error_json(code: str, message: str, namespace: str = "") -> str:
    """An error answer's body, as a JSON-protocol service writes it (DynamoDB puts its ``namespace#`` first)."""
    return json.dumps({"__type": f"{namespace}#{code}" if namespace else code, "message": message})


def error_code(text: str) -> str | None:
    """The code of an error answer's body, as botocore reads it (``ns#ClusterNotFoundFault`` -> the name alone);
    None for a body that is not JSON (moto answers an error of its own, a crash say, in HTML)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    code = parsed.get("__type") if isinstance(parsed, dict) else None
    return str(code).rsplit("#", 1)[-1] if code else None


def forward(
    endpoint: str, service: str, region: str, request: JsonRequest, content_type: str = CONTENT_TYPE
) -> tuple[int, str, str | None]:
    """Relay a request to ``endpoint`` as it came: (HTTP status, its JSON unchanged, its error code if any)."""
    headers = {"Content-Type": content_type, "X-Amz-Target": request.target}
    status, text = post(endpoint, service, region, request.body, headers)
    return status, text, error_code(text) if status >= 400 else None


class JsonApi(Protocol):
    content_type: str

    def handle(self, request: JsonRequest) -> tuple[int, str | None]:
        """(HTTP status, JSON body) for one request, or (0, None) to drop the connection."""


class JsonRequestHandler(LoopbackHandler):
    """Serves a :class:`JsonApi` over HTTP/1.1 on loopback."""

    api: JsonApi

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, answer = self.api.handle(JsonRequest(self.headers.get("X-Amz-Target", ""), body))
        self.reply(status, answer, self.api.content_type)


class JsonService(LoopbackService):
    """A server that speaks the JSON protocol; a subclass names its thread and answers ``handle``."""

    thread_name = "json-service"
    content_type = CONTENT_TYPE

    def handle(self, request: JsonRequest) -> tuple[int, str | None]:
        raise NotImplementedError

    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (a free port unless one is given) and return the endpoint URL."""

        class Handler(JsonRequestHandler):
            api = self

        self._server = LoopbackServer(Handler, self.thread_name, port)
        return self.url
