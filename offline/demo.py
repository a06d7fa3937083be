"""``make demo``: a full custom resource lifecycle, offline, showing what CloudFormation receives.

Create -> Update keeping the id -> Update replacing -> Delete of the old id ->
Delete of the new id -> the same Delete again, each sent to the real
``lambda_handler`` against the ElastiCache stand-in. Exits non-zero if any
answer is not what the lifecycle expects.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from offline.harness import ROOT, OfflineAws, load_event

EVENTS = ROOT / "events"


@dataclass(frozen=True)
class Step:
    title: str
    event: dict[str, Any]
    expect_id: str
    expect_table: set[tuple[str, str, str]]


def steps() -> list[Step]:
    create = load_event(EVENTS / "create.json")
    update = load_event(EVENTS / "update.json")
    replace = load_event(EVENTS / "update-replace.json")
    delete_old = load_event(EVENTS / "delete.json")
    old_id = "cache-sg-ingress:app-cache-sg:123456789012:app-servers"
    new_id = "cache-sg-ingress:app-cache-sg:210987654321:batch workers / nightly"
    delete_new = {
        **delete_old,
        "RequestId": "6c1e1b6e-0007-4b4e-9a51-deletenew007",
        "PhysicalResourceId": new_id,
        "ResourceProperties": replace["ResourceProperties"],
    }
    delete_again = {**delete_new, "RequestId": "6c1e1b6e-0008-4b4e-9a51-deleteagain8"}
    old = ("app-cache-sg", "app-servers", "123456789012")
    new = ("app-cache-sg", "batch workers / nightly", "210987654321")
    return [
        Step("the stack declares app-servers -> app-cache-sg", create, old_id, {old}),
        Step("Update, same ingress (owner spelt 1234-5678-9012): the id stays", update, old_id, {old}),
        Step("Update to another EC2 group and owner: a new id, so replacement", replace, new_id, {old, new}),
        Step("Delete of the old id (CloudFormation's cleanup after the replacement)", delete_old, old_id, {new}),
        Step("Delete of the new id (stack deletion)", delete_new, new_id, set()),
        Step("The same Delete again (a repeated delivery): still SUCCESS", delete_again, new_id, set()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--settle", type=float, default=0.5, help="seconds ElastiCache takes to settle a change")
    parser.add_argument("--verbose", action="store_true", help="show the function's own JSON logs and metrics")
    parser.add_argument("--debug", action="store_true", help="log everything at DEBUG, botocore and crhelper included")
    args = parser.parse_args(argv)
    failures = 0
    with OfflineAws(settle_delay=args.settle, quiet=not args.verbose, debug=args.debug) as aws:
        aws.create_cache_security_group("app-cache-sg")
        print(
            f"ElastiCache stand-in on {aws.standin.url} (changes settle in {args.settle} s); "
            "cache security group 'app-cache-sg' created.\n"
        )
        for number, step in enumerate(steps(), 1):
            started = time.monotonic()
            answer = aws.invoke(step.event)
            took = time.monotonic() - started
            table = aws.standin.ingress_table()
            problems = _check(step, answer, aws.standin.authorized(), table)
            failures += bool(problems)
            _show(number, step, answer, table, took, problems)
    print(
        "Lifecycle complete: every answer was what CloudFormation expects."
        if not failures
        else f"{failures} step(s) did not go as CloudFormation expects."
    )
    return 1 if failures else 0


def _check(
    step: Step, answer: dict[str, Any], authorized: set[tuple[str, str, str]], table: list[dict[str, str]]
) -> list[str]:
    problems = []
    if answer.get("Status") != "SUCCESS":
        problems.append(f"Status is {answer.get('Status')}: {answer.get('Reason')}")
    if answer.get("PhysicalResourceId") != step.expect_id:
        problems.append(f"PhysicalResourceId is {answer.get('PhysicalResourceId')!r}, expected {step.expect_id!r}")
    if authorized != step.expect_table or any(row["Status"] != "authorized" for row in table):
        problems.append(f"the ingress table is {sorted(authorized)}, expected {sorted(step.expect_table)}")
    return problems


def _show(
    number: int, step: Step, answer: dict[str, Any], table: list[dict[str, str]], took: float, problems: list[str]
) -> None:
    print(f"== {number}. {step.event['RequestType']}: {step.title}  ({took:.2f} s)")
    print("   CloudFormation received:")
    for line in json.dumps(answer, indent=2).splitlines():
        print("     " + line)
    print("   ElastiCache ingress table:")
    if not table:
        print("     (empty)")
    for row in table:
        print(
            f"     {row['CacheSecurityGroupName']} <- {row['EC2SecurityGroupName']!r} "
            f"of {row['EC2SecurityGroupOwnerId']}: {row['Status']}"
        )
    for problem in problems:
        print(f"   UNEXPECTED: {problem}")
    print()


if __name__ == "__main__":
    sys.exit(main())
