"""``make invoke EVENT=events/create.json``: one event through the real handler against the stand-ins.

The cache security group the event names is created first (unless
``--no-group``), so that a sample event runs as it would on a real account.
A VPC-mode event runs in the examples' world, built in moto, with moto's
security group ids swapped in (``offline.harness.build_vpc_example``); the
swaps are listed on stderr, so that an id in the answer can be traced back to
the example id in the event file.

stdout carries exactly one thing, the JSON body CloudFormation would receive,
so that it can be piped to a JSON tool. Everything else (the swaps, and the
function's own logs, which it writes to stdout in Lambda) goes to stderr.
Exits 0 if the body says SUCCESS, 1 if it says FAILED.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from offline.harness import EXAMPLE_GROUPS, OfflineAws, is_vpc_event, load_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send one event file to the handler, offline.")
    parser.add_argument("event", help="an event file, such as events/create.json")
    parser.add_argument("--settle", type=float, default=0.5)
    parser.add_argument("--no-group", action="store_true", help="do not create the event's cache security group")
    parser.add_argument("--verbose", action="store_true", help="show the function's own JSON logs and metrics (stderr)")
    args = parser.parse_args(argv)
    body = sys.stdout
    # The handler is imported inside, so its logger binds to stderr: stdout stays the body alone.
    with contextlib.redirect_stdout(sys.stderr):
        answer = _send(args)
    body.write(json.dumps(answer, indent=2) + "\n")
    return 0 if answer.get("Status") == "SUCCESS" else 1


def _send(args: argparse.Namespace) -> dict[str, Any]:
    event = load_event(args.event)
    vpc = is_vpc_event(event)
    with OfflineAws(settle_delay=args.settle, quiet=not args.verbose) as aws:
        if vpc:
            ids = aws.build_vpc_example()
            print("VPC example world: the event's security group ids stand for moto's:")
            for example, actual in ids.items():
                print(f"  {example} -> {actual}  ({EXAMPLE_GROUPS[example]})")
            event = load_event(args.event, ids)
        properties = event.get("ResourceProperties")
        name = properties.get("CacheSecurityGroupName") if isinstance(properties, dict) else None
        if isinstance(name, str) and name and not args.no_group:
            aws.standin.add_group(name)
        return aws.invoke(event)


if __name__ == "__main__":
    sys.exit(main())
