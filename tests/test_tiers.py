"""The tiers are what docs/developing.md says they are, and the unit tier is pure.

The table under "Where does my test go" is a newcomer's way in: every folder
of tests/ is a row of it, and every test file sits in a row's folder, named
by the rule that row gives (``test_<concern>.py``, or
``test_<concern>_<mode>.py`` for a file about one mode).

The unit tier, run alone, starts no server, leaves no thread and never imports moto.
Checked from outside, in a fresh interpreter, because in a whole-suite run the
other tiers' modules are already imported by collection. The pytest session
below is exactly ``pytest tests/unit``; a plugin looks at the interpreter as
the session finishes, before the conftest would stop any server it started.
(The stand-ins' modules are imported, by ``offline.harness``, which the
tests share with the demo; importing them starts nothing.)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.support import ROOT

DEVELOPING = ROOT / "docs" / "developing.md"
TESTS = ROOT / "tests"
MODES = ("vpc", "classic")
ONE_MODE = "test_<concern>_<mode>.py"
BOTH_OR_NEITHER = "test_<concern>.py"

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


def where_tests_go() -> dict[str, set[str]]:
    """The "Where does my test go" table: each tier's folder -> the file name patterns its row allows."""
    section = DEVELOPING.read_text(encoding="utf-8").split("\n## Where does my test go\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = set(re.findall(r"`(test_[^`]+)`", cells[-1]))
    return rows


def pattern_of(name: str) -> str | None:
    """The rule ``name`` follows (:data:`ONE_MODE` or :data:`BOTH_OR_NEITHER`), or None when it follows neither."""
    if not re.fullmatch(r"test_[a-z0-9]+(_[a-z0-9]+)*\.py", name):
        return None
    words = name.removeprefix("test_").removesuffix(".py").split("_")
    concern = words[:-1] if words[-1] in MODES else words
    if not concern or any(word in MODES for word in concern):
        return None
    return ONE_MODE if concern != words else BOTH_OR_NEITHER


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("test_handler_vpc.py", ONE_MODE),
        ("test_rules_classic.py", ONE_MODE),
        ("test_time_discipline.py", BOTH_OR_NEITHER),
        ("test_vpc_handler.py", None),
        ("test_classic_rules.py", None),
        ("test_vpc.py", None),
        ("test_Handler.py", None),
        ("handler_test.py", None),
    ],
)
def test_a_file_name_follows_one_rule_with_the_mode_only_ever_last(name: str, pattern: str | None) -> None:
    assert pattern_of(name) == pattern


def test_the_table_lists_every_folder_of_tests_and_only_folders_that_exist() -> None:
    folders = {"tests"} | {
        path.relative_to(ROOT).as_posix()
        for path in TESTS.rglob("*")
        if path.is_dir() and not any(part.startswith((".", "__")) for part in path.relative_to(TESTS).parts)
    }
    assert set(where_tests_go()) == folders, "docs/developing.md, 'Where does my test go': one row per folder of tests/"


def test_every_test_file_sits_in_a_tier_of_the_table_and_is_named_by_its_rule() -> None:
    table = where_tests_go()
    files = [path for path in TESTS.rglob("*.py") if path.name.startswith("test_") or path.name.endswith("_test.py")]
    misplaced = [
        path.relative_to(ROOT).as_posix()
        for path in files
        if pattern_of(path.name) not in table.get(path.parent.relative_to(ROOT).as_posix(), set())
    ]
    assert files
    assert misplaced == [], (
        "each test file goes in a folder the table in docs/developing.md lists, named test_<concern>.py, or "
        f"test_<concern>_vpc.py / test_<concern>_classic.py when it is about one mode: {misplaced}"
    )
