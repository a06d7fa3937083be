"""``cache-ingress``: an operator's view of who can reach each cache, and the means to heal it.

Runs with the operator's own credentials and the standard AWS settings
(``AWS_PROFILE``, ``AWS_REGION``, ``AWS_ENDPOINT_URL_*``; ``--profile`` and
``--region`` set the first two). The ledger is found from the provider
stack's ``LedgerTable`` output (``--stack``, by default the stack the README
deploys), or named directly (``--table``).

Exit status: ``audit`` 0 with no findings, 1 with some; ``repair`` and
``sweep`` 0 once done; every command 2 on an error (``repair`` and ``sweep``
also when one rule failed: they go on with the others and say which). This module parses and
prints; the reads are :mod:`cache_ingress.survey`'s, the judgement
:mod:`cache_ingress.audit`'s, the changes :mod:`cache_ingress.remedy`'s.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from functools import partial
from typing import TextIO

from botocore.exceptions import BotoCoreError

from . import aws_api, render, retry
from .audit import selected
from .aws_api import ApiError
from .errors import ResourceError
from .remedy import FAILED, repair, sweep
from .survey import Apis, Survey
from .timing import Deadline

#: The stack name the README deploys (samconfig.toml's stack_name).
DEFAULT_STACK = "cache-sg-ingress"
#: The provider stack's output naming the ledger table (template.yaml).
LEDGER_OUTPUT = "LedgerTable"
DEFAULT_TIMEOUT_S = 300.0
OK, FINDINGS, ERROR = 0, 1, 2


class UsageError(Exception):
    """Something the operator must fix before the command can run; the message says what."""


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("where the ledger is")
    where.add_argument("--stack", default=DEFAULT_STACK, help=f"the provider stack (default {DEFAULT_STACK})")
    where.add_argument("--table", help="the ledger's DynamoDB table, instead of reading it from --stack")
    where.add_argument("--region", help="the AWS region (default: AWS_REGION, or the profile's)")
    where.add_argument("--profile", help="the AWS profile (default: AWS_PROFILE)")
    where.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="give up after this many seconds")
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--cache", action="append", default=[], metavar="NAME", help="a cache (repeatable)")
    which.add_argument("--all", action="store_true", help="every cache the ledger knows (the default)")

    top = argparse.ArgumentParser(
        prog="cache-ingress", description="Who can reach each cache, drift repaired, orphaned holders swept."
    )
    commands = top.add_subparsers(dest="command", required=True)
    audit = commands.add_parser(
        "audit", parents=[common, which], help="every rule into each cache, who holds it, and the findings"
    )
    audit.add_argument("--format", choices=("table", "json", "mermaid"), default="table")
    fix = commands.add_parser(
        "repair", parents=[common, which], help="authorize again the rules live holders declare and AWS lacks"
    )
    fix.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing")
    clean = commands.add_parser(
        "sweep", parents=[common, which], help="let go of holders whose stack is gone (a dry run unless --yes)"
    )
    clean.add_argument("--dry-run", action="store_true", help="say what would be done, change nothing (the default)")
    clean.add_argument("--yes", action="store_true", help="do it")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.all and args.cache:
        _say("cache-ingress: error: --all and --cache exclude each other", sys.stderr)
        return ERROR
    try:
        return _run(args)
    except (ResourceError, ApiError, UsageError, BotoCoreError) as err:
        _say(f"cache-ingress: error: {err}", sys.stderr)
        return ERROR


def _run(args: argparse.Namespace) -> int:
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile
    if args.region:
        os.environ["AWS_REGION"] = args.region
    deadline = Deadline(args.timeout, limit="--timeout")
    cloudformation = aws_api.CloudFormationApi(aws_api.make_client("cloudformation"))
    table = args.table or _ledger_table(cloudformation, args.stack, deadline)
    apis = Apis(
        ledger=aws_api.LedgerApi(aws_api.make_client("dynamodb"), table),
        ec2=aws_api.Ec2Api(aws_api.make_client("ec2")),
        elasticache=aws_api.ElastiCacheApi(aws_api.make_client("elasticache")),
        memorydb=aws_api.MemoryDbApi(aws_api.make_client("memorydb")),
        cloudformation=cloudformation,
    )
    identity = aws_api.IdentityApi(aws_api.make_client("sts"))
    account = retry.read(identity.account, deadline)
    survey = Survey(apis, deadline, account, str(cloudformation.client.meta.region_name))
    report = survey.report(args.cache)
    for name in args.cache:
        if not any(selected(cache.cache, [name]) for cache in report.caches):
            _say(f"cache-ingress: no cache {name!r} holds a rule in the ledger (table {table})", sys.stderr)
    if args.command == "audit":
        shown = {"table": render.table, "json": render.as_json, "mermaid": render.mermaid}[args.format]
        _say(shown(report))
        return FINDINGS if report.findings else OK
    if args.command == "repair":
        done = repair(survey, report, dry_run=args.dry_run)
        _say(render.actions(done, dry_run=args.dry_run, what="repair"))
        return ERROR if any(action.verb == FAILED for action in done) else OK
    dry_run = args.dry_run or not args.yes
    done = sweep(survey, report, dry_run=dry_run)
    _say(render.actions(done, dry_run=dry_run, what="sweep"))
    if dry_run and done:
        _say("run again with --yes to do it")
    return ERROR if any(action.verb == FAILED for action in done) else OK


def _say(text: str, stream: TextIO | None = None) -> None:
    """One line (or block) of output: the report on stdout, errors on stderr."""
    (stream or sys.stdout).write(text + "\n")


def _ledger_table(cloudformation: aws_api.CloudFormationApi, stack: str, deadline: Deadline) -> str:
    """The table the provider stack's ``LedgerTable`` output names."""
    found = retry.read(partial(cloudformation.stack, stack), deadline)
    if found is None:
        raise UsageError(
            f"no stack {stack!r} in this account and region: name the provider stack with --stack, or --table"
        )
    for output in found.get("Outputs") or []:
        if output.get("OutputKey") == LEDGER_OUTPUT:
            return str(output["OutputValue"])
    raise UsageError(
        f"stack {stack!r} has no {LEDGER_OUTPUT} output: update it to the current template.yaml, "
        "or name the ledger's table with --table"
    )


if __name__ == "__main__":
    sys.exit(main())
