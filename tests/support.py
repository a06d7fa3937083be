"""Shared by the test tiers: the sample events, a Lambda context, and the environment the handler reads."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from offline.harness import OFFLINE_ENV, LambdaContext

__all__ = ["BASE_ENV", "LambdaContext", "load_event", "run_module"]

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"

#: What every tier runs with: the offline runs' fake credentials, and no real AWS endpoint.
BASE_ENV = {
    **OFFLINE_ENV,
    "AWS_SESSION_TOKEN": "testing",
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


def run_module(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m module args`` from the project's root, as ``make`` runs it; output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
