"""``make demo``: ``Custom::CacheIngress`` offline, each request sent to the real ``lambda_handler``.

VPC mode first, as today's caches use it: a replication group let in from one
stack, then shared by a second stack (the ledger's holders show who keeps the
rule when one lets go), a serverless cache's two ports, a MemoryDB cluster and
a CIDR source. Then EC2-Classic mode, short: one ingress made and taken back.
moto plays EC2, MemoryDB, the replication groups and the ledger's DynamoDB;
the ElastiCache stand-in the rest. Each step shows what was asked, what
CloudFormation received, what EC2 (or ElastiCache) holds and who holds it in
the ledger; ``--verbose`` shows the full bodies and the function's own logs.
Every answer is checked: exits non-zero if any is not what CloudFormation expects.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from offline.caches import Cache
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
#: guards, in the example world), from its source, with the ledger's holders of it.
RULES_HEADING = "EC2 holds (target group <- source, port: ledger)"
#: The serverless cache the demo adds to the example world: guarded by app-cache, reached on 6379 and 6380.
SERVERLESS_EXAMPLE = "app-serverless"
#: The second stack that declares the same grant as cache-access, to show one rule with two holders.
SECOND_STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/reports/9e8d7c60-0c1d-11ef-9a0b-0a1b2c3d4e5f"


@dataclass(frozen=True)
class Step:
    title: str
    event: dict[str, Any]
    expect_id: str
    #: VPC: (target group name, port, source name) triples that must exist afterwards;
    #: EC2-Classic: (cache security group, EC2 security group, owner) triples.
    expect: AbstractSet[tuple[object, ...]]


def vpc_steps(ids: dict[str, str]) -> list[Step]:
    """The VPC-mode story on the example world; ``ids`` maps the events' example ids to moto's."""
    app, cache, shared = (ids[example] for example in EXAMPLE_GROUPS)
    create = load_event(EVENTS / "vpc-create.json", ids)
    rg_id = f"cache-vpc-ingress:{app}@{STACK_ACCOUNT}:6379:{','.join(sorted((cache, shared)))}"
    second = {
        **create,
        "StackId": SECOND_STACK,
        "RequestId": "7d2f2c7f-0101-4c5f-8b62-vpcshared101",
        "LogicalResourceId": "ReportsCacheAccess",
    }
    delete_first = load_event(EVENTS / "vpc-delete.json", ids, PhysicalResourceId=rg_id)
    delete_second = {
        **second,
        "RequestType": "Delete",
        "RequestId": "7d2f2c7f-0102-4c5f-8b62-vpcshared102",
        "PhysicalResourceId": rg_id,
    }
    delete_again = {**delete_second, "RequestId": "7d2f2c7f-0103-4c5f-8b62-vpcshared103"}
    both = {("app-cache", 6379, "app-servers"), ("shared-clients", 6379, "app-servers")}

    serverless = load_event(
        EVENTS / "vpc-create.json",
        ids,
        RequestId="7d2f2c7f-0201-4c5f-8b62-serverless01",
        LogicalResourceId="AppServerlessAccess",
        ResourceProperties={"ServerlessCacheName": SERVERLESS_EXAMPLE, "SourceSecurityGroupId": app},
    )
    serverless_id = f"cache-vpc-ingress:{app}@{STACK_ACCOUNT}:6379,6380:{cache}"

    memorydb = load_event(EVENTS / "vpc-memorydb-create.json", ids)
    memorydb_delete = load_event(EVENTS / "vpc-memorydb-delete.json", ids)
    memorydb_id = f"cache-vpc-ingress:{app}@{STACK_ACCOUNT}:6379:{shared}"

    cidr = load_event(EVENTS / "vpc-cidr-create.json", ids)
    cidr_id = f"cache-vpc-ingress:10.20.0.0/16:6379:{','.join(sorted((cache, shared)))}"
    office = {("app-cache", 6379, "10.20.0.0/16"), ("shared-clients", 6379, "10.20.0.0/16")}
    return [
        Step("stack cache-access: app-servers may reach the replication group app-cache", create, rg_id, both),
        Step("stack reports declares the same grant: the same rules, now two holders", second, rg_id, both),
        Step("in stack cache-access: the rules stay, stack reports still holds them", delete_first, rg_id, both),
        Step("in stack reports: nobody holds them, so they are taken back", delete_second, rg_id, set()),
        Step("the same Delete again (a repeated delivery): still SUCCESS", delete_again, rg_id, set()),
        Step(
            f"the serverless cache {SERVERLESS_EXAMPLE}: both its ports, 6379 and 6380",
            serverless,
            serverless_id,
            {("app-cache", 6379, "app-servers"), ("app-cache", 6380, "app-servers")},
        ),
        Step("both ports taken back", _delete_of(serverless, serverless_id), serverless_id, set()),
        Step(
            f"the MemoryDB cluster {MEMORYDB_EXAMPLE}, guarded by shared-clients alone",
            memorydb,
            memorydb_id,
            {("shared-clients", 6379, "app-servers")},
        ),
        Step("taken back, its ledger entry gone", memorydb_delete, memorydb_id, set()),
        Step("a CIDR source: the office network may reach app-cache", cidr, cidr_id, office),
        Step("taken back", _delete_of(cidr, cidr_id), cidr_id, set()),
    ]


def classic_steps() -> list[Step]:
    """EC2-Classic mode, short: an ingress into a cache security group, made and taken back."""
    create = load_event(EVENTS / "create.json")
    delete = load_event(EVENTS / "delete.json")
    ingress_id = "cache-sg-ingress:app-cache-sg:123456789012:app-servers"
    row = ("app-cache-sg", "app-servers", "123456789012")
    return [
        Step("app-servers may reach the cache security group app-cache-sg", create, ingress_id, {row}),
        Step("stack deletion: the ingress is revoked", delete, ingress_id, set()),
    ]


def _delete_of(create: dict[str, Any], physical_id: str) -> dict[str, Any]:
    """The Delete CloudFormation sends for the resource ``create`` made: the same properties, the id it was given."""
    request = create["RequestId"]
    return {**create, "RequestType": "Delete", "RequestId": f"{request[:-2]}99", "PhysicalResourceId": physical_id}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--settle", type=float, default=0.5, help="seconds ElastiCache takes to settle a change")
    parser.add_argument(
        "--verbose", action="store_true", help="full request and answer bodies, and the function's JSON logs"
    )
    parser.add_argument("--debug", action="store_true", help="log everything at DEBUG, botocore and crhelper included")
    parser.add_argument("--mode", choices=("both", "classic", "vpc"), default="both")
    args = parser.parse_args(argv)
    failures = 0
    with OfflineAws(settle_delay=args.settle, quiet=not args.verbose, debug=args.debug) as aws:
        if args.mode != "classic":
            failures += run_vpc(aws, args.verbose)
        if args.mode != "vpc":
            failures += run_classic(aws, args.settle, args.verbose)
    print(
        "Lifecycle complete: every answer was what CloudFormation expects."
        if not failures
        else f"{failures} step(s) did not go as CloudFormation expects."
    )
    return 1 if failures else 0


def run_vpc(aws: OfflineAws, verbose: bool = False) -> int:
    """The VPC-mode story; the number of steps that went wrong."""
    ids = aws.build_vpc_example()
    app, cache, shared = (ids[example] for example in EXAMPLE_GROUPS)
    aws.standin.add_serverless_cache(Cache(SERVERLESS_EXAMPLE, (cache,), 6379, reader_port=6380))
    print(
        f"== VPC mode. Security groups: app-servers {app}, app-cache {cache}, shared-clients {shared}.\n"
        "   replication group app-cache (6379) behind app-cache and shared-clients; serverless cache "
        f"{SERVERLESS_EXAMPLE} (6379, 6380)\n   behind app-cache; MemoryDB cluster {MEMORYDB_EXAMPLE} (6379) "
        "behind shared-clients.\n"
    )
    names = {app: "app-servers", cache: "app-cache", shared: "shared-clients"}
    failures = 0
    for number, step in enumerate(vpc_steps(ids), 1):
        started = time.monotonic()
        answer = aws.invoke(step.event)
        took = time.monotonic() - started
        rules = {
            (names[group], port, names.get(source, source)): (group, source, owner)
            for group in (cache, shared)
            for source, owner, port, _description in aws.vpc_rules(group)
        }
        ledger = aws.ledger()
        problems = _check_answer(answer, step.expect_id)
        if set(rules) != step.expect:
            problems.append(f"EC2 holds {sorted(rules)}, expected {sorted(step.expect)}")
        failures += bool(problems)
        rows = [
            f"{target} <- {source}, tcp/{port}: "
            + _held(ledger.get(f"vpc|{group}|tcp|{port}|{source_id}" + (f"@{owner}" if owner else "")))
            for (target, port, source), (group, source_id, owner) in sorted(rules.items())
        ]
        _show(number, step, answer, RULES_HEADING, rows, took, problems, verbose)
    return failures


def run_classic(aws: OfflineAws, settle: float, verbose: bool = False) -> int:
    """EC2-Classic mode, short; the number of steps that went wrong."""
    aws.create_cache_security_group("app-cache-sg")
    print(
        "== EC2-Classic mode (accounts made before 2014 only): the ElastiCache stand-in, changes settling in "
        f"{settle} s;\n   cache security group app-cache-sg.\n"
    )
    failures = 0
    for number, step in enumerate(classic_steps(), 1):
        started = time.monotonic()
        answer = aws.invoke(step.event)
        took = time.monotonic() - started
        table = aws.standin.ingress_table()
        problems = _check_answer(answer, step.expect_id)
        authorized = aws.standin.authorized()
        if authorized != step.expect or any(row["Status"] != "authorized" for row in table):
            problems.append(f"the ingress table is {sorted(authorized)}, expected {sorted(step.expect)}")
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
        _show(number, step, answer, "ElastiCache holds (ingress: ledger)", rows, took, problems, verbose)
    return failures


def _properties(event: dict[str, Any]) -> str:
    """The properties the step sends, on one line: what names the cache and the source is what a reader looks for.

    ServiceToken and ServiceTimeout are left out: the same in every step, and no part of the grant.
    """
    properties = event.get("ResourceProperties") or {}
    return ", ".join(f"{k}={v}" for k, v in properties.items() if k not in ("ServiceToken", "ServiceTimeout"))


def _attributes(answer: dict[str, Any]) -> str:
    """The answer's Data, on one line: the attributes a template reads with Fn::GetAtt, as a person reads them.

    Those that repeat what the step asked (the source, the description) are left out; ``--verbose`` has them all.
    """
    shown = {
        key: value
        for key, value in (answer.get("Data") or {}).items()
        if key not in ("Source", "SourceSecurityGroupId", "Description", "CacheSecurityGroupName")
    }
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _held(entry: dict[str, Any] | None) -> str:
    """A rule's ledger entry as a person reads it: how it came to be, and who holds it (a replacement's old and
    new id are two holds)."""
    if entry is None:
        return "ledger: no entry"
    values: list[str] = entry.get("held_by", [])
    counts = {value: values.count(value) for value in values}
    holders = "; ".join(f"{v} (x{n})" if n > 1 else v for v, n in counts.items()) or "nobody"
    return f"{entry.get('origin', '?')}, held by {holders}"


def _check_answer(answer: dict[str, Any], expect_id: str) -> list[str]:
    problems = []
    if answer.get("Status") != "SUCCESS":
        problems.append(f"Status is {answer.get('Status')}: {answer.get('Reason')}")
    if answer.get("PhysicalResourceId") != expect_id:
        problems.append(f"PhysicalResourceId is {answer.get('PhysicalResourceId')!r}, expected {expect_id!r}")
    return problems


def _show(
    number: int,
    step: Step,
    answer: dict[str, Any],
    heading: str,
    rows: list[str],
    took: float,
    problems: list[str],
    verbose: bool,
) -> None:
    """One step, on a few lines: asked, received, held. ``verbose`` adds both bodies in full."""
    event = step.event
    print(f"-- {number}. {event['RequestType']}: {step.title}  ({took:.2f} s)")
    print(f"   asked:    {_properties(event)}")
    print(f"   received: {answer.get('Status')}, id {answer.get('PhysicalResourceId')}")
    for line in textwrap.wrap(_attributes(answer), 104):
        print(f"             {line}")
    if verbose:
        request = {k: v for k, v in event.items() if k != "ResponseURL"}  # the URL is a secret: never shown
        print("   request sent:")
        for line in json.dumps(request, indent=2).splitlines():
            print("     " + line)
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
