"""The one way a loopback server hands a request on to moto's server, whatever protocol it speaks.

The ElastiCache stand-in forwards what it does not serve, and the fronts before
moto forward every call no fault takes; each protocol module says what the
request looks like (:func:`offline.query_protocol.forward`,
:func:`offline.json_protocol.forward`) and passes it here to be sent.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from urllib.parse import urlsplit


def post(endpoint: str, service: str, region: str, body: str | bytes, headers: Mapping[str, str]) -> tuple[int, str]:
    """POST ``body`` to ``endpoint`` as a call to ``service``: (HTTP status, the answer's text, unchanged)."""
    url = urlsplit(endpoint)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=30)
    try:
        # moto tells services apart by the credential scope of the signature, which it does not check.
        scope = f"Credential=offline/20260101/{region}/{service}/aws4_request"
        signed = {**headers, "Authorization": f"AWS4-HMAC-SHA256 {scope}, SignedHeaders=host, Signature=0"}
        connection.request("POST", "/", body, signed)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()
