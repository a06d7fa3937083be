"""What ``make`` does on a second run, and how it calls the SAM CLI, checked with stand-in programs.

The Makefile runs against a fake ``python3`` (it makes a "virtualenv" whose
``bin/python`` records its arguments) and a fake ``sam`` (it records the
telemetry setting it sees), so these tests install nothing and need no network,
yet run the Makefile's real rules and recipes.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.support import make

FAKE_PYTHON = """#!/bin/sh
# Stands in for python3 and for the virtualenv's python: records each call, installs nothing.
echo "$*" >> "$CALLS"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
"""

FAKE_SAM = """#!/bin/sh
echo "SAM_CLI_TELEMETRY=${SAM_CLI_TELEMETRY-unset} sam $*" >> "$CALLS"
"""


def _script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _make(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return make(*args, env={"CALLS": str(tmp_path / "calls")}, timeout=60)


def _calls(tmp_path: Path) -> list[str]:
    path = tmp_path / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_a_second_make_demo_or_invoke_installs_nothing(tmp_path: Path) -> None:
    python = _script(tmp_path / "python3", FAKE_PYTHON)
    venv = tmp_path / "venv"
    settings = [f"PYTHON={python}", f"VENV={venv}"]

    first = _make(tmp_path, *settings, "demo")
    assert first.returncode == 0, first.stderr
    made = _calls(tmp_path)
    assert [call.split()[:2] for call in made] == [
        ["-m", "venv"],
        ["-m", "pip"],
        ["-m", "pip"],
        ["-m", "pip"],
        ["-m", "offline.demo"],
    ]
    # The project itself last (the cache-ingress command), from the tree, fetching nothing.
    assert made[3].endswith("install --quiet --disable-pip-version-check --no-deps --no-build-isolation --editable .")

    assert _make(tmp_path, "-q", *settings, f"{venv}/.installed").returncode == 0, "make sees the virtualenv as built"
    for target in ("demo", "invoke", "audit"):
        again = _make(tmp_path, *settings, target)
        assert again.returncode == 0, again.stderr
    assert [call.split()[1] for call in _calls(tmp_path)[len(made) :]] == [
        "offline.demo",
        "offline.invoke",
        "offline.audit",
    ]


def test_every_sam_cli_call_runs_with_telemetry_off(tmp_path: Path) -> None:
    sam_venv = tmp_path / "sam"
    (sam_venv / "bin").mkdir(parents=True)
    _script(sam_venv / "bin" / "sam", FAKE_SAM)
    (sam_venv / ".installed").touch()  # newer than the requirements: taken as built
    result = _make(tmp_path, f"SAM_VENV={sam_venv}", "validate", "build")
    assert result.returncode == 0, result.stderr
    assert _calls(tmp_path) == ["SAM_CLI_TELEMETRY=0 sam validate --lint", "SAM_CLI_TELEMETRY=0 sam build"]
