"""Shared by the test tiers: the sample events, a Lambda context, and the environment the handler reads."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
STACK_ACCOUNT = "123456789012"

#: What every tier runs with: fake credentials, and no real AWS endpoint.
BASE_ENV = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "CacheSecurityGroupIngressTests",
}


def load_event(name: str, response_url: str | None = None, **changes: Any) -> dict[str, Any]:
    """A sample event from ``events/`` (they double as fixtures), with fields replaced as given."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    if response_url is not None:
        event["ResponseURL"] = response_url
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = copy.deepcopy(value)
    return event


class LambdaContext:
    """The parts of the Lambda context the handler reads, with a real countdown."""

    function_name = "cache-sg-ingress"
    aws_request_id = "lambda-request-id"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:cache-sg-ingress"
    memory_limit_in_mb = 256

    def __init__(self, seconds: float = 30.0) -> None:
        self.ends_at = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.ends_at - time.monotonic()) * 1000))


def run_module(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` from the project's root, as ``make`` runs it; output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
