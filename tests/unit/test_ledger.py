"""The ledger's pure parts: how rules and holders are keyed, how an entry reads, and how writes are spelt."""

from __future__ import annotations

import pytest

from cache_ingress import aws_api, retry
from cache_ingress.aws_api import ApiError, LedgerApi, Write
from cache_ingress.classic_lifecycle import CacheGroupSide
from cache_ingress.classic_rules import Ingress
from cache_ingress.errors import LedgerUnreachable
from cache_ingress.ledger import AUTHORIZING, Entry, Holder, Joining, Ledger, Letting, joining, letting
from cache_ingress.sources import Source, SourceKind
from cache_ingress.timing import Deadline
from cache_ingress.vpc_holds import Ec2Side, rule_tags
from cache_ingress.vpc_rules import RuleSet

STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/cache-access/5b6a8e10"
ID = "cache-vpc-ingress:sg-0000000b@123456789012:6379:sg-0000000a"


def side(source: Source) -> Ec2Side:
    return Ec2Side(aws_api.Ec2Api(None), RuleSet.of(source, [6379], ["sg-0000000a"]), {}, Deadline(1.0))


def test_a_vpc_rule_is_keyed_by_what_ec2_knows_it_by_its_source_spelt_as_the_id_spells_it() -> None:
    group = side(Source(SourceKind.SECURITY_GROUP, "sg-0000000b", "123456789012"))
    assert group.key(("sg-0000000a", 6379)) == "vpc|sg-0000000a|tcp|6379|sg-0000000b@123456789012"
    ipv6 = side(Source(SourceKind.IPV6, "2001:db8::/56"))
    assert ipv6.key(("sg-0000000a", 6380)) == "vpc|sg-0000000a|tcp|6380|[2001:db8::/56]"


def test_a_cache_security_group_ingress_is_keyed_by_its_three_names() -> None:
    ingress = Ingress("app-cache-sg", "batch workers / nightly", "210987654321")
    assert (
        CacheGroupSide(aws_api.ElastiCacheApi(None), Deadline(1.0), lambda _: None).key(ingress)
        == "classic|app-cache-sg|batch workers / nightly|210987654321"
    )


def test_a_holder_is_the_instance_each_of_its_ids_a_holder_of_its_own() -> None:
    one = Holder(STACK, "Access", ID)
    assert one.key == Holder(STACK, "Access", ID).key
    assert len(one.key) == 32
    assert int(one.key, 16) >= 0
    assert len({one.key, Holder(STACK, "Access", "").key, Holder(STACK, "Other", ID).key}) == 3
    assert one.name == "stack cache-access, resource Access"


def test_the_rules_made_carry_tags_for_people_naming_the_table_and_who_made_them() -> None:
    assert rule_tags("ledger-table", Holder(STACK, "Access", ID)) == {
        "cache-ingress:managed-by": "Custom::CacheIngress; holders in DynamoDB table ledger-table",
        "cache-ingress:made-by": "stack cache-access, resource Access",
    }


def test_an_entry_reads_its_counts_and_its_lease_which_holds_until_it_expires() -> None:
    entry = Entry.of({"holders": 0, "version": 3, "origin": "made", "lease_until": 100.5, "lease_holder": "h"})
    assert (entry.holders, entry.version, entry.origin, entry.rule_id) == (0, 3, "made", "")
    assert entry.leased(100.0)
    assert not entry.leased(100.5)
    assert not Entry.of({"holders": 1, "version": 1}).leased(0.0)
    assert Entry.of({}).origin == AUTHORIZING


def test_a_write_names_every_attribute_by_placeholder_and_types_its_values() -> None:
    write = Write(
        "rule#k",
        "rule",
        update="SET #holders = :n ADD #version :one",
        condition="#version = :v AND attribute_exists(#pk)",
        values={":n": 2, ":one": 1, ":v": 1, ":s": "x"},
    )
    assert aws_api._write_params("t", write) == {
        "TableName": "t",
        "Key": {"pk": {"S": "rule#k"}, "sk": {"S": "rule"}},
        "UpdateExpression": "SET #holders = :n ADD #version :one",
        "ConditionExpression": "#version = :v AND attribute_exists(#pk)",
        "ExpressionAttributeNames": {"#holders": "holders", "#pk": "pk", "#version": "version"},
        "ExpressionAttributeValues": {":n": {"N": "2"}, ":one": {"N": "1"}, ":s": {"S": "x"}, ":v": {"N": "1"}},
    }
    assert aws_api._transact_item("t", Write("p", "s", item={"a": "b"}))["Put"]["Item"] == {
        "pk": {"S": "p"},
        "sk": {"S": "s"},
        "a": {"S": "b"},
    }
    assert aws_api._decoded({"N": "1.5"}) == 1.5
    assert aws_api._decoded({"N": "2"}) == 2


@pytest.mark.parametrize(
    ("code", "reasons", "transient"),
    [
        ("TransactionCanceledException", ("TransactionConflict", "None"), True),
        ("TransactionCanceledException", ("ConditionalCheckFailed", "TransactionConflict"), False),
        ("TransactionCanceledException", ("ConditionalCheckFailed", "None"), False),
        ("ConditionalCheckFailedException", (), False),
        ("TransactionConflictException", (), True),
        ("ProvisionedThroughputExceededException", (), True),
        ("ResourceNotFoundException", (), False),
    ],
)
def test_a_transaction_that_only_met_another_is_retried_and_a_failed_condition_is_not(
    code: str, reasons: tuple[str, ...], transient: bool
) -> None:
    assert retry.transient(ApiError("TransactWriteItems", code, "", 400, reasons=reasons)) is transient


def test_a_function_deployed_without_its_table_says_how_to_get_one() -> None:
    with pytest.raises(LedgerUnreachable, match="LEDGER_TABLE is not set"):
        Ledger(LedgerApi(None, ""), Deadline(1.0))


HOLDER = Holder(STACK, "Access", ID)


def entry(holders: int = 1, origin: str = "made", lease_until: float = 0.0, lease_holder: str = "") -> Entry:
    return Entry(holders, 3, origin, "sgr-1", "d", lease_until, lease_holder)


def test_a_hold_makes_a_fresh_entry_joins_one_waits_out_a_live_lease_and_writes_nothing_twice() -> None:
    assert joining(None, held=False, now=100.0) is Joining.FRESH
    assert joining(entry(), held=False, now=100.0) is Joining.JOIN
    assert joining(entry(0, lease_until=101.0, lease_holder="other"), held=False, now=100.0) is Joining.WAIT
    assert joining(entry(0, lease_until=99.0, lease_holder="other"), held=False, now=100.0) is Joining.JOIN
    assert joining(entry(), held=True, now=100.0) is Joining.ALREADY


@pytest.mark.parametrize(
    ("state", "held", "step"),
    [
        (None, False, Letting.UNRECORDED),
        (entry(2), True, Letting.LET_GO),  # others hold it
        (entry(1, origin="pre-existing"), True, Letting.LET_GO),  # there before any holder: never revoked
        (entry(1), True, Letting.REVOKE),  # the last holder of a rule a holder made
        (entry(1, origin="authorizing"), True, Letting.REVOKE),  # its Authorize's answer never recorded
        (entry(1), False, Letting.NOTHING),  # not a holder: a crafted id
        (entry(0), False, Letting.REVOKE),  # a release that died half-way, its lease given back
        (entry(0, lease_until=99.0, lease_holder="other"), False, Letting.REVOKE),  # its lease expired
        (entry(0, lease_until=101.0, lease_holder="other"), False, Letting.NOTHING),  # another's revoke is on
        (entry(0, lease_until=101.0, lease_holder=HOLDER.key), False, Letting.REVOKE),  # its own, retried
        (entry(0, origin="pre-existing"), False, Letting.NOTHING),
    ],
)
def test_a_release_lets_go_revokes_as_the_last_holder_or_finishes_a_release_that_died(
    state: Entry | None, held: bool, step: Letting
) -> None:
    assert letting(state, held, HOLDER, now=100.0) is step
