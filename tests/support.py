"""Shared by the test tiers: the sample events, a Lambda context, and the environment the handler reads."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cache_ingress.aws_api import Ec2Api, ElastiCacheApi, StackRecords
from cache_ingress.classic_lifecycle import ClassicMode
from cache_ingress.modes import Modes
from cache_ingress.vpc_lifecycle import VpcMode
from offline.harness import OFFLINE_ENV, LambdaContext

__all__ = ["BASE_ENV", "OFFLINE_MODES", "LambdaContext", "load_event", "parse_request", "run_module"]

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


#: Both modes without clients: enough to parse properties and ids, which makes no call.
OFFLINE_MODES = Modes(
    classic=ClassicMode(ElastiCacheApi(None)),
    vpc=VpcMode(ElastiCacheApi(None), Ec2Api(None), StackRecords(None)),
)


def parse_request(properties: Any, stack_id: str, logical_id: str = "AppCacheIngress") -> Any:
    """Either mode's request, as the handler's switch reads the properties; raises InvalidProperties."""
    return OFFLINE_MODES.request(properties, stack_id=stack_id, logical_id=logical_id).value
