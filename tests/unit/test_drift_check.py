"""The scheduled check is told apart from CloudFormation's requests, and repairs only when asked."""

from __future__ import annotations

import json
import subprocess
import sys

from cache_ingress.drift_check import is_scheduled, repair_on
from offline.harness import load_event
from tests.support import ROOT

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def test_a_scheduled_event_is_the_check_and_no_cloudformation_request_ever_is() -> None:
    assert is_scheduled(SCHEDULED)
    assert not is_scheduled(load_event("vpc-create.json"))
    assert not is_scheduled(load_event("delete.json"))
    assert not is_scheduled({**SCHEDULED, "RequestType": "Delete"})  # CloudFormation's, whatever else it says
    assert not is_scheduled({**SCHEDULED, "detail-type": "EC2 Instance State-change Notification"})
    assert not is_scheduled(None)
    assert not is_scheduled([SCHEDULED])


def test_drift_is_repaired_only_when_repair_drift_says_true() -> None:
    assert repair_on({"REPAIR_DRIFT": "true"})
    assert repair_on({"REPAIR_DRIFT": "True"})
    assert not repair_on({"REPAIR_DRIFT": "false"})
    assert not repair_on({})


def test_the_command_never_imports_the_lambda_entry_point() -> None:
    """app.py makes its logger and metrics at import; the operator's command must not pay for or trip on them."""
    probe = "import json, sys, cache_ingress.cli; print(json.dumps(sorted(m for m in sys.modules if m == 'app')))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT / "handler",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
