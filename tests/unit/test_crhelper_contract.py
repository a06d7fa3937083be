"""The crhelper internals the answer depends on, checked by name against the installed crhelper.

:class:`~cache_ingress.custom_resource.CustomResource` overrides private hooks
of crhelper's CfnResource and skips its ``__init__``. An upgrade that renames a
hook would silently bypass an override (a root logger at DEBUG, a 120 s sleep
on Delete, a second answer); one that reads a new attribute would fail every
request. These tests fail with the hook's or the attribute's name instead.
"""

from __future__ import annotations

import ast
import inspect
import logging
import textwrap

import pytest
from crhelper import CfnResource

from cache_ingress.custom_resource import CustomResource

#: crhelper's own steps that still run on every request, around our overrides.
RELIED_ON = ("__call__", "_crhelper_init", "_poll_enabled", "_get_func", "_cfn_response", "_cleanup_response")
DECORATORS = ("create", "update", "delete")


def overridden() -> list[str]:
    return [name for name, value in vars(CustomResource).items() if inspect.isfunction(value)]


@pytest.mark.parametrize("hook", overridden())
def test_every_overridden_hook_still_exists_in_crhelper(hook: str) -> None:
    assert inspect.isfunction(getattr(CfnResource, hook, None)), (
        f"crhelper's CfnResource no longer has {hook}: CustomResource.{hook} overrides nothing"
    )


@pytest.mark.parametrize("step", RELIED_ON + DECORATORS)
def test_the_steps_around_the_overrides_still_exist(step: str) -> None:
    assert inspect.isfunction(getattr(CfnResource, step, None)), f"crhelper's CfnResource no longer has {step}"


def attributes_read(method: str) -> set[str]:
    """The ``self.<name>`` a CfnResource method reads that are not methods themselves."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(getattr(CfnResource, method))))
    names = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self"
    }
    return {name for name in names if not callable(getattr(CfnResource, name, None))}


@pytest.mark.parametrize("step", RELIED_ON)
def test_every_attribute_crhelper_reads_is_set_without_its_init(step: str) -> None:
    resource = CustomResource(logging.getLogger("contract"))
    missing = sorted(name for name in attributes_read(step) if not hasattr(resource, name))
    assert not missing, f"CfnResource.{step} reads {missing}, which CustomResource.__init__ does not set"


def test_the_contract_check_sees_what_crhelper_reads() -> None:
    """The AST walk finds the attributes the request flow is known to read, so an empty result cannot pass."""
    assert {"_send_response", "RequestType", "_timer"} <= attributes_read("__call__")
