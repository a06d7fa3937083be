"""The check's report as a person reads it: a table, JSON for tools, or a Mermaid flowchart for a pull request."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from .audit import FINDINGS, UNMANAGED, Report, Row, cache_name
from .ledger import PRE_EXISTING
from .remedy import Action

_COLUMNS = ("TARGET GROUP", "PORT", "SOURCE", "RULE ID", "HELD BY")


def table(report: Report) -> str:
    """Each cache, its rules and who holds each; then the findings."""
    lines: list[str] = []
    for cache in report.caches:
        groups = f" (security groups: {', '.join(cache.groups)})" if cache.groups is not None else ""
        lines.append(cache.cache + groups)
        if cache.problem:
            lines.append(f"  ! {cache.problem}")
        rows = [_cells(row) for row in cache.rows]
        widths = [max(len(c[i]) for c in [_COLUMNS, *rows]) for i in range(len(_COLUMNS) - 1)]
        for cells in [_COLUMNS, *rows]:
            lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)) + "  " + cells[-1])
        lines.append("")
    lines.append(f"{len(report.findings)} finding(s):" if report.findings else "No findings.")
    width = max(len(kind) for kind in FINDINGS)
    lines += [f"  {f.kind.ljust(width)}  {f.cache}: {f.detail}" for f in report.findings]
    return "\n".join(lines)


def _cells(row: Row) -> tuple[str, ...]:
    return (row.group, row.port, row.source, row.rule_id or "(missing)", row.holders_text)


def as_json(report: Report) -> str:
    """Everything the report holds, for a tool: ``caches`` (each with its ``rows``) and ``findings``."""
    return json.dumps(
        {"caches": [asdict(cache) for cache in report.caches], "findings": [asdict(f) for f in report.findings]},
        indent=2,
    )


def mermaid(report: Report) -> str:
    """Sources to caches as a flowchart: one arrow per source, cache and port, labelled with who holds it.

    A rule AWS lacks (drift) is a dotted arrow; one nobody holds in the ledger
    is labelled ``unmanaged``.
    """
    lines = ["flowchart LR"]
    nodes: dict[str, str] = {}

    def node(text: str, shape: tuple[str, str]) -> str:
        if text not in nodes:
            nodes[text] = f"n{len(nodes)}"
            lines.append(f'  {nodes[text]}{shape[0]}"{_quoted(text)}"{shape[1]}')
        return nodes[text]

    for cache in report.caches:
        target = node(cache_name(cache.cache), ("[(", ")]"))
        edges: dict[tuple[str, str, bool], list[str]] = {}
        for row in cache.rows:
            missing = not row.present
            who = _who(row)
            edges.setdefault((row.source, row.port, missing), [])
            edges[(row.source, row.port, missing)] += [
                w for w in who if w not in edges[(row.source, row.port, missing)]
            ]
        for (source, port, missing), who in sorted(edges.items()):
            label = f"{port}: {', '.join(who)}" + (" (missing)" if missing else "")
            arrow = "-.->" if missing else "-->"
            origin = node(source, ("[", "]"))
            lines.append(f'  {origin} {arrow}|"{_quoted(label)}"| {target}')
    return "\n".join(lines)


def _who(row: Row) -> list[str]:
    if row.origin == UNMANAGED:
        return [UNMANAGED]
    names = [f"{h.stack}/{h.logical_id}" for h in row.held_by]
    return ([PRE_EXISTING] if row.origin == PRE_EXISTING else []) + (names or ["no holder"])


def _quoted(text: str) -> str:
    return text.replace('"', "#quot;")


def actions(done: Sequence[Action], *, dry_run: bool, what: str) -> str:
    """What a repair or sweep did (or, in a dry run, would do), one line each."""
    lines = [str(action) for action in done]
    if not lines:
        lines = [f"nothing to {what}"]
    if dry_run:
        lines.append("dry run: nothing was changed")
    return "\n".join(lines)
