"""``make invoke EVENT=events/create.json``: one event through the real handler against the stand-ins.

The cache security group the event names is created first (unless
``--no-group``), so that a sample event runs as it would on a real account.
A VPC-mode event runs in the examples' world, built in moto, with moto's
security group ids swapped in (``offline.harness.build_vpc_example``).
Prints the body CloudFormation would receive; exits 1 if it says FAILED.
"""

from __future__ import annotations

import argparse
import json
import sys

from offline.harness import OfflineAws, is_vpc_event, load_event


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Send one event file to the handler, offline.")
    parser.add_argument("event", help="an event file, such as events/create.json")
    parser.add_argument("--settle", type=float, default=0.5)
    parser.add_argument("--no-group", action="store_true", help="do not create the event's cache security group")
    parser.add_argument("--verbose", action="store_true", help="show the function's own JSON logs and metrics")
    args = parser.parse_args(argv)
    event = load_event(args.event)
    vpc = is_vpc_event(event)
    with OfflineAws(settle_delay=args.settle, quiet=not args.verbose, vpc=vpc) as aws:
        if vpc:
            event = load_event(args.event, aws.build_vpc_example())
        properties = event.get("ResourceProperties")
        name = properties.get("CacheSecurityGroupName") if isinstance(properties, dict) else None
        if isinstance(name, str) and name and not args.no_group:
            aws.standin.add_group(name)
        answer = aws.invoke(event)
    print(json.dumps(answer, indent=2))
    return 0 if answer.get("Status") == "SUCCESS" else 1


if __name__ == "__main__":
    sys.exit(main())
