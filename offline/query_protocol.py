"""The AWS query protocol on loopback, as the stand-ins speak it: form-encoded POSTs in, XML out.

The ElastiCache stand-in answers in this protocol (an ``<ActionResponse>``
with its ``<ActionResult>``, errors as ``ErrorResponse`` with a code and an
HTTP status); the protocol is written here, apart from what the stand-in's
actions answer. :func:`forward`
sends a request on, unchanged, to another endpoint speaking the same protocol
(moto's server), for what a stand-in does not serve itself.
"""

from __future__ import annotations

import re
import uuid
from typing import Protocol
from urllib.parse import parse_qs, urlencode
from xml.sax.saxutils import escape  # used to write XML; nothing here parses any  # nosec B406

from offline.loopback import LoopbackHandler, LoopbackServer, LoopbackService
from offline.upstream import post


class ApiFault(Exception):
    """An error answer: the documented code, HTTP status and message."""

    def __init__(self, status: int, code: str, message: str, sender: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.sender = sender


def response_xml(action: str, result: str | None, namespace: str) -> str:
    """A query-protocol answer: ``<ActionResponse><ActionResult>result</ActionResult>`` and metadata."""
    request_id = uuid.uuid4()
    inner = f"<{action}Result>{result}</{action}Result>" if result is not None else ""
    return (
        f'<{action}Response xmlns="{namespace}">{inner}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    )


def error_xml(fault: ApiFault, namespace: str) -> str:
    kind = "Sender" if fault.sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type><Code>{escape(fault.code)}</Code>'
        f"<Message>{escape(fault.message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    )


def parse_form(raw: bytes) -> dict[str, str]:
    """A form-encoded request body as one value per name (the protocol never repeats a name)."""
    return {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}


def forward(endpoint: str, service: str, region: str, form: dict[str, str]) -> tuple[int, str, str | None]:
    """Relay a request to ``endpoint`` as it came: (HTTP status, its XML unchanged, its error code if any)."""
    status, text = post(
        endpoint, service, region, urlencode(form), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    error = re.search(r"<Code>([^<]*)</Code>", text) if status >= 400 else None
    return status, text, error.group(1) if error else None


class QueryApi(Protocol):
    def handle(self, form: dict[str, str]) -> tuple[int, str | None]:
        """(HTTP status, XML body) for one form-encoded request, or (0, None) to drop the connection."""


class QueryRequestHandler(LoopbackHandler):
    """Serves a :class:`QueryApi` over HTTP/1.1 on loopback."""

    api: QueryApi

    def do_POST(self) -> None:
        form = parse_form(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        status, body = self.api.handle(form)
        self.reply(status, body, "text/xml")


def serve(api: QueryApi, name: str, port: int = 0) -> LoopbackServer:
    """Serve ``api`` on 127.0.0.1 (a free port unless one is given), in a thread called ``name``."""

    class Handler(QueryRequestHandler):
        pass

    Handler.api = api
    return LoopbackServer(Handler, name, port)


class QueryService(LoopbackService):
    """A stand-in that speaks the query protocol; a subclass names its thread and answers ``handle``."""

    thread_name = "query-service"

    def handle(self, form: dict[str, str]) -> tuple[int, str | None]:
        raise NotImplementedError

    def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (a free port unless one is given) and return the endpoint URL."""
        self._server = serve(self, self.thread_name, port)
        return self.url
