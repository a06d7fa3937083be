"""When CloudFormation signed the ResponseURL and when it expires, read from the URL itself.

CloudFormation starts waiting for the answer when it signs the URL, before the
function is invoked (why that matters: :class:`~cache_ingress.timing.Deadline`).
The presigned URL says when:

* SigV4 (today's URLs): ``X-Amz-Date`` is the signing time (``20240110T065541Z``,
  UTC, whole seconds) and ``X-Amz-Expires`` the seconds it stays valid;
* SigV2 (older ones): ``Expires`` is the absolute expiry in epoch seconds; the
  signing time is not in the URL.

Both come back as wall-clock epoch seconds, or None when the URL does not carry
them (``sam local``'s sample URL, a hand-made event) or carries them malformed:
then nothing is known, and the deadline counts as it did before the URL was read.
Nothing here logs the URL: it is a bearer credential.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

#: The longest a SigV4 presigned URL may be valid (seven days); a larger X-Amz-Expires is no SigV4 URL's.
MAX_SIGV4_EXPIRES_S = 604800
_SIGV4_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_DIGITS = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class UrlTimes:
    """When the URL was signed and when it expires, in epoch seconds; None for what the URL does not say."""

    signed_at: float | None = None
    expires_at: float | None = None


def url_times(url: str) -> UrlTimes:
    """The signing time and expiry the ResponseURL's query carries (SigV4 or SigV2)."""
    try:
        query = parse_qs(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return UrlTimes()
    signed_at = _sigv4_date(_one(query, "X-Amz-Date"))
    expiries = []
    valid_for = _one(query, "X-Amz-Expires")
    if signed_at is not None and _DIGITS.fullmatch(valid_for) and int(valid_for) <= MAX_SIGV4_EXPIRES_S:
        expiries.append(signed_at + int(valid_for))
    expires = _one(query, "Expires")
    if _DIGITS.fullmatch(expires):
        expiries.append(float(expires))
    return UrlTimes(signed_at, min(expiries) if expiries else None)


def _one(query: dict[str, list[str]], name: str) -> str:
    """The parameter's value when the query holds it exactly once; empty otherwise (ambiguous is unknown)."""
    values = query.get(name, [])
    return values[0] if len(values) == 1 else ""


def _sigv4_date(text: str) -> float | None:
    if not _SIGV4_DATE.fullmatch(text):
        return None
    try:
        signed = datetime.datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError:  # digits that are no date: month 13, 30 February
        return None
    return signed.timestamp()
