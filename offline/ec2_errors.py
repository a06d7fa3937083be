"""EC2's error answers, as the EC2 front writes them: EC2's own XML, and its NotFound for groups and rules.

EC2 does not answer in the query protocol's ``ErrorResponse``
(:func:`offline.query_protocol.error_xml`) but in a ``Response`` of its own,
which botocore's EC2 parser reads. Its codes are in the EC2 API Reference,
"Error codes for the Amazon EC2 API".
"""

from __future__ import annotations

import uuid
from xml.sax.saxutils import escape  # used to write XML; nothing here parses any  # nosec B406

from offline.front import Answer


def error_xml(code: str, message: str) -> str:
    """An error answer as EC2 writes it (not the query protocol's ``ErrorResponse``)."""
    return (
        f"<Response><Errors><Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"</Errors><RequestID>{uuid.uuid4()}</RequestID></Response>"
    )


def not_found(resource_id: str) -> Answer:
    """EC2's answer to a call naming a security group (``sg-``) or a rule (``sgr-``) it does not know (yet)."""
    if resource_id.startswith("sgr-"):
        code, what = "InvalidSecurityGroupRuleId.NotFound", "security group rule ID"
    else:
        code, what = "InvalidGroup.NotFound", "security group"
    return 400, error_xml(code, f"The {what} '{resource_id}' does not exist"), code
