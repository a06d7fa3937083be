"""EC2 on loopback with faults: moto's server behind a front (:mod:`offline.front`) in EC2's own error format.

The function's EC2 client talks to this front, which answers injected faults
as EC2 does (``RequestLimitExceeded``, ``InternalError``, ``Unavailable``) and
forwards the rest to moto in the query protocol.
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape  # used to write XML; nothing here parses any  # nosec B406

from offline.call_log import Call
from offline.front import Answer, Front
from offline.query_protocol import QueryService, forward

#: The EC2 actions that change something; the rest only look.
WRITES = frozenset(
    {
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
        "UpdateSecurityGroupRuleDescriptionsIngress",
        "CreateTags",
        "DeleteTags",
    }
)


class Ec2Front(Front, QueryService):
    thread_name = "ec2-front"

    def writes(self) -> list[Call]:
        """Every call that changes something."""
        return [c for c in self.calls() if c.action in WRITES]

    def handle(self, form: dict[str, str]) -> tuple[int, str | None]:
        params = {k: v for k, v in form.items() if k not in ("Action", "Version")}
        return self.serve_call(form.get("Action", ""), params, lambda: forward(self.upstream, "ec2", self.region, form))

    def throttled(self, action: str) -> Answer:
        return 503, error_xml("RequestLimitExceeded", "Request limit exceeded."), "RequestLimitExceeded"

    def failed(self, status: int) -> Answer:
        code = "Unavailable" if status == 503 else "InternalError"
        return status, error_xml(code, "An internal error has occurred"), code


def error_xml(code: str, message: str) -> str:
    """An error answer as EC2 writes it (not the query protocol's ``ErrorResponse``)."""
    return (
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"</Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    )
