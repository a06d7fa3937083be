"""``make demo``: full custom resource lifecycles, offline, showing what CloudFormation receives.

Twice, once per mode: Create -> Update keeping the id -> Update replacing ->
Delete of the old id -> Delete of the new id -> the same Delete again, each
sent to the real ``lambda_handler``. EC2-Classic mode runs against the
ElastiCache stand-in; VPC mode against moto's EC2 and replication groups,
and then one grant on a MemoryDB cluster (moto's too), made and taken back.
Beside each rule or ingress, its entry in the ownership ledger (moto's
DynamoDB): how it came to be, and who holds it.
Exits non-zero if any answer is not what the lifecycle expects.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from offline.harness import (
    EXAMPLE_GROUPS,
    MEMORYDB_EXAMPLE,
    ROOT,
    STACK_ACCOUNT,
    OfflineAws,
    load_event,
)

EVENTS = ROOT / "events"
#: The heading over the VPC steps' rules: each row is a rule into a security group (named like the cache it
#: guards, in the example world), from app-servers.
RULES_HEADING = "EC2 ingress rules (target security group <- source)"


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


@dataclass(frozen=True)
class VpcStep:
    title: str
    event: dict[str, Any]
    expect_id: str
    #: (target group name, port) pairs that must exist afterwards, all from app-servers
    expect_rules: set[tuple[str, int]]


def vpc_steps(ids: dict[str, str]) -> list[VpcStep]:
    """The VPC-mode lifecycle on the example world; ``ids`` maps the events' example ids to moto's."""
    create = load_event(EVENTS / "vpc-create.json", ids)
    update = load_event(EVENTS / "vpc-update.json", ids)
    replace = load_event(EVENTS / "vpc-update-replace.json", ids)
    delete_old = load_event(EVENTS / "vpc-delete.json", ids)
    app, cache, shared = (ids[example] for example in EXAMPLE_GROUPS)
    old_id = f"cache-vpc-ingress:{app}@{STACK_ACCOUNT}:6379:{','.join(sorted((cache, shared)))}"
    new_id = f"cache-vpc-ingress:{app}@{STACK_ACCOUNT}:6379:{cache}"
    # As CloudFormation does, each request carries the id it holds, not the one the example file spells.
    for event in (update, replace, delete_old):
        event["PhysicalResourceId"] = old_id
    delete_new = {
        **delete_old,
        "RequestId": "7d2f2c7f-0005-4c5f-8b62-vpcdelete005",
        "PhysicalResourceId": new_id,
        "ResourceProperties": replace["ResourceProperties"],
    }
    delete_again = {**delete_new, "RequestId": "7d2f2c7f-0006-4c5f-8b62-vpcdelete006"}
    both = {("app-cache", 6379), ("shared-clients", 6379)}
    return [
        VpcStep("app-servers may reach the replication group app-cache, found by name", create, old_id, both),
        VpcStep("Update, new Description only: same rules, same id", update, old_id, both),
        VpcStep("Update narrowing TargetSecurityGroupIds: new id", replace, new_id, both),
        VpcStep(
            "Delete of the old id: the rule the new resource also holds stays",
            delete_old,
            old_id,
            {("app-cache", 6379)},
        ),
        VpcStep("Delete of the new id (stack deletion)", delete_new, new_id, set()),
        VpcStep("The same Delete again: still SUCCESS", delete_again, new_id, set()),
    ]


def memorydb_steps(ids: dict[str, str]) -> list[VpcStep]:
    """One grant on the example world's MemoryDB cluster, guarded by shared-clients alone: made, then taken back."""
    create = load_event(EVENTS / "vpc-memorydb-create.json", ids)
    delete = load_event(EVENTS / "vpc-memorydb-delete.json", ids)
    app, shared = ids["sg-0a1b2c3d4e5f60718"], ids["sg-0d0d0d0d0d0d0d0d2"]
    rules_id = f"cache-vpc-ingress:{app}@{STACK_ACCOUNT}:6379:{shared}"
    return [
        VpcStep(
            f"app-servers may reach the MemoryDB cluster {MEMORYDB_EXAMPLE}, found by name",
            create,
            rules_id,
            {("shared-clients", 6379)},
        ),
        VpcStep("Delete (stack deletion): the rule is taken back, its ledger entry gone", delete, rules_id, set()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--settle", type=float, default=0.5, help="seconds ElastiCache takes to settle a change")
    parser.add_argument("--verbose", action="store_true", help="show the function's own JSON logs and metrics")
    parser.add_argument("--debug", action="store_true", help="log everything at DEBUG, botocore and crhelper included")
    parser.add_argument("--mode", choices=("both", "classic", "vpc"), default="both")
    args = parser.parse_args(argv)
    failures = 0
    with OfflineAws(settle_delay=args.settle, quiet=not args.verbose, debug=args.debug) as aws:
        if args.mode != "vpc":
            failures += run_classic(aws, args.settle)
        if args.mode != "classic":
            failures += run_vpc(aws)
    print(
        "Lifecycle complete: every answer was what CloudFormation expects."
        if not failures
        else f"{failures} step(s) did not go as CloudFormation expects."
    )
    return 1 if failures else 0


def run_classic(aws: OfflineAws, settle: float) -> int:
    """The EC2-Classic lifecycle; the number of steps that went wrong."""
    aws.create_cache_security_group("app-cache-sg")
    print(
        f"EC2-Classic mode: ElastiCache stand-in on {aws.standin.url} (changes settle in {settle} s); "
        "cache security group 'app-cache-sg' created.\n"
    )
    failures = 0
    for number, step in enumerate(steps(), 1):
        started = time.monotonic()
        answer = aws.invoke(step.event)
        took = time.monotonic() - started
        table = aws.standin.ingress_table()
        problems = _check_answer(answer, step.expect_id)
        authorized = aws.standin.authorized()
        if authorized != step.expect_table or any(row["Status"] != "authorized" for row in table):
            problems.append(f"the ingress table is {sorted(authorized)}, expected {sorted(step.expect_table)}")
        failures += bool(problems)
        ledger = aws.ledger()
        rows = [
            f"{row['CacheSecurityGroupName']} <- {row['EC2SecurityGroupName']!r} "
            f"of {row['EC2SecurityGroupOwnerId']}: {row['Status']}; "
            + _held(
                ledger.get(
                    f"classic|{row['CacheSecurityGroupName']}|{row['EC2SecurityGroupName']}|"
                    f"{row['EC2SecurityGroupOwnerId']}"
                )
            )
            for row in table
        ]
        _show(number, step.event, step.title, answer, "ElastiCache ingress table", rows, took, problems)
    return failures


def run_vpc(aws: OfflineAws) -> int:
    """The VPC-mode lifecycle; the number of steps that went wrong."""
    ids = aws.build_vpc_example()
    app, cache, shared = (ids[example] for example in EXAMPLE_GROUPS)
    print(
        "VPC mode: moto plays EC2 and the replication groups. The replication group app-cache (port 6379) is "
        f"guarded by security groups app-cache ({cache}) and shared-clients ({shared}); "
        f"app-servers is {app}.\n"
    )
    failures = _run_vpc_steps(aws, ids, vpc_steps(ids))
    print(
        f"MemoryDB: moto plays MemoryDB too. The MemoryDB cluster {MEMORYDB_EXAMPLE} (port 6379) is guarded by "
        f"security group shared-clients ({shared}) alone, so letting app-servers in is one rule.\n"
    )
    return failures + _run_vpc_steps(aws, ids, memorydb_steps(ids))


def _run_vpc_steps(aws: OfflineAws, ids: dict[str, str], steps: list[VpcStep]) -> int:
    """Each step sent to the handler, with the rules from app-servers and their ledger entries after it."""
    app, cache, shared = (ids[example] for example in EXAMPLE_GROUPS)
    names = {cache: "app-cache", shared: "shared-clients"}
    failures = 0
    for number, step in enumerate(steps, 1):
        event = step.event
        started = time.monotonic()
        answer = aws.invoke(event)
        took = time.monotonic() - started
        rules = {
            (names[group], port): description
            for group in names
            for source, _owner, port, description in aws.vpc_rules(group)
            if source == app
        }
        ledger = aws.ledger()
        entries = {
            (names[group], port): ledger.get(f"vpc|{group}|tcp|{port}|{app}@{STACK_ACCOUNT}")
            for group in names
            for port in (6379,)
        }
        problems = _check_answer(answer, step.expect_id)
        if set(rules) != step.expect_rules:
            problems.append(f"the rules are {sorted(rules)}, expected {sorted(step.expect_rules)}")
        failures += bool(problems)
        rows = [
            f"{group} <- app-servers, tcp/{port}: {text!r}; {_held(entries.get((group, port)))}"
            for (group, port), text in sorted(rules.items())
        ]
        _show(number, event, step.title, answer, RULES_HEADING, rows, took, problems)
    return failures


def _properties(event: dict[str, Any]) -> str:
    """The properties the step sends, on one line: what names the cache and the source is what a reader looks for.

    ServiceToken is left out: the same function ARN in every step, and no part of the grant.
    """
    properties = {k: v for k, v in (event.get("ResourceProperties") or {}).items() if k != "ServiceToken"}
    return json.dumps(properties)


def _held(entry: dict[str, Any] | None) -> str:
    """A rule's ledger entry as a person reads it: how it came to be, and who holds it (a replacement's old and
    new id are two holds)."""
    if entry is None:
        return "ledger: no entry"
    values: list[str] = entry.get("held_by", [])
    counts = {value: values.count(value) for value in values}
    holders = "; ".join(f"{v} (x{n})" if n > 1 else v for v, n in counts.items()) or "nobody"
    return f"ledger: {entry.get('origin', '?')}, held by {holders}"


def _check_answer(answer: dict[str, Any], expect_id: str) -> list[str]:
    problems = []
    if answer.get("Status") != "SUCCESS":
        problems.append(f"Status is {answer.get('Status')}: {answer.get('Reason')}")
    if answer.get("PhysicalResourceId") != expect_id:
        problems.append(f"PhysicalResourceId is {answer.get('PhysicalResourceId')!r}, expected {expect_id!r}")
    return problems


def _show(
    number: int,
    event: dict[str, Any],
    title: str,
    answer: dict[str, Any],
    heading: str,
    rows: list[str],
    took: float,
    problems: list[str],
) -> None:
    print(f"== {number}. {event['RequestType']}: {title}  ({took:.2f} s)")
    print(f"   ResourceProperties sent: {_properties(event)}")
    print("   CloudFormation received:")
    for line in json.dumps(answer, indent=2).splitlines():
        print("     " + line)
    print(f"   {heading}:")
    for row in rows or ["(empty)"]:
        print("     " + row)
    for problem in problems:
        print(f"   UNEXPECTED: {problem}")
    print()


if __name__ == "__main__":
    sys.exit(main())
