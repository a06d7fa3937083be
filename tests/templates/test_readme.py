"""What the README and docs/ say about the project's files and answers, held to the files and the handler.

The tree under "How it is built" (docs/developing.md) is the newcomer's map:
every path it names must exist, and every Python module of the deployed
package (``handler/``) and of the offline tools (``offline/``) must be on it.
New modules are added to these folders all the time, so the failure names
exactly what to add. The README's tables of properties' answers, attributes
and parameters are held to the handler and the template; the links and paths
of every page, to the tree (test_docs.py).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from cache_ingress.errors import InvalidProperties
from cache_ingress.response_body import physical_id_or_fallback
from tests.support import attribute_names, parse_request

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DEVELOPING = (ROOT / "docs" / "developing.md").read_text()
HOW_IT_WORKS = (ROOT / "docs" / "how-it-works.md").read_text()
#: The folders whose every module the tree must list (package markers excepted: they hold no logic).
LISTED_IN_FULL = ("handler", "offline")
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/cache-access/5b6a8e10-0c1d-11ef-9a0b-0a1b2c3d4e5f"


def tree() -> list[str]:
    """Every path the tree names, relative to the root.

    An entry line is a path at the margin (``tests/support.py``, ``handler/``),
    or, two spaces in, a path inside the last folder at the margin; several
    names may lead a line, joined by ", ". Deeper lines continue a description.
    """
    block = re.search(r"^## How it is built\n+```\n(.*?)^```", DEVELOPING, re.MULTILINE | re.DOTALL)
    assert block, "docs/developing.md has no code block under '## How it is built'"
    paths: list[str] = []
    folder = ""
    for line in block.group(1).splitlines():
        indent = len(line) - len(line.lstrip(" "))
        names = re.match(r"(?:[\w./-]+, )*[\w./-]+", line.strip())
        if names is None or indent > 2:
            continue
        for name in names.group(0).split(", "):
            if indent == 0:
                folder = name if name.endswith("/") else folder
                paths.append(name.rstrip("/"))
            else:
                paths.append(folder + name)
    return paths


def modules() -> list[str]:
    """The Python modules of handler/ and offline/: those git tracks, or, outside a git checkout, those on disk."""
    found = subprocess.run(
        ["git", "ls-files", "--", *(f"{folder}/*.py" for folder in LISTED_IN_FULL)],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode == 0 and found.stdout.strip():
        names = found.stdout.split()
    else:
        names = [str(p.relative_to(ROOT)) for folder in LISTED_IN_FULL for p in (ROOT / folder).rglob("*.py")]
    return sorted(name for name in names if Path(name).name != "__init__.py")


def test_the_tree_lists_many_paths() -> None:
    """The parser reads the tree: a broken parse would make the checks below pass on nothing."""
    assert {"handler", "handler/app.py", "offline/loopback.py", "tests/support.py", "tests/unit"} <= set(tree())


def test_every_path_in_the_tree_exists() -> None:
    missing = [path for path in tree() if not (ROOT / path).exists()]
    assert not missing, f"docs/developing.md 'How it is built' names paths that do not exist: {', '.join(missing)}"


def test_every_module_of_handler_and_offline_is_in_the_tree() -> None:
    unlisted = sorted(set(modules()) - set(tree()))
    assert not unlisted, (
        "docs/developing.md 'How it is built' leaves out these modules; add a line for each, saying what it is for: "
        + ", ".join(unlisted)
    )


@pytest.mark.parametrize("event", [{}, {"ResourceProperties": None}])
def test_the_reason_for_missing_properties_is_the_one_the_readme_quotes(event: dict[str, object]) -> None:
    quoted = re.search(r"`ResourceProperties` missing or null: FAILED, \"([^\"]+)\"", README)
    assert quoted, "README.md no longer quotes the reason for missing ResourceProperties"
    with pytest.raises(InvalidProperties) as refused:
        parse_request(event.get("ResourceProperties"), STACK_ID)
    assert str(refused.value) == quoted.group(1)


def test_the_bad_input_id_is_named_as_the_handler_makes_it() -> None:
    """The lifecycle table names the id a Create refused on bad input reports (it has no id of its own)."""
    row = next(line for line in HOW_IT_WORKS.splitlines() if line.startswith("| create with bad input |"))
    made = physical_id_or_fallback(None, {"LogicalResourceId": "<LogicalId>", "RequestId": "<RequestId>"})
    assert f"`{made}`" in row


def test_every_sample_event_is_in_the_readmes_table_of_events() -> None:
    """The table under "Local use" (docs/developing.md) says what each file in ``events/`` shows; a new event
    is added there too."""
    section = DEVELOPING.split("## Local use", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([\w.-]+\.json)` \|", section, re.MULTILINE))
    events = {path.name for path in (ROOT / "events").glob("*.json")} - {"local-env.json"}  # sam's settings
    assert listed == events, (
        f"docs/developing.md's table of events leaves out {sorted(events - listed)}, names missing {sorted(listed - events)}"
    )


#: One request of each kind of source (VPC mode), and one in EC2-Classic mode.
VPC_SOURCES = [
    {"SourceSecurityGroupId": "sg-0123456789abcdef0"},
    {"SourceCidrIp": "10.20.0.0/16"},
    {"SourceCidrIpv6": "2001:db8:ab::/48"},
    {"SourcePrefixListId": "pl-0123456789abcdef0"},
]
CLASSIC = {"CacheSecurityGroupName": "app-cache-sg", "EC2SecurityGroupName": "app-servers"}


def attribute_tables() -> tuple[set[str], set[str]]:
    """The attribute names under "Return values": VPC mode's table, then EC2-Classic mode's."""
    section = README.split("### Return values", 1)[1].split("\n## ", 1)[0]
    tables = re.findall(r"^\| attribute \| value \|\n\|---\|---\|\n((?:\|.*\n)+)", section, re.MULTILINE)
    assert len(tables) == 2, "README.md's Return values should hold two attribute tables, VPC and EC2-Classic"
    names = [
        {name for row in rows.splitlines() for name in re.findall(r"`(\w+)`", row.split("|")[1])} for rows in tables
    ]
    return names[0], names[1]


def test_the_readmes_attribute_tables_name_what_the_handler_returns() -> None:
    """Every attribute a resource can return is in its mode's table, and the tables name no other."""
    vpc_table, classic_table = attribute_tables()
    vpc = set().union(
        *(attribute_names(parse_request({"ReplicationGroupId": "sessions", **s}, STACK_ID)) for s in VPC_SOURCES)
    )
    classic = attribute_names(parse_request(CLASSIC, STACK_ID))
    for mode, table, returned in (("VPC", vpc_table, vpc), ("EC2-Classic", classic_table, classic)):
        assert table == returned, (
            f"README.md's {mode} attribute table leaves out {sorted(returned - table)}, "
            f"names {sorted(table - returned)} that the handler never returns"
        )


def test_the_readmes_parameters_table_names_the_templates_parameters() -> None:
    """Deploying's table lists every parameter template.yaml takes, with its default, and no other."""
    section = README.split("## Deploying", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| (`[^`]*`|empty) \|", section, re.MULTILINE)
    listed = {name: ("" if default == "empty" else default.strip("`")) for name, default in rows}
    template = cfn_yaml.load(str(ROOT / "template.yaml"))
    declared = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    assert listed == declared, f"README.md's parameters table says {listed}, template.yaml declares {declared}"
