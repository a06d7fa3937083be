"""``make audit``: ``cache-ingress`` run for real on the offline world, against a small world it stages first.

Two stacks share app-servers' access to ``app-cache``, a third let in a CIDR
and was deleted behind the resource's back, a person revoked one rule and
made another by hand (``offline.operate_world.stage_everything``). Then the
command runs as an operator would run it: ``audit`` (table, then Mermaid),
``repair``, ``sweep`` (a dry run, then ``--yes``) and ``audit`` again.
The last audit still finds the group the cache gained: only the holder's
next Update follows it. Exits non-zero if a command fails with an error.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys

from offline import operate_world
from offline.harness import OfflineAws
from offline.ledger_table import LEDGER_TABLE

#: cache-ingress's exit status on an error (cache_ingress.cli.ERROR).
ERROR = 2


def run(argv: list[str]) -> int:
    """One command, shown as typed, then its output and exit status."""
    from cache_ingress import cli  # from where the harness loaded the handler (handler/, or a built package)

    print(f"$ cache-ingress {' '.join(argv)}")
    status = cli.main(argv)
    print(f"(exit status {status})\n")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="cache-ingress on the offline world")
    parser.add_argument("--verbose", action="store_true", help="show the function's own JSON logs (stderr)")
    args = parser.parse_args(argv)
    with OfflineAws(settle_delay=0.0, quiet=not args.verbose) as aws:
        if aws.moto is None:
            raise RuntimeError("the offline world has no moto")
        world = operate_world.build(aws.moto, aws.standin, aws.invoke)
        # The function's logs go to stderr: stdout is what the operator sees.
        with contextlib.redirect_stdout(sys.stderr if args.verbose else io.StringIO()):
            operate_world.stage_everything(world)
        table = ["--table", LEDGER_TABLE]
        commands = [
            ["audit", *table],
            ["audit", *table, "--format", "mermaid"],
            ["repair", *table],
            ["sweep", *table],
            ["sweep", *table, "--yes"],
            ["audit", *table],
        ]
        statuses = [run(argv) for argv in commands]
        return 1 if ERROR in statuses else 0


if __name__ == "__main__":
    sys.exit(main())
