"""The README and the pages under docs/ held to the tree: every relative link and every file they name.

The README is the front door and docs/ the pages behind it; text moves between
them and files are renamed all the time, so a link to a page or heading that
is gone, or a path that no longer exists, fails here by name.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Backticked words shaped like a path that are not files: a Service Quotas quota code.
NOT_PATHS = {"vpc/L-0EA8095F"}
#: Folders ``make`` makes (the virtualenvs) and ``sam build``'s output: named, never tracked.
MADE = (".venv/", ".venv-sam/", ".aws-sam/")
FILE_SUFFIX = re.compile(r"\.(py|ya?ml|json|md|toml|txt|in|cfg)$")


def without_code_blocks(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#{1,6} (.+)$", without_code_blocks(page.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def links(page: Path) -> list[str]:
    """The page's relative links (web addresses left out), as written."""
    found = re.findall(r"\]\(([^)\s]+)\)", without_code_blocks(page.read_text()))
    return [link for link in found if not re.match(r"[a-z]+:", link)]


def named_paths(page: Path) -> set[str]:
    """Every backticked word shaped like a file path: with a folder in it, or a file's suffix."""
    paths = set()
    for quoted in re.findall(r"`([^`\n]+)`", page.read_text()):
        for word in re.split(r"[\s,]+", quoted):
            word = word.strip("();:")
            if not re.fullmatch(r"[A-Za-z_.][\w.-]*(/[\w.-]+)*/?", word) or word in NOT_PATHS or word.startswith(MADE):
                continue
            if "/" in word or FILE_SUFFIX.search(word):
                paths.add(word)
    return paths


def tracked_names() -> set[str]:
    """The names of the files git tracks (or, outside a git checkout, those on disk), for a bare file name."""
    found = subprocess.run(
        ["git", "ls-files"],  # noqa: S607 - git from PATH
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode == 0 and found.stdout.strip():
        return {Path(name).name for name in found.stdout.split()}
    return {p.name for p in ROOT.rglob("*") if ".venv" not in p.parts and ".git" not in p.parts}


def test_the_pages_are_found_and_have_links_and_paths() -> None:
    """The parsers read the pages: a broken parse would make the checks below pass on nothing."""
    assert {p.name for p in PAGES} >= {"README.md", "how-it-works.md", "operating.md", "developing.md"}
    assert "docs/how-it-works.md#time-the-deadline-and-retries" in links(ROOT / "README.md")
    assert "offline/ledger_table.py" in named_paths(ROOT / "docs" / "developing.md")
    assert "time-the-deadline-and-retries" in anchors(ROOT / "docs" / "how-it-works.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for link in links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link} (no such file)")
        elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
            broken.append(f"{link} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)} links to what is not there: {', '.join(broken)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_the_page_names_exists(page: Path) -> None:
    """A path is read from the root, or from handler/ (``cache_ingress/...``, as the package sees itself);
    a bare file name must be some tracked file's."""
    names = tracked_names()
    missing = sorted(
        path
        for path in named_paths(page)
        if not (ROOT / path).exists() and not (ROOT / "handler" / path).exists() and ("/" in path or path not in names)
    )
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {', '.join(missing)}"
