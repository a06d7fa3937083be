"""When CloudFormation signed the ResponseURL and when it expires, read from its query (no network)."""

from __future__ import annotations

import datetime

import pytest

from cache_ingress.response_url import UrlTimes, url_times

BUCKET = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws%3Acloudformation/x/y"
SIGNED = datetime.datetime(2024, 1, 10, 6, 55, 41, tzinfo=datetime.UTC).timestamp()


def test_a_sigv4_url_gives_its_signing_time_and_expiry() -> None:
    url = (
        f"{BUCKET}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20240110T065541Z&X-Amz-SignedHeaders=host"
        "&X-Amz-Expires=7200&X-Amz-Credential=AKIA%2F20240110%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ab12"
    )
    assert url_times(url) == UrlTimes(signed_at=SIGNED, expires_at=SIGNED + 7200)


def test_a_sigv2_url_gives_its_expiry_alone() -> None:
    url = f"{BUCKET}?AWSAccessKeyId=AKIAEXAMPLE&Expires=1704876941&Signature=abc%3D"
    assert url_times(url) == UrlTimes(signed_at=None, expires_at=1704876941.0)


@pytest.mark.parametrize(
    "url",
    [
        # sam local's sample event, and the test receiver's URLs unless a test signs them
        f"{BUCKET}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=EXAMPLE&X-Amz-Signature=EXAMPLE",
        "https://127.0.0.1:8443/cfn-response/0a1b?X-Amz-Signature=sig0a1b&X-Amz-Credential=cred0a1b",
        BUCKET,
        "not a url",
        "https://[::1/x?Expires=1",  # no URL at all: an unclosed bracket
    ],
)
def test_a_url_that_says_neither_gives_nothing(url: str) -> None:
    assert url_times(url) == UrlTimes()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("X-Amz-Date=20241310T065541Z&X-Amz-Expires=7200", UrlTimes()),  # month 13
        ("X-Amz-Date=2024-01-10T06:55:41Z&X-Amz-Expires=7200", UrlTimes()),
        ("X-Amz-Date=20240110T065541Z&X-Amz-Date=20240110T075541Z", UrlTimes()),  # which one? neither
        ("X-Amz-Expires=7200", UrlTimes()),  # valid for 2 h, from no known time
        ("X-Amz-Date=20240110T065541Z&X-Amz-Expires=seven", UrlTimes(signed_at=SIGNED)),
        ("X-Amz-Date=20240110T065541Z&X-Amz-Expires=604801", UrlTimes(signed_at=SIGNED)),
        ("Expires=-5", UrlTimes()),
        ("Expires=%EF%BC%91", UrlTimes()),  # a fullwidth digit is no digit
    ],
)
def test_malformed_times_are_not_guessed_at(query: str, expected: UrlTimes) -> None:
    assert url_times(f"{BUCKET}?{query}") == expected


def test_both_kinds_at_once_keep_the_earlier_expiry() -> None:
    url = f"{BUCKET}?X-Amz-Date=20240110T065541Z&X-Amz-Expires=7200&Expires={int(SIGNED) + 60}"
    assert url_times(url) == UrlTimes(signed_at=SIGNED, expires_at=SIGNED + 60)
