"""What a publisher ships agrees with itself: one version, one licence, and the files the metadata points to.

``sam publish`` reads ``template.yaml``'s ``AWS::ServerlessRepo::Application``
metadata; a user pins the version they see in CHANGELOG.md; pip-style tools
read pyproject.toml. A release where these disagree cannot be pinned with
confidence, so each pair is checked here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
SEMVER = re.compile(r"\d+\.\d+\.\d+")


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    loaded: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return loaded


@pytest.fixture(scope="module")
def application() -> dict[str, Any]:
    loaded: dict[str, Any] = cfn_yaml.load(str(ROOT / "template.yaml"))["Metadata"]["AWS::ServerlessRepo::Application"]
    return loaded


def released_versions() -> list[tuple[str, str]]:
    """(version, date) of every release heading in CHANGELOG.md, newest first."""
    text = (ROOT / "CHANGELOG.md").read_text()
    return re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, re.MULTILINE)


def test_pyproject_the_template_and_the_changelog_name_one_version(
    project: dict[str, Any], application: dict[str, Any]
) -> None:
    assert SEMVER.fullmatch(project["version"]), "the version is not MAJOR.MINOR.PATCH"
    assert released_versions(), "CHANGELOG.md has no '## [x.y.z] - YYYY-MM-DD' release heading"
    newest, _date = released_versions()[0]
    assert (str(application["SemanticVersion"]), newest) == (project["version"], project["version"])


def test_the_changelog_keeps_an_unreleased_section_above_the_releases_and_links_each() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "Keep a Changelog" in text
    assert text.index("## [Unreleased]") < text.index(f"## [{released_versions()[0][0]}]")
    for version, _date in released_versions():
        assert re.search(rf"^\[{re.escape(version)}\]: \S+", text, re.MULTILINE), f"no link for {version}"


def test_one_licence_everywhere(project: dict[str, Any], application: dict[str, Any]) -> None:
    licence = (ROOT / "LICENSE").read_text()
    assert project["license"] == application["SpdxLicenseId"] == "Apache-2.0"
    assert "Apache License" in licence
    assert "Version 2.0, January 2004" in licence


def test_the_metadata_points_at_files_that_exist_and_says_what_sam_publish_needs(application: dict[str, Any]) -> None:
    for key in ("LicenseUrl", "ReadmeUrl"):
        assert (ROOT / application[key]).is_file(), f"{key}: {application[key]} does not exist"
    for key in ("Name", "Description", "Author", "Labels", "SourceCodeUrl"):
        assert application.get(key), f"{key} is empty"
    assert application["Name"] == "cache-sg-ingress"
    assert len(application["Labels"]) <= 10
    assert all(re.fullmatch(r"[a-zA-Z0-9+\-_:/@]{1,127}", label) for label in application["Labels"])


def test_the_metadata_keeps_to_the_repositorys_limits(application: dict[str, Any]) -> None:
    """CreateApplication's constraints (SAR API Reference): the publish fails on any of them, after the build.

    The description grows with every kind of cache and source it names; the author is one lower-case word,
    hyphens allowed, no spaces.
    """
    assert 1 <= len(application["Description"]) <= 256, len(application["Description"])
    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]", application["Author"]), application["Author"]
    assert len(application["Author"]) <= 127
    assert re.fullmatch(r"[a-zA-Z0-9\-]{1,140}", application["Name"])
