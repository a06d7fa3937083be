"""Sending the answer: one HTTPS PUT to the presigned ResponseURL, retried a bounded number of times.

The URL is a bearer credential (anyone holding it can answer for the stack),
so nothing here logs it; each attempt has a socket timeout, which bounds the
name resolution of the URL's host too (:mod:`cache_ingress.connect`), and the
retries stop at the time the caller gives, so a slow or failing endpoint, or
resolver, cannot keep the function past its end.
"""

from __future__ import annotations

import functools
import http.client
import random
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .connect import create_connection

PUT_ATTEMPTS = 5
PUT_ATTEMPT_TIMEOUT_S = 5.0


def put_response(
    url: str,
    body: bytes,
    time_left: Callable[[], float],
    logger: Any,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """PUT the body to the presigned URL; True once CloudFormation's store accepted it.

    Network errors and 5xx/429 answers are retried with jittered backoff, at
    most ``PUT_ATTEMPTS`` times and never past ``time_left``. Other HTTP errors
    (an expired or altered URL) are final. The URL is never logged.
    """
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        logger.error("the ResponseURL is not an https URL; no answer can be sent")
        return False
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    context = _tls_context()
    headers = {"Content-Type": "", "Content-Length": str(len(body))}
    for attempt in range(1, PUT_ATTEMPTS + 1):
        timeout = min(PUT_ATTEMPT_TIMEOUT_S, time_left())
        if timeout <= 0:
            break
        connection = _Connection(parts.hostname, parts.port, timeout=timeout, context=context)
        try:
            connection.request("PUT", target, body=body, headers=headers)
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as err:
            logger.warning("sending the response failed", extra={"attempt": attempt, "error": type(err).__name__})
        else:
            if 200 <= status < 300:
                logger.debug("response delivered", extra={"attempt": attempt, "http_status": status})
                return True
            if status < 500 and status not in (408, 429):
                logger.error("the response URL refused the answer", extra={"http_status": status})
                return False
            logger.warning("the response URL answered an error", extra={"attempt": attempt, "http_status": status})
        finally:
            connection.close()
        pause = min(0.25 * 2**attempt, 4.0) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret  # nosec B311
        if attempt == PUT_ATTEMPTS or time_left() < pause + 0.1:
            break
        sleep(pause)
    logger.error("the response could not be delivered", extra={"attempts": attempt})
    return False


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying context per sandbox: loading the CA bundle costs more than the PUT itself."""
    return ssl.create_default_context()


class _Connection(http.client.HTTPSConnection):
    """http.client's, resolving the host within the timeout: its own resolution has no bound at all.

    ``connect`` opens the socket through ``_create_connection``, which
    http.client sets per connection for this (its own tests replace it so);
    tests/unit/test_send_gate.py fails if Python stops calling it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = create_connection
