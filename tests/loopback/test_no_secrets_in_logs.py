"""At DEBUG, everything included, a full lifecycle logs no secret: neither the ResponseURL, nor the raw
event, nor the credentials (the access key id, the secret key, the session token)."""

from __future__ import annotations

from offline.harness import OFFLINE_ENV
from tests.support import run_module


def test_a_lifecycle_at_debug_never_logs_the_response_url_the_event_or_the_credentials() -> None:
    result = run_module("offline.demo", "--settle", "0.1", "--debug")
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    # It really ran at DEBUG, root logger included: the function's and the sender's debug lines are there,
    # and botocore is heard through the root logger's handler, at INFO.
    assert '"level":"DEBUG"' in result.stdout
    assert "INFO:botocore" in result.stderr
    assert '"message":"response delivered"' in result.stdout
    for secret in ("X-Amz-Signature", "X-Amz-Credential", "cfn-response/", "ResponseURL"):
        assert secret not in output, secret
    credentials = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    for name in credentials:
        assert OFFLINE_ENV[name] not in output, name
    # botocore at DEBUG would log every request's Authorization header and X-Amz-Security-Token.
    assert "DEBUG:botocore" not in result.stderr
    assert "AWS4-HMAC-SHA256" not in output
    assert "X-Amz-Security-Token" not in output
    # The raw event would carry its ResourceType and OldResourceProperties; nothing logs them.
    assert "ResourceType" not in output
    assert "OldResourceProperties" not in output
