"""At DEBUG, everything included, a full lifecycle logs neither the ResponseURL nor the raw event."""

from __future__ import annotations

from tests.support import run_module


def test_a_lifecycle_at_debug_never_logs_the_response_url_or_the_event() -> None:
    result = run_module("offline.demo", "--settle", "0.1", "--debug")
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    # It really ran at DEBUG: the function's, botocore's and the sender's debug lines are all there.
    assert '"level":"DEBUG"' in result.stdout
    assert "DEBUG:botocore" in result.stderr
    assert '"message":"response delivered"' in result.stdout
    for secret in ("X-Amz-Signature", "X-Amz-Credential", "cfn-response/", "ResponseURL"):
        assert secret not in output, secret
    # The raw event would carry its ResourceType and OldResourceProperties; nothing logs them.
    assert "Custom::CacheSecurityGroupIngress" not in output
    assert "OldResourceProperties" not in output
