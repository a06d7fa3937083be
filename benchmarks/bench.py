"""``make bench``: the resource's speed, each figure beside a floor measured in the same run.

Figures (see README, Performance): cold start, warm Create, Delete latency,
a throttled burst, API calls per request, VPC mode's warm Create and calls,
and the deployment package. Each
prints its ratio to its floor and its budget; the run exits 1 if a budget is
missed. ``--smoke`` runs every figure small, for CI: it checks that each
figure can be measured and that every request succeeded, not the budgets,
which only mean something on a quiet machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import itertools
import json
import multiprocessing
import os
import ssl
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "handler")]

from offline.harness import OFFLINE_ENV, STACK_ACCOUNT, LambdaContext, OfflineAws, load_event  # noqa: E402

BASE_EVENT = load_event(ROOT / "events" / "create.json")
DELETE_EVENT = load_event(ROOT / "events" / "delete.json")


@dataclass
class Figure:
    name: str
    value: str
    floor: str
    ratio: float | None
    budget: str
    ok: bool

    def line(self) -> str:
        ratio = f"{self.ratio:5.2f}x" if self.ratio is not None else "   -  "
        verdict = "ok" if self.ok else "MISSED"
        return f"{self.name:<22} {self.value:<30} {self.floor:<34} {ratio}  {self.budget:<34} {verdict}"


def create_event(name: str) -> dict[str, Any]:
    properties = {**BASE_EVENT["ResourceProperties"], "EC2SecurityGroupName": name}
    return {**BASE_EVENT, "RequestId": f"bench-{name}", "ResourceProperties": properties}


# -- cold start -------------------------------------------------------------------

IMPORT_HANDLER = (
    "import sys,time;t=time.perf_counter();sys.path.insert(0,'handler');import app;print(time.perf_counter()-t)"
)
IMPORT_HANDLER_AND_CLIENT = (
    "import sys,time;t=time.perf_counter();sys.path.insert(0,'handler');import app;app.api();"
    "print(time.perf_counter()-t)"
)
FLOOR = "import time;t=time.perf_counter();import boto3;boto3.client('elasticache');print(time.perf_counter()-t)"


def _timed_child(code: str) -> float:
    env = {**os.environ, **OFFLINE_ENV, "PYTHONDONTWRITEBYTECODE": "1"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def cold_start(runs: int) -> list[Figure]:
    ratios, ours, floors, with_client = [], [], [], []
    for _ in range(runs):  # alternating, so drift hits both sides alike
        mine, floor = _timed_child(IMPORT_HANDLER), _timed_child(FLOOR)
        ours.append(mine)
        floors.append(floor)
        ratios.append(mine / floor)
        with_client.append(_timed_child(IMPORT_HANDLER_AND_CLIENT) / floor)
    ratio = statistics.median(ratios)
    return [
        Figure(
            "cold start (import)",
            f"{statistics.median(ours) * 1000:.0f} ms import app",
            f"{statistics.median(floors) * 1000:.0f} ms boto3 + client",
            ratio,
            "<= 1.30x",
            ratio <= 1.3,
        ),
        Figure(
            "  + first client",
            "import app; app.api()",
            "(same floor)",
            statistics.median(with_client),
            "(reported: paid on first request)",
            True,
        ),
    ]


# -- warm Create ------------------------------------------------------------------


def _put(url: str, body: bytes, context: ssl.SSLContext) -> None:
    parts = urlsplit(url)
    connection = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=5, context=context)
    connection.request("PUT", f"{parts.path}?{parts.query}", body=body, headers={"Content-Type": ""})
    connection.getresponse().read()
    connection.close()


def _ledger_floor(dynamodb: Any, table: str, name: str, step: str) -> None:
    """The ledger's part of a fresh hold, made directly: one transaction of two new items ("held"), or the
    update recording the rule ("made")."""
    key = {"pk": {"S": f"floor#{name}"}}
    if step == "held":
        new = {"TableName": table, "ConditionExpression": "attribute_not_exists(pk)"}
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {**new, "Item": {**key, "sk": {"S": "holder"}}}},
                {"Put": {**new, "Item": {**key, "sk": {"S": "rule"}, "holders": {"N": "1"}}}},
            ]
        )
    else:
        dynamodb.update_item(
            TableName=table,
            Key={**key, "sk": {"S": "rule"}},
            UpdateExpression="SET origin = :made",
            ExpressionAttributeValues={":made": {"S": "made"}},
        )


def warm_create(count: int) -> list[Figure]:
    import boto3

    with OfflineAws(settle_delay=0.0, quiet=False) as aws:
        aws.standin.add_group("app-cache-sg")
        app = aws.handler_module()
        client = boto3.client("elasticache")
        context = ssl.create_default_context()
        params = {"CacheSecurityGroupName": "app-cache-sg", "EC2SecurityGroupOwnerId": "123456789012"}
        body = json.dumps({"Status": "SUCCESS", "PhysicalResourceId": "x" * 60, "Data": params}).encode()
        dynamodb, table = boto3.client("dynamodb"), os.environ["LEDGER_TABLE"]
        for n in range(5):  # warm both paths
            aws.invoke(create_event(f"warm-{n}"))
            _ledger_floor(dynamodb, table, f"floor-warm-{n}", "held")
            client.authorize_cache_security_group_ingress(**params, EC2SecurityGroupName=f"floor-warm-{n}")
            _ledger_floor(dynamodb, table, f"floor-warm-{n}", "made")
            _put(aws.receiver.new_url(), body, context)
        ours = floor = 0.0
        failed = 0
        rounds = 5
        for r in range(rounds):
            started = time.perf_counter()
            for n in range(count // rounds):
                event = {**create_event(f"ours-{r}-{n}"), "ResponseURL": aws.receiver.new_url()}
                app.lambda_handler(event, LambdaContext(60))
                failed += (app.helper.answer or {}).get("Status") != "SUCCESS"
            ours += time.perf_counter() - started
            started = time.perf_counter()
            for n in range(count // rounds):
                _ledger_floor(dynamodb, table, f"floor-{r}-{n}", "held")
                client.authorize_cache_security_group_ingress(**params, EC2SecurityGroupName=f"floor-{r}-{n}")
                _ledger_floor(dynamodb, table, f"floor-{r}-{n}", "made")
                _put(aws.receiver.new_url(), body, context)
            floor += time.perf_counter() - started
    done = rounds * (count // rounds)
    ratio = ours / floor
    return [
        Figure(
            "warm Create",
            f"{ours / done * 1000:.2f} ms per Create",
            f"{floor / done * 1000:.2f} ms Txn+Authorize+Upd+PUT",
            ratio,
            "<= 1.50x",
            ratio <= 1.5 and failed == 0,
        )
    ]


# -- Delete latency ---------------------------------------------------------------


def delete_latency(settles: list[float]) -> list[Figure]:
    worst = 0.0
    failed = 0
    with OfflineAws(quiet=False) as aws:
        for settle in settles:
            aws.standin.reset()
            aws.standin.settle_delay = settle
            aws.standin.add_group("app-cache-sg")
            failed += aws.invoke(BASE_EVENT)["Status"] != "SUCCESS"
            answer = aws.invoke(DELETE_EVENT, seconds=900)
            failed += answer["Status"] != "SUCCESS"
            (revoke,) = aws.standin.calls("RevokeCacheSecurityGroupIngress")
            (put,) = [p for p in aws.receiver.puts() if json.loads(p.body)["RequestId"] == DELETE_EVENT["RequestId"]]
            aws.receiver.reset()
            worst = max(worst, put.at - (revoke.answered + settle))
    return [
        Figure(
            "Delete latency",
            f"{worst * 1000:.0f} ms after settling",
            "120 s crhelper's sleep_on_delete",
            worst / 120.0,
            "answered <= 1 s after settling",
            worst <= 1.0 and failed == 0,
        )
    ]


# -- throttled burst ----------------------------------------------------------------


def _quiet_worker() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)


def _burst_worker(names: list[str], environment: dict[str, str]) -> list[str]:
    """One Lambda sandbox: one process, one event at a time."""
    os.environ.update(environment)
    sys.path[:0] = [str(ROOT), str(ROOT / "handler")]
    import app

    statuses = []
    for name in names:
        event = {**create_event(name), "ResponseURL": environment["BENCH_RESPONSE_BASE"] + f"/cfn-response/{name}?s=1"}
        app.lambda_handler(event, LambdaContext(300))
        statuses.append((app.helper.answer or {}).get("Status", "none"))
    return statuses


def throttled_burst(total: int, workers: int, rate: float) -> list[Figure]:
    with OfflineAws(settle_delay=0.0, quiet=False) as aws:
        aws.standin.add_group("app-cache-sg")
        aws.standin.set_rate_limit(rate)
        environment = {**{k: v for k, v in os.environ.items() if k.startswith(("AWS_", "SSL_", "POWERTOOLS_"))}}
        environment["BENCH_RESPONSE_BASE"] = aws.receiver.url
        names = [f"burst-{n}" for n in range(total)]
        shares = [names[w::workers] for w in range(workers)]
        spawn = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=spawn, initializer=_quiet_worker) as pool:
            # Start the clock once every sandbox is up: cold starts are measured above.
            list(pool.map(_noop, range(workers)))
            started = time.perf_counter()
            results = list(pool.map(_burst_worker, shares, [environment] * workers))
            wall = time.perf_counter() - started
        statuses = [s for r in results for s in r]
        answered = {json.loads(p.body)["RequestId"]: json.loads(p.body)["Status"] for p in aws.receiver.puts()}
        throttled = sum(c.error == "Throttling" for c in aws.standin.calls())
    floor = total / rate
    succeeded = sum(s == "SUCCESS" for s in statuses)
    all_answered = len(answered) == total and set(answered.values()) == {"SUCCESS"}
    return [
        Figure(
            "throttled burst",
            f"{succeeded}/{total} SUCCESS in {wall:.1f} s ({throttled} throttled)",
            f"{floor:.1f} s = {total} calls at {rate:.0f}/s",
            wall / floor,
            "all SUCCESS, <= 2.00x",
            succeeded == total and all_answered and wall <= 2 * floor,
        )
    ]


def _noop(_: int) -> None:
    import app  # noqa: F401 - the sandbox's cold start, outside the timed part


# -- API calls ----------------------------------------------------------------------


def api_calls(settle: float) -> list[Figure]:
    from cache_ingress.timing import FIRST_POLL_S

    with OfflineAws(settle_delay=settle, quiet=False) as aws:
        aws.standin.add_group("app-cache-sg")
        ok = aws.invoke(BASE_EVENT)["Status"] == "SUCCESS"
        create_calls = aws.standin.calls()
        ok &= aws.invoke(DELETE_EVENT)["Status"] == "SUCCESS"
        delete_calls = aws.standin.calls()[len(create_calls) :]
        aws.standin.reset()
        aws.standin.settle_delay = 0.0
        aws.standin.add_group("app-cache-sg")
        ok &= aws.invoke(BASE_EVENT)["Status"] == "SUCCESS"
        immediate = [c.action.replace("CacheSecurityGroup", "") for c in aws.standin.calls()]
    figures = []
    for name, calls, write in (("Create", create_calls, "Authorize"), ("Delete", delete_calls, "Revoke")):
        writes = sum(c.action.startswith(write) for c in calls)
        describes = sum(c.action == "DescribeCacheSecurityGroups" for c in calls)
        gaps = [b.answered - a.answered for a, b in itertools.pairwise(calls)]
        closest = min(gaps, default=float("inf"))
        figures.append(
            Figure(
                f"API calls per {name}",
                f"{writes} {write} + {describes} Describe",
                f"settle {settle} s; closest {closest:.2f} s apart",
                None,
                f"1 {write}; polls >= {FIRST_POLL_S} s apart",
                ok and writes == 1 and closest >= FIRST_POLL_S * 0.95,
            )
        )
    figures.append(
        Figure(
            "  Create, settle 0",
            " + ".join(immediate),
            "Authorize answered 'authorized'",
            None,
            "no Describe",
            ok and immediate == ["AuthorizeIngress"],
        )
    )
    return figures


# -- VPC mode -----------------------------------------------------------------------


def vpc_create(count: int) -> list[Figure]:
    """Warm VPC-mode Creates (each letting a new group in) against the same calls made directly, and call counts."""
    with OfflineAws(settle_delay=0.0, quiet=False) as aws:
        ids = aws.build_vpc_example()
        template = load_event(ROOT / "events" / "vpc-create.json", ids)
        app = aws.handler_module()
        calls = _record_calls(app)  # from the start, so that the timed Creates pay for the recording too
        ok, ours_s, floor_s, done = _vpc_timing(aws, app, ids, template, count)
        counted, create_calls, delete_calls = _vpc_call_counts(aws, template, calls)
        ok &= counted
    ratio = ours_s / floor_s
    # The cache, then each target group's rules for its quota; per rule (one per group here): hold it in the
    # ledger, authorize it, record its id.
    expected_create = (
        ["DescribeReplicationGroups", "DescribeCacheClusters"]
        + ["DescribeSecurityGroupRules"] * 2
        + [
            "TransactWriteItems",
            "AuthorizeSecurityGroupIngress",
            "UpdateItem",
        ]
        * 2
    )
    # Per rule: read its entry and this holder's, let go and take the lease, revoke it, delete its entry.
    per_rule = ["GetItem", "GetItem", "TransactWriteItems", "RevokeSecurityGroupIngress", "DeleteItem"]
    expected_delete = per_rule * 2
    return [
        Figure(
            "warm VPC Create",
            f"{ours_s / done * 1000:.2f} ms per Create",
            f"{floor_s / done * 1000:.2f} ms 4 Describe+2x(Txn+Auth+Upd)+PUT",
            ratio,
            "<= 1.20x",
            ok and ratio <= 1.2,
        ),
        Figure(
            "  calls per Create",
            f"{create_calls.count('AuthorizeSecurityGroupIngress')} Authorize + {len(create_calls) - 2} other",
            "2 target groups, 1 port",
            None,
            "4 Describe; per rule 1 Txn, 1 Authorize, 1 UpdateItem",
            ok and sorted(create_calls) == sorted(expected_create),
        ),
        Figure(
            "  calls per Delete",
            f"{delete_calls.count('RevokeSecurityGroupIngress')} Revoke + {len(delete_calls) - 2} other",
            "2 target groups, 1 port",
            None,
            "per rule 2 GetItem, 1 Txn, 1 Revoke, 1 DeleteItem",
            ok and sorted(delete_calls) == sorted(expected_delete),
        ),
    ]


def _record_calls(app: Any) -> list[str]:
    """The names of the EC2 and ledger (DynamoDB) calls the handler makes from now on, as a list kept up to date."""
    calls: list[str] = []
    app.ec2().client.meta.events.register("before-call.ec2", lambda model, **_: calls.append(model.name))
    app.ledger().client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    return calls


def _vpc_timing(
    aws: OfflineAws, app: Any, ids: dict[str, str], template: dict[str, Any], count: int
) -> tuple[bool, float, float, int]:
    """Batches of Creates, ours then the floor's, the first batch untimed: (all SUCCESS, ours s, floor s, Creates)."""
    import boto3

    sources = list(aws.moto.security_groups(*(f"src-{n}" for n in range(2 * count + 40))).values())
    guards = sorted((ids["sg-0c0c0c0c0c0c0c0c1"], ids["sg-0d0d0d0d0d0d0d0d2"]))
    elasticache, ec2, dynamodb = boto3.client("elasticache"), boto3.client("ec2"), boto3.client("dynamodb")
    table = os.environ["LEDGER_TABLE"]
    context = ssl.create_default_context()
    body = json.dumps({"Status": "SUCCESS", "PhysicalResourceId": "x" * 120, "Data": {"Ports": "6379"}}).encode()

    def ours(source: str) -> bool:
        properties = {**template["ResourceProperties"], "SourceSecurityGroupId": source}
        event = {**template, "ResourceProperties": properties, "ResponseURL": aws.receiver.new_url()}
        app.lambda_handler(event, LambdaContext(60))
        return (app.helper.answer or {}).get("Status") == "SUCCESS"

    def permission(source: str) -> dict[str, Any]:
        pair = {"GroupId": source, "UserId": STACK_ACCOUNT, "Description": "x"}
        return {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "UserIdGroupPairs": [pair]}

    def floor(source: str) -> None:
        group = elasticache.describe_replication_groups(ReplicationGroupId="app-cache")["ReplicationGroups"][0]
        elasticache.describe_cache_clusters(CacheClusterId=group["MemberClusters"][0], ShowCacheNodeInfo=True)
        for target in guards:  # each target group's rules, counted against its quota before any write
            ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [target]}], MaxResults=1000)
        for target in guards:
            _ledger_floor(dynamodb, table, f"{target}#{source}", "held")
            ec2.authorize_security_group_ingress(GroupId=target, IpPermissions=[permission(source)])
            _ledger_floor(dynamodb, table, f"{target}#{source}", "made")
        _put(aws.receiver.new_url(), body, context)

    def clean(used: list[str]) -> None:
        """Untimed: a VPC security group holds at most 60 inbound rules."""
        for target in guards:
            ec2.revoke_security_group_ingress(GroupId=target, IpPermissions=[permission(s) for s in used])

    ok, ours_s, floor_s = True, 0.0, 0.0
    batch = 20
    for round_ in range(count // batch + 1):  # the first round warms both paths, untimed
        used = [sources.pop() for _ in range(batch)]
        started = time.perf_counter()
        for source in used:
            ok &= ours(source)
        ours_s += (time.perf_counter() - started) * bool(round_)
        clean(used)
        used = [sources.pop() for _ in range(batch)]
        started = time.perf_counter()
        for source in used:
            floor(source)
        floor_s += (time.perf_counter() - started) * bool(round_)
        clean(used)
    return ok, ours_s, floor_s, batch * (count // batch)


def _vpc_call_counts(aws: OfflineAws, template: dict[str, Any], calls: list[str]) -> tuple[bool, list[str], list[str]]:
    """One more Create and its Delete, counting every call: (both SUCCESS, the Create's calls, the Delete's)."""
    before = len(aws.standin.calls())
    calls.clear()
    created = aws.invoke(template)
    ok = created["Status"] == "SUCCESS"
    create_calls = [c.action for c in aws.standin.calls()[before:]] + calls[:]
    calls.clear()
    delete = {**template, "RequestType": "Delete", "PhysicalResourceId": created["PhysicalResourceId"]}
    ok &= aws.invoke(delete)["Status"] == "SUCCESS"
    return ok, create_calls, calls[:]


# -- package ------------------------------------------------------------------------


def package() -> list[Figure]:
    sam = ROOT / ".venv-sam" / "bin" / "sam"
    if not sam.exists():
        return [Figure("package", "skipped: run `make build` once", "", None, "report", True)]
    env = {**os.environ, "PATH": f"{sam.parent}:{os.environ['PATH']}"}
    subprocess.run([str(sam), "build"], cwd=ROOT, env=env, check=True, capture_output=True)
    built = ROOT / ".aws-sam" / "build" / "IngressFunction"
    archive = ROOT / ".aws-sam" / "function.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(built.rglob("*")):
            zipped.write(path, path.relative_to(built))
    top = sorted(p.name for p in built.iterdir())
    unwanted = [n for n in top if n in ("boto3", "botocore", "bin", "tests", "__pycache__")]
    unwanted += [str(p.relative_to(built)) for p in built.rglob("__pycache__")]
    size = archive.stat().st_size
    # The built package, not handler/, runs the whole demo lifecycle: nothing it needs was cut.
    demo = subprocess.run(
        [sys.executable, "-m", "offline.demo", "--settle", "0.1"],
        cwd=ROOT,
        env={**os.environ, "CACHE_INGRESS_HANDLER_DIR": str(built)},
        capture_output=True,
        check=False,
    )
    return [
        Figure(
            "package (zip)",
            f"{size / 1024:.0f} KiB, {sum(1 for p in built.rglob('*') if p.is_file())} files",
            ", ".join(n for n in top if not n.endswith(".dist-info"))[:34],
            None,
            "no boto3, bin/, caches; demo runs on it",
            not unwanted and demo.returncode == 0,
        )
    ]


# -- driver -------------------------------------------------------------------------


def _in_child(function: Callable[..., list[Figure]], *args: Any) -> list[Figure]:
    """Each figure in a fresh process, its stdout (the function's logs) sent to /dev/null."""
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn, initializer=_quiet_worker) as pool:
        return pool.submit(function, *args).result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="small and quick; budgets reported, not enforced")
    args = parser.parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "INFO"  # as deployed: INFO JSON logs and EMF metrics
    small = args.smoke
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {os.uname().machine}")
    print(f"{'figure':<22} {'measured':<30} {'floor (same run)':<34} {'ratio':>6}  {'budget':<34} verdict")
    figures: list[Figure] = []
    plan: list[tuple[Callable[..., list[Figure]], tuple[Any, ...]]] = [
        (cold_start, (3 if small else 15,)),
        (warm_create, (25 if small else 200,)),
        # Settle times just after a poll (polls at 0.2, 0.6, 1.4, 2.2 s): the worst case for latency.
        (delete_latency, ([0.65] if small else [0.25, 0.65, 1.45, 2.25],)),
        (throttled_burst, ((40, 8, 20.0) if small else (200, 8, 20.0))),
        (api_calls, (1.0,)),
        (vpc_create, (25 if small else 200,)),
        (package, ()),
    ]
    for function, function_args in plan:
        for figure in _in_child(function, *function_args):
            figures.append(figure)
            print(figure.line(), flush=True)
    missed = [f.name for f in figures if not f.ok]
    if args.smoke:
        print("smoke run: budgets are reported, not enforced")
        return 0
    print("every budget holds" if not missed else f"budgets missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
