"""moto's server on loopback: EC2 security groups and rules, and ElastiCache replication groups.

moto runs in this process, in a thread, so it starts in about a second and
leaves nothing behind. One correction is applied to it when it starts (not at
import, so that importing this module changes nothing), to match EC2 as its
API reference describes it: a rule's description is not part of what
identifies the rule (authorizing the same rule with another description is
``InvalidPermission.Duplicate``; revoking needs no description). moto
compares descriptions too, which would hide exactly the bugs this project
must not have.
"""

from __future__ import annotations

import copy
import http.client
import logging
from typing import Any

import boto3
from moto.ec2.models.security_groups import SecurityGroupRule
from moto.server import ThreadedMotoServer

_moto_equality = SecurityGroupRule.__eq__


def _without_description(rule: SecurityGroupRule) -> SecurityGroupRule:
    view = copy.copy(rule)
    if isinstance(rule.source_group, dict):
        view.source_group = {k: v for k, v in rule.source_group.items() if k != "Description"}
    return view


def _rule_identity(self: SecurityGroupRule, other: object) -> bool:
    if not isinstance(other, SecurityGroupRule):
        return False
    return bool(_moto_equality(_without_description(self), _without_description(other)))


def _correct_moto() -> None:
    """Make moto's rules equal regardless of their descriptions; doing it again changes nothing."""
    if SecurityGroupRule.__eq__ is not _rule_identity:
        SecurityGroupRule.__eq__ = _rule_identity  # type: ignore[method-assign]


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

    def ingress(self, group_id: str) -> set[tuple[str, str, int, str]]:
        """Every TCP rule from a security group into ``group_id``: (source, owner, port, description)."""
        group = self.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        return {
            (pair["GroupId"], pair.get("UserId", ""), permission["FromPort"], pair.get("Description", ""))
            for permission in group["IpPermissions"]
            if permission.get("IpProtocol") == "tcp"
            for pair in permission.get("UserIdGroupPairs", [])
        }
