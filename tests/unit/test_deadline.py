"""CloudFormation's wait as the deadline counts it: from when it signed the ResponseURL, never past its expiry.

The clocks are injected: ``WALL`` is the wall-clock time the invocation starts at, and the monotonic clock
stands still, so every number is exact.
"""

from __future__ import annotations

import pytest

from cache_ingress.response_url import UrlTimes
from cache_ingress.timing import CLOCK_SKEW_S, MAX_SERVICE_TIMEOUT_MARGIN_S, Deadline, service_timeout

WALL = 1_800_000_000.0
LAMBDA_S = 300.0  # the template's Timeout


def deadline(service_timeout_s: float | None, url: UrlTimes) -> Deadline:
    return Deadline.for_invocation(LAMBDA_S, service_timeout_s, lambda: 100.0, url=url, wall_clock=lambda: WALL)


def test_service_timeout_counts_from_the_signing_time_less_the_skew() -> None:
    """Signed 20 s ago with ServiceTimeout 120: 100 s of CloudFormation's wait are left, less skew and margin."""
    late = deadline(120.0, UrlTimes(signed_at=WALL - 20))
    assert late.remaining() == 100.0 - CLOCK_SKEW_S - MAX_SERVICE_TIMEOUT_MARGIN_S
    assert late.answer_time_left() == 100.0 - CLOCK_SKEW_S - MAX_SERVICE_TIMEOUT_MARGIN_S / 2
    assert late.limit.startswith("the resource's ServiceTimeout of 120 s from when CloudFormation signed the request")
    assert late.waits_until == WALL + 100
    assert not late.expired
    assert deadline(120.0, UrlTimes()).remaining() == 110.0  # no signing time: counted from the start, as before


def test_a_url_signed_50_s_ago_with_service_timeout_60_leaves_at_most_10_s_less_the_skew() -> None:
    """10 s of the wait are left; the margin takes them: the request is expired and nothing may start."""
    late = deadline(60.0, UrlTimes(signed_at=WALL - 50))
    assert late.remaining() <= 10.0 - CLOCK_SKEW_S
    assert late.expired
    assert late.closed
    assert late.late_by == -10.0  # CloudFormation still waits 10 s, too few for any work
    assert "stops waiting for it at 2027-01-15T08:00:10Z, too soon to do anything" in late.expired_reason()


def test_a_request_signed_before_its_service_timeout_is_expired_and_says_when_cloudformation_stopped() -> None:
    late = deadline(60.0, UrlTimes(signed_at=WALL - 600, expires_at=WALL + 6600))
    assert (late.expired, late.late_by, late.remaining()) == (True, 540.0, 0.0)
    assert late.expired_reason() == (
        "the request came too late and was not carried out: CloudFormation stopped waiting for it at "
        "2027-01-15T07:51:00Z (the resource's ServiceTimeout of 60 s from when CloudFormation signed the "
        "request at 2027-01-15T07:50:00Z); nothing was changed"
    )
    # Its answer, read by no one, still has the Lambda's time to be sent.
    assert late.answer_time_left() == LAMBDA_S - 0.2


def test_without_service_timeout_a_signed_request_waits_cloudformations_default_hour() -> None:
    assert deadline(None, UrlTimes(signed_at=WALL - 3500)).remaining() == 100.0 - CLOCK_SKEW_S - 10.0
    late = deadline(None, UrlTimes(signed_at=WALL - 3600))
    assert late.expired
    assert "CloudFormation's default ServiceTimeout of 3600 s" in late.expired_reason()


def test_the_urls_expiry_bounds_a_longer_service_timeout() -> None:
    """Valid for 130 s, signed 100 s ago: 30 s left, whatever ServiceTimeout says."""
    bounded = deadline(3600.0, UrlTimes(signed_at=WALL - 100, expires_at=WALL + 30))
    assert bounded.remaining() == 30.0 - CLOCK_SKEW_S - 10.0
    assert bounded.limit == "the ResponseURL's expiry"
    assert bounded.waits_until == WALL + 30


def test_a_sigv2_expiry_bounds_the_deadline_and_can_expire_it() -> None:
    assert deadline(None, UrlTimes(expires_at=WALL + 60)).remaining() == 60.0 - CLOCK_SKEW_S - 10.0
    assert deadline(None, UrlTimes(expires_at=WALL + 7200)).limit == "the function's Timeout"
    late = deadline(None, UrlTimes(expires_at=WALL - 1))
    assert (late.expired, late.late_by) == (True, 1.0)
    assert "(the ResponseURL's expiry)" in late.expired_reason()


def test_a_signing_time_ahead_of_this_clock_never_lengthens_the_wait() -> None:
    """The skew cuts one way: a URL from the future waits no longer than ServiceTimeout from the start."""
    assert deadline(60.0, UrlTimes(signed_at=WALL + 30)).remaining() == 60.0 - MAX_SERVICE_TIMEOUT_MARGIN_S


@pytest.mark.parametrize(
    ("event", "seconds"),
    [
        ({"ResourceProperties": {"ServiceTimeout": "60"}}, 60.0),
        ({"ServiceTimeout": "60", "ResourceProperties": {}}, 60.0),
        ({"ServiceTimeout": 90}, 90.0),
        ({"ServiceTimeout": "60", "ResourceProperties": {"ServiceTimeout": "900"}}, 900.0),  # the properties' wins
        ({"ServiceTimeout": "0", "ResourceProperties": {"ServiceTimeout": "900"}}, 900.0),
        ({"ServiceTimeout": "5m"}, None),  # refused by name on Create and Update; the deadline ignores it
        ({"ResourceProperties": {"ServiceTimeout": "3601"}}, None),
        ({"ResourceProperties": None}, None),
        ("not an event", None),
    ],
)
def test_service_timeout_is_read_from_the_properties_or_the_events_top_level(event: object, seconds: object) -> None:
    assert service_timeout(event) == seconds
