"""moto's server on loopback: EC2 security groups and rules, ElastiCache replication groups, MemoryDB clusters,
DynamoDB tables (the ownership ledger's).

moto runs in this process, in a thread, so it starts in about a second and
leaves nothing behind. Where moto 5.2.5 differs from EC2 as the EC2 API
Reference describes it, or from DynamoDB as its Developer Guide does, it is
corrected here, when the server starts (not at
import, so that importing this module changes nothing; starting twice changes
nothing more). Each correction has a test in ``tests/offline/test_moto_corrections.py``
that fails on plain moto:

1. A rule's description is not part of what identifies the rule: authorizing
   the same rule with another description is ``InvalidPermission.Duplicate``,
   and revoking needs no description. moto compares descriptions too, which
   would hide exactly the bugs this project must not have.
2. AuthorizeSecurityGroupIngress is all or nothing: if one of the rules it
   names fails (one already exists, say), the call adds none of them and
   tags none. moto adds the rules before the failing one, with their tags,
   and then answers the error.
3. UpdateSecurityGroupRuleDescriptionsIngress answers
   ``InvalidPermission.NotFound`` for a rule (named by IpPermissions) the
   group does not have, and ``InvalidSecurityGroupRuleId.NotFound`` for an
   unknown rule id in SecurityGroupRuleDescriptions; it changes nothing
   unless every rule it names exists. moto ignores unknown rules silently,
   and ignores SecurityGroupRuleDescriptions altogether.
4. A SecurityGroupRule's Description (DescribeSecurityGroupRules, and the
   rules AuthorizeSecurityGroupIngress returns) is the rule's description
   whatever its source; moto reports it only for CIDR rules, not for rules
   from a security group, whose description DescribeSecurityGroups does show,
   and it drops the description of a rule from a prefix list altogether
   (``PrefixListIds[].Description`` is kept here, and updated by rule id).
5. AuthorizeSecurityGroupIngress answers with every rule it added
   (SecurityGroupRules, one per permission and source); moto lists only the
   rules of the last permission it was given.
6. AuthorizeSecurityGroupIngress refuses a source prefix list that does not
   exist (``InvalidPrefixListID.NotFound``) and adds nothing; moto adds a rule
   from any ``pl-`` id at all.
7. A rule's CIDR is kept as EC2 keeps it: an IPv4 range with its host bits
   masked (``10.0.0.7/24`` is ``10.0.0.0/24``), an IPv6 range in its short
   lower-case spelling, so two spellings of one range are one rule (the second
   is ``InvalidPermission.Duplicate``, and either revokes it). moto keeps every
   spelling as a rule of its own, a world where a person's rule and a
   resource's from one range could stand side by side, as in no EC2.
8. A MemoryDB cluster reports its NetworkType (``ipv4``, ``ipv6`` or
   ``dual_stack``; the MemoryDB API Reference, Cluster and CreateCluster:
   ``ipv4`` unless the CreateCluster call set another). moto ignores the
   CreateCluster parameter and reports none, so no offline cluster could be
   reached over IPv6.
9. DynamoDB's writes are atomic and isolated: a conditional write checks and
   writes as one step, and a TransactWriteItems succeeds or fails as a whole,
   serializable with every other write. moto's server serves each request in
   a thread of its own with no lock: a conditional UpdateItem checks, then
   writes, so two writers that read the same version both succeed; a
   TransactWriteItems copies each table it names and, when a condition fails,
   puts the copy back, undoing the writes other requests made meanwhile. Here
   one lock serves DynamoDB's requests one at a time, as one table of one
   account would see them (a few calls at a time: its speed does not matter).

Otherwise moto answers MemoryDB's DescribeClusters with what the function
reads (the cluster endpoint's port, the security groups, ``ClusterNotFoundFault``)
as the MemoryDB API Reference describes it.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import inspect
import ipaddress
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import boto3
from moto.core.responses import ActionResult
from moto.dynamodb.responses import DynamoHandler
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidPermissionNotFoundError,
    InvalidSecurityGroupNotFoundError,
    InvalidSecurityGroupRuleIdNotFoundError,
)
from moto.ec2.models.security_groups import SecurityGroupBackend, SecurityGroupRule
from moto.ec2.responses.security_groups import SecurityGroups
from moto.memorydb.models import MemoryDBCluster
from moto.memorydb.responses import MemoryDBResponse
from moto.server import ThreadedMotoServer

_moto_rule_init = SecurityGroupRule.__init__
_RULE_SIGNATURE = inspect.signature(_moto_rule_init)
_moto_equality = SecurityGroupRule.__eq__
_moto_rules_named = SecurityGroupBackend._iterate_security_rules
_moto_authorize_ingress = SecurityGroups.authorize_security_group_ingress
_moto_update_ingress_descriptions = SecurityGroups.update_security_group_rule_descriptions_ingress
_moto_rules_from_querystring = SecurityGroups._process_rules_from_querystring
_moto_create_memorydb_cluster = MemoryDBResponse.create_cluster
_moto_memorydb_cluster_dict = MemoryDBCluster.to_dict
_moto_dynamodb_call = DynamoHandler.call_action


def _without_description(rule: SecurityGroupRule) -> SecurityGroupRule:
    view = copy.copy(rule)
    if isinstance(rule.source_group, dict):
        view.source_group = {k: v for k, v in rule.source_group.items() if k != "Description"}
    return view


def _rule_identity(self: SecurityGroupRule, other: object) -> bool:
    if not isinstance(other, SecurityGroupRule):
        return False
    return bool(_moto_equality(_without_description(self), _without_description(other)))


# The rules moto has made (and tagged) so far for the AuthorizeSecurityGroupIngress served in this thread.
_made = threading.local()


def _rules_named(self: SecurityGroupBackend, *args: Any, **kwargs: Any) -> Iterator[SecurityGroupRule]:
    journal: list[SecurityGroupRule] | None = getattr(_made, "rules", None)
    for rule in _moto_rules_named(self, *args, **kwargs):
        if journal is not None:
            journal.append(rule)
        yield rule


def _rule_init(self: SecurityGroupRule, *args: Any, **kwargs: Any) -> None:
    """moto's rule, which also keeps the prefix list entry it was made from, description and all."""
    _moto_rule_init(self, *args, **kwargs)
    entry = _RULE_SIGNATURE.bind(self, *args, **kwargs).arguments.get("prefix_list_id")
    vars(self)["prefix_list_entry"] = dict(entry) if entry else {}


def _authorize_ingress(self: SecurityGroups) -> ActionResult:
    """moto's AuthorizeSecurityGroupIngress, whose failure takes back the rules it added, and every tag it made.

    On success it answers with all of them, not only the last permission's. A
    source prefix list must exist (correction 6).
    """
    known = self.ec2_backend.managed_prefix_lists
    for kwargs in self._process_rules_from_querystring():
        for entry in kwargs["prefix_list_ids"]:
            if entry.get("PrefixListId") not in known:
                raise EC2ClientError(
                    "InvalidPrefixListID.NotFound", f"The prefix list ID '{entry.get('PrefixListId')}' does not exist"
                )
    journal: list[SecurityGroupRule] = []
    _made.rules = journal
    try:
        _moto_authorize_ingress(self)
        return ActionResult({"Return": True, "SecurityGroupRules": journal})
    except Exception:
        for rule in journal:  # the one that failed was tagged too, though never added
            group = self.ec2_backend.get_security_group_from_id(rule.group_id)
            if group is not None:  # by identity: an equal rule may have been there before
                group.ingress_rules = [kept for kept in group.ingress_rules if kept is not rule]
            self.ec2_backend.tags.pop(rule.id, None)
        raise
    finally:
        _made.rules = None


def _update_ingress_descriptions(self: SecurityGroups) -> ActionResult:
    """moto's UpdateSecurityGroupRuleDescriptionsIngress, once every rule it names is known to exist."""
    backend = self.ec2_backend
    name_or_id = self._get_param("GroupName") or self._get_param("GroupId")
    group = backend.get_security_group_by_name_or_id(name_or_id)
    if group is None:
        raise InvalidSecurityGroupNotFoundError(name_or_id)
    by_id: list[tuple[SecurityGroupRule, str | None]] = []
    for entry in self._get_param("SecurityGroupRuleDescriptions", []):
        rule = next((r for r in group.ingress_rules if r.id == entry["SecurityGroupRuleId"]), None)
        if rule is None:
            raise InvalidSecurityGroupRuleIdNotFoundError(entry["SecurityGroupRuleId"])
        by_id.append((rule, entry.get("Description")))
    if "IpPermissions" in self._get_params():
        for kwargs in self._process_rules_from_querystring():
            named = backend._iterate_security_rules(
                kwargs["ip_protocol"],
                group.group_id,
                kwargs["from_port"],
                kwargs["to_port"],
                kwargs["ip_ranges"],
                backend._add_source_group(kwargs["source_groups"], None),
                kwargs["prefix_list_ids"],
                is_egress=False,
            )
            # Found whatever its description (correction 1): this is how a rule's description is changed.
            if any(rule not in group.ingress_rules for rule in named):
                raise InvalidPermissionNotFoundError()
    result = _moto_update_ingress_descriptions(self)  # IpPermissions; it ignores SecurityGroupRuleDescriptions
    for rule, description in by_id:
        where = rule.source_group or _prefix_list_entry(rule) or rule.ip_range
        if description is None:
            where.pop("Description", None)  # no description: the rule has none any more
        else:
            where["Description"] = description
    return result


def _rules_from_querystring(self: SecurityGroups) -> Iterator[dict[str, Any]]:
    """The rules a request names, each CIDR as EC2 keeps it (correction 7), for every call that names rules."""
    for kwargs in _moto_rules_from_querystring(self):
        kwargs["ip_ranges"] = [_as_ec2_keeps_it(ip_range) for ip_range in kwargs["ip_ranges"]]
        yield kwargs


def _as_ec2_keeps_it(ip_range: dict[str, Any]) -> dict[str, Any]:
    kept = dict(ip_range)
    for key in ("CidrIp", "CidrIpv6"):
        if isinstance(kept.get(key), str):
            with contextlib.suppress(ValueError):  # not a CIDR at all: moto's own check refuses it
                kept[key] = str(ipaddress.ip_network(kept[key], strict=False))
    return kept


def _prefix_list_entry(rule: SecurityGroupRule) -> dict[str, str]:
    entry: dict[str, str] = getattr(rule, "prefix_list_entry", {})
    return entry


def _rule_description(self: SecurityGroupRule) -> str | None:
    return (
        self.ip_range.get("Description")
        or self.source_group.get("Description")
        or _prefix_list_entry(self).get("Description")
    )


_description = property(_rule_description)


def _create_memorydb_cluster(self: MemoryDBResponse) -> ActionResult:
    """moto's CreateCluster, keeping the NetworkType asked for (correction 8)."""
    params = json.loads(self.body)
    result = _moto_create_memorydb_cluster(self)
    cluster = self.memorydb_backend.clusters.get(params.get("ClusterName"))
    if cluster is not None:
        vars(cluster)["network_type"] = params.get("NetworkType") or "ipv4"
    return result


def _memorydb_cluster_dict(self: MemoryDBCluster) -> dict[str, Any]:
    described = _moto_memorydb_cluster_dict(self)
    described["NetworkType"] = vars(self).get("network_type", "ipv4")
    return described


#: DynamoDB's requests, one at a time (correction 9).
_dynamodb_lock = threading.Lock()


def _dynamodb_call(self: DynamoHandler) -> tuple[int, dict[str, Any], str | bytes]:
    """moto's DynamoDB request, served while no other is: every check and write of it as one step."""
    with _dynamodb_lock:
        status, headers, body = _moto_dynamodb_call(self)
    return status, headers, body


def _corrections() -> list[tuple[type, str, Any]]:
    """Each correction listed at the top of this module: (moto's class, the attribute replaced, its replacement)."""
    return [
        (SecurityGroupRule, "__init__", _rule_init),
        (SecurityGroupRule, "__eq__", _rule_identity),
        (SecurityGroupRule, "description", _description),
        (SecurityGroupBackend, "_iterate_security_rules", _rules_named),
        (SecurityGroups, "authorize_security_group_ingress", _authorize_ingress),
        (SecurityGroups, "update_security_group_rule_descriptions_ingress", _update_ingress_descriptions),
        (SecurityGroups, "_process_rules_from_querystring", _rules_from_querystring),
        (MemoryDBResponse, "create_cluster", _create_memorydb_cluster),
        (MemoryDBCluster, "to_dict", _memorydb_cluster_dict),
        (DynamoHandler, "call_action", _dynamodb_call),
    ]


def _correct_moto() -> None:
    """Apply the corrections; doing it again changes nothing (each is read from the class itself first)."""
    for owner, name, replacement in _corrections():
        if vars(owner).get(name) is not replacement:
            setattr(owner, name, replacement)


class MotoBackend:
    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""
        self._clients: dict[str, Any] = {}

    def start(self) -> str:
        _correct_moto()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        self._server.stop()
        self._clients.clear()  # they point at this server's port

    def reset(self) -> None:
        """Forget everything: each test starts from an empty account."""
        host, port = self._server.get_host_and_port()
        connection = http.client.HTTPConnection(host, port, timeout=10)
        try:
            connection.request("POST", "/moto-api/reset")
            connection.getresponse().read()
        finally:
            connection.close()

    def client(self, service: str) -> Any:
        """One boto3 client per service, made on first use: making an EC2 client costs about 50 ms of CPU, and
        the stateful histories read the rules after every step."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, endpoint_url=self.url, region_name="us-east-1")
        return self._clients[service]

    def security_groups(self, *names: str) -> dict[str, str]:
        """New groups in a new VPC: name -> id."""
        ec2 = self.client("ec2")
        vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        return {
            name: ec2.create_security_group(GroupName=name, Description=f"{name} (offline)", VpcId=vpc_id)["GroupId"]
            for name in names
        }

    def prefix_list(self, name: str, cidrs: list[str]) -> str:
        """A new managed IPv4 prefix list holding ``cidrs``: its id."""
        entries = [{"Cidr": cidr} for cidr in cidrs]
        made = self.client("ec2").create_managed_prefix_list(
            PrefixListName=name, MaxEntries=max(1, len(cidrs)), AddressFamily="IPv4", Entries=entries
        )
        prefix_list_id: str = made["PrefixList"]["PrefixListId"]
        return prefix_list_id

    def _tcp_ingress(self, group_id: str) -> list[dict[str, Any]]:
        answer = self.client("ec2").describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
        return [r for r in answer["SecurityGroupRules"] if not r["IsEgress"] and r.get("IpProtocol") == "tcp"]

    def rule_tags(self, group_id: str) -> dict[tuple[str, int], dict[str, str]]:
        """The tags on each TCP rule into ``group_id``, by (source, port); the source as :func:`source_of` names it."""
        return {
            (source_of(rule), rule["FromPort"]): {t["Key"]: t["Value"] for t in rule.get("Tags", [])}
            for rule in self._tcp_ingress(group_id)
        }

    def ingress(self, group_id: str) -> set[tuple[str, str, int, str]]:
        """Every TCP rule into ``group_id``: (source, owner, port, description).

        The source as :func:`source_of` names it; the owner is the source group's account, empty for other sources.
        """
        return {
            (
                source_of(rule),
                (rule.get("ReferencedGroupInfo") or {}).get("UserId", ""),
                rule["FromPort"],
                rule.get("Description", ""),
            )
            for rule in self._tcp_ingress(group_id)
        }


def source_of(rule: dict[str, Any]) -> str:
    """A DescribeSecurityGroupRules item's source: the group id, the CIDR, or the prefix list id."""
    referenced = rule.get("ReferencedGroupInfo") or {}
    return str(referenced.get("GroupId") or rule.get("CidrIpv4") or rule.get("CidrIpv6") or rule.get("PrefixListId"))
