"""Stack operations as CloudFormation runs them, each path named after what the user would see."""

from __future__ import annotations

from offline.standin import ElastiCacheStandIn
from tests.lifecycle.simulator import CloudFormation, Stack, declared_ingress

WEB = {"CacheSecurityGroupName": "app-cache-sg", "EC2SecurityGroupName": "web"}
WORKERS = {
    "CacheSecurityGroupName": "app-cache-sg",
    "EC2SecurityGroupName": "workers / batch",
    "EC2SecurityGroupOwnerId": "2109-8765-4321",
}
OTHER = {"CacheSecurityGroupName": "other-sg", "EC2SecurityGroupName": "web"}


def declared(*stacks: Stack) -> set[tuple[str, str, str]]:
    found = {declared_ingress(s.stack_id, p) for s in stacks for p in s.declared().values()}
    return {i for i in found if i is not None}


def test_create_update_replace_delete(cfn: CloudFormation, standin: ElastiCacheStandIn) -> None:
    stack = cfn.create_stack("app", {"Web": WEB})
    assert stack.status == "CREATE_COMPLETE"
    assert standin.authorized() == declared(stack) == {("app-cache-sg", "web", "123456789012")}
    first_id = stack.resources["Web"].physical_id

    cfn.update_stack(stack, {"Web": {**WEB, "EC2SecurityGroupOwnerId": "1234-5678-9012"}})
    assert (stack.status, stack.resources["Web"].physical_id) == ("UPDATE_COMPLETE", first_id)

    cfn.update_stack(stack, {"Web": WORKERS})
    assert stack.status == "UPDATE_COMPLETE"
    assert stack.resources["Web"].physical_id != first_id
    assert standin.authorized() == declared(stack) == {("app-cache-sg", "workers / batch", "210987654321")}

    cfn.delete_stack(stack)
    assert stack.status == "DELETE_COMPLETE"
    assert standin.ingress_table() == []


def test_another_resource_failing_rolls_the_update_back(cfn: CloudFormation, standin: ElastiCacheStandIn) -> None:
    stack = cfn.create_stack("app", {"Web": WEB, "Other": OTHER})
    before = declared(stack)
    cfn.update_stack(
        stack,
        {"Web": WORKERS, "Other": OTHER, "New": {**WEB, "EC2SecurityGroupName": "new"}},
        another_resource_fails=True,
    )
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert standin.authorized() == before == declared(stack)


def test_a_failing_update_rolls_back_to_the_old_ingress(cfn: CloudFormation, standin: ElastiCacheStandIn) -> None:
    stack = cfn.create_stack("app", {"Web": WEB})
    cfn.update_stack(stack, {"Web": {**WEB, "CacheSecurityGroupName": "missing-sg"}})
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert standin.authorized() == declared(stack) == {("app-cache-sg", "web", "123456789012")}


def test_a_replacement_that_cannot_settle_is_taken_back_by_the_rollback(
    cfn: CloudFormation, standin: ElastiCacheStandIn
) -> None:
    stack = cfn.create_stack("app", {"Web": WEB})
    standin.settle_delay = 2.0
    budgets = iter([1.2])  # only the update itself runs short of time; its rollback has the usual budget
    cfn.before_each = lambda event: next(budgets, None)
    cfn.update_stack(stack, {"Web": WORKERS})
    assert stack.status == "UPDATE_ROLLBACK_COMPLETE"
    assert standin.authorized() == declared(stack) == {("app-cache-sg", "web", "123456789012")}


def test_a_create_that_fails_leaves_nothing_behind(cfn: CloudFormation, standin: ElastiCacheStandIn) -> None:
    stack = cfn.create_stack("app", {"Web": WEB, "Broken": {**WEB, "CacheSecurityGroupName": "missing-sg"}})
    assert stack.status == "ROLLBACK_COMPLETE"
    assert standin.ingress_table() == []


def test_a_create_with_bad_input_makes_no_call_and_rolls_back(cfn: CloudFormation, standin: ElastiCacheStandIn) -> None:
    stack = cfn.create_stack("app", {"Broken": {**WEB, "EC2SecurityGroupOwnerID": "123456789012"}})
    assert stack.status == "ROLLBACK_COMPLETE"
    assert standin.calls() == []


def test_a_create_whose_answer_is_lost_is_cleaned_up_by_the_invented_id_delete(
    cfn: CloudFormation, standin: ElastiCacheStandIn
) -> None:
    cfn.receiver.fail_next(5)  # every try of the Create's answer fails: CloudFormation stops waiting
    stack = cfn.create_stack("app", {"Web": WEB})
    assert stack.status == "ROLLBACK_COMPLETE"
    assert cfn.log[0].answer is None
    assert cfn.log[1].event["PhysicalResourceId"].startswith("app-Web-")  # the id CloudFormation made up
    assert standin.ingress_table() == []


def test_a_create_past_its_deadline_is_taken_back_by_the_rollback(
    cfn: CloudFormation, standin: ElastiCacheStandIn
) -> None:
    standin.set_latency(2.0, {"AuthorizeCacheSecurityGroupIngress"})
    cfn.budget = 1.5
    stack = cfn.create_stack("app", {"Web": WEB})
    assert stack.status == "ROLLBACK_COMPLETE"
    assert cfn.log[0].answer is not None
    assert "ran out of time" in cfn.log[0].answer.reason
    assert standin.ingress_table() == []


def test_retain_keeps_the_ingress_after_stack_delete(cfn: CloudFormation, standin: ElastiCacheStandIn) -> None:
    stack = cfn.create_stack("app", {"Web": WEB, "Other": OTHER})
    cfn.delete_stack(stack, retain=frozenset({"Other"}))
    assert stack.status == "DELETE_COMPLETE"
    assert standin.authorized() == {("other-sg", "web", "123456789012")}


def test_every_event_delivered_twice_changes_nothing(cfn: CloudFormation, standin: ElastiCacheStandIn) -> None:
    cfn.duplicate_deliveries = True
    stack = cfn.create_stack("app", {"Web": WEB})
    cfn.update_stack(stack, {"Web": WORKERS})
    assert standin.authorized() == declared(stack)
    cfn.delete_stack(stack)
    assert standin.ingress_table() == []


def test_two_stacks_declaring_one_ingress_keep_it_until_the_last_is_deleted(
    cfn: CloudFormation, standin: ElastiCacheStandIn
) -> None:
    """ElastiCache keeps no owner: the ledger counts the holders of a cache security group ingress too."""
    first = cfn.create_stack("first", {"Web": WEB})
    second = cfn.create_stack("second", {"Web": WEB})
    assert first.resources["Web"].physical_id == second.resources["Web"].physical_id
    cfn.delete_stack(second)
    assert standin.authorized() == declared(first) == {("app-cache-sg", "web", "123456789012")}
    cfn.delete_stack(first)
    assert standin.authorized() == set()
