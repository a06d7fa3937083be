"""The ownership ledger's DynamoDB table, made on moto's server exactly as template.yaml declares it.

The function keeps which stack owns which rule in a DynamoDB table (the
``OwnershipLedger`` resource); the offline world makes that table from the
template's own definition, read as CloudFormation reads it
(``cfnlint.decode.cfn_yaml``, as ``tests/templates`` does), so a key or index
changed in the template is the key or index the tests run against. The
properties CreateTable shares with the resource are passed as they are;
``SSESpecification`` is renamed to the API's spelling. Point-in-time recovery
and the retention policies are left out: they change nothing a call sees.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import boto3
from cfnlint.decode import cfn_yaml

TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"
RESOURCE = "OwnershipLedger"
#: The table's name offline (CloudFormation names it after the stack when deployed); the function reads
#: it from ``LEDGER_TABLE``, as it would from the template's environment variable.
LEDGER_TABLE = "cache-ingress-ledger"
#: The properties of ``AWS::DynamoDB::Table`` that CreateTable takes under the same name and shape.
_SHARED = ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "BillingMode")


@functools.cache
def table_definition() -> dict[str, Any]:
    """CreateTable's parameters but the name, from template.yaml's ``OwnershipLedger``."""
    template = cfn_yaml.load(str(TEMPLATE))
    properties: dict[str, Any] = json.loads(json.dumps(template["Resources"][RESOURCE]["Properties"]))
    definition = {key: properties[key] for key in _SHARED if key in properties}
    if "SSESpecification" in properties:
        definition["SSESpecification"] = {"Enabled": properties["SSESpecification"]["SSEEnabled"]}
    return definition


@functools.cache
def _client(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")


def create_ledger_table(endpoint: str, name: str = LEDGER_TABLE) -> None:
    """Make the ledger's table, empty, on the DynamoDB at ``endpoint`` (moto's server, which makes it at once)."""
    _client(endpoint).create_table(TableName=name, **table_definition())


def read_ledger(endpoint: str, name: str = LEDGER_TABLE) -> dict[str, dict[str, Any]]:
    """The ledger as its table holds it, for people and tests: each rule key -> its rule entry's attributes, and
    under ``held_by`` who holds it ("stack X, resource Y" each; a replacement's two ids count twice), sorted.

    Read straight from the table (a consistent scan), not through the function's code.
    """
    from boto3.dynamodb.types import TypeDeserializer

    decode = TypeDeserializer().deserialize
    view: dict[str, dict[str, Any]] = {}
    for page in _client(endpoint).get_paginator("scan").paginate(TableName=name, ConsistentRead=True):
        for raw in page["Items"]:
            item = {key: decode(value) for key, value in raw.items()}
            entry = view.setdefault(str(item["pk"]).removeprefix("rule#"), {"held_by": []})
            if item["sk"] == "rule":
                entry.update({k: v for k, v in item.items() if k not in ("pk", "sk")})
            else:
                stack = str(item["stack_id"]).split("/")[1] if "/" in str(item["stack_id"]) else item["stack_id"]
                entry["held_by"].append(f"stack {stack}, resource {item['logical_id']}")
    for entry in view.values():
        entry["held_by"].sort()
    return view
