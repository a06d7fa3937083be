"""The unit tier is pure: run alone, it starts no server, leaves no thread and never imports moto.

Checked from outside, in a fresh interpreter, because in a whole-suite run the
other tiers' modules are already imported by collection. The pytest session
below is exactly ``pytest tests/unit``; a plugin looks at the interpreter as
the session finishes, before the conftest would stop any server it started.
(The stand-ins' modules are imported, by ``offline.harness``, which the
tests share with the demo; importing them starts nothing.)
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT

PROBE = """
import json, sys, threading
import pytest

class Probe:
    report = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        from tests import support
        self.report.update(
            started=support.servers.cache_info().currsize,
            moto=sorted(m for m in sys.modules if m == "moto" or m.startswith(("moto.", "offline.moto_backend"))),
            threads=[t.name for t in threading.enumerate() if t is not threading.main_thread()],
        )

code = pytest.main(["-q", "-p", "no:cacheprovider", "tests/unit"], plugins=[Probe()])
print(json.dumps({"code": int(code), **Probe.report}))
"""


def test_the_unit_tier_alone_starts_no_server_and_imports_no_moto() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, result.stdout[-3000:]
    assert report["started"] == 0
    assert report["moto"] == []
    assert report["threads"] == []
