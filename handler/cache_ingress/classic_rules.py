"""EC2-Classic mode's rules, as pure functions: no AWS calls, no I/O.

A cache security group lets in EC2-Classic security groups, each named with
its owner account. The properties parse once into a frozen :class:`Ingress`,
the physical id is that ingress canonically written, and ElastiCache's error
codes are read here into :class:`~cache_ingress.outcomes.Outcome`\\ s, so
:mod:`cache_ingress.classic_lifecycle` never looks at raw strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidProperties
from .outcomes import THROTTLING_CODES, Outcome
from .properties import MAX_NAME_LENGTH, check_known, check_map, is_account_id, owner_account, required_string

KNOWN_PROPERTIES = ("CacheSecurityGroupName", "EC2SecurityGroupName", "EC2SecurityGroupOwnerId")
#: The id prefix marks ids this mode minted; anything else on Delete came
#: from crhelper (a failed Create) or from CloudFormation itself.
ID_PREFIX = "cache-sg-ingress"
ID_SEPARATOR = ":"

# Cache security group names are alphanumeric (hyphens allowed), so they never
# hold the id separator. EC2-Classic group names are any printable ASCII.
_CACHE_GROUP_NAME = re.compile(r"[A-Za-z0-9-]+")
_EC2_GROUP_NAME = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True)
class Ingress:
    """One authorization: the EC2 security group ``ec2_group`` of account ``owner_id`` may reach ``cache_group``."""

    cache_group: str
    ec2_group: str
    owner_id: str

    @property
    def physical_id(self) -> str:
        """A readable id that names exactly this ingress and decodes back with :func:`parse_physical_id`.

        The EC2 group name goes last and unescaped: the fields before it never
        hold the separator, so splitting at most three times recovers it
        exactly, whatever punctuation it has. At most 16 + 255 + 12 + 255 + 3
        characters, well inside CloudFormation's 1 KB.
        """
        return ID_SEPARATOR.join((ID_PREFIX, self.cache_group, self.owner_id, self.ec2_group))

    def api_params(self) -> dict[str, str]:
        return {
            "CacheSecurityGroupName": self.cache_group,
            "EC2SecurityGroupName": self.ec2_group,
            "EC2SecurityGroupOwnerId": self.owner_id,
        }

    def attributes(self) -> dict[str, str]:
        """The values ``Fn::GetAtt`` reads, under the property names users wrote."""
        return dict(self.api_params())


def parse_properties(given: Any, stack_id: str) -> Ingress:
    """Check ResourceProperties and return the ingress they describe.

    Raises :class:`InvalidProperties` naming the first property at fault, so
    that bad input is answered before any API call.
    """
    properties = check_map(given)
    check_known(properties, KNOWN_PROPERTIES)
    cache_group = required_string(properties, "CacheSecurityGroupName")
    if not _CACHE_GROUP_NAME.fullmatch(cache_group):
        raise InvalidProperties(
            "CacheSecurityGroupName may hold only letters, digits and hyphens "
            f"(cache security group names are alphanumeric), got {cache_group!r}"
        )
    ec2_group = required_string(properties, "EC2SecurityGroupName")
    if not _EC2_GROUP_NAME.fullmatch(ec2_group):
        raise InvalidProperties(
            "EC2SecurityGroupName may hold only printable ASCII characters "
            f"(EC2-Classic security group names), got {ec2_group!r}"
        )
    owner_id = owner_account(properties, "EC2SecurityGroupOwnerId", stack_id)
    return Ingress(cache_group=cache_group, ec2_group=ec2_group, owner_id=owner_id)


def parse_physical_id(physical_id: Any) -> Ingress | None:
    """The ingress an id of ours names, or None for an id this mode did not mint."""
    if not isinstance(physical_id, str):
        return None
    parts = physical_id.split(ID_SEPARATOR, 3)
    if len(parts) != 4 or parts[0] != ID_PREFIX:
        return None
    _, cache_group, owner_id, ec2_group = parts
    if not (
        _CACHE_GROUP_NAME.fullmatch(cache_group)
        and is_account_id(owner_id)
        and _EC2_GROUP_NAME.fullmatch(ec2_group)
        and len(cache_group) <= MAX_NAME_LENGTH
        and len(ec2_group) <= MAX_NAME_LENGTH
    ):
        return None
    return Ingress(cache_group=cache_group, ec2_group=ec2_group, owner_id=owner_id)


def left_by_failed_update(attempted: Ingress, physical_id: Any) -> Ingress | None:
    """The ingress a failed Update may have authorized behind CloudFormation's back, if this Update is its rollback.

    After an Update fails, CloudFormation keeps the old physical id and rolls
    back with an Update whose ResourceProperties are the old ones (naming that
    id) and whose OldResourceProperties are the failed ones (``attempted``).
    In every other Update, OldResourceProperties name the id CloudFormation
    holds. So when they name another ingress, the failed attempt may have
    authorized it and no Delete will ever come for it.
    """
    return None if attempted.physical_id == physical_id else attempted


# -- what ElastiCache's error codes mean --------------------------------------------------

CLASSIC_RETIRED_HINT = "Use of cache security groups is not permitted"
#: Codes meaning "not now": a change in flight, or throttling.
BUSY_CODES = THROTTLING_CODES | {"InvalidCacheSecurityGroupState"}


def authorize_outcome(code: str, message: str = "") -> Outcome:
    if code == "AuthorizationAlreadyExists":
        return Outcome.DONE
    return _common_outcome(code, message)


def revoke_outcome(code: str, message: str = "") -> Outcome:
    """Revoking something that is not there is success: a repeated Delete is harmless.

    So is revoking in an account that cannot have cache security groups at
    all: nothing can have been authorized there, and failing would leave the
    stack's rollback stuck.
    """
    if code in ("AuthorizationNotFound", "CacheSecurityGroupNotFound"):
        return Outcome.DONE
    outcome = _common_outcome(code, message)
    return Outcome.DONE if outcome is Outcome.NOT_PERMITTED else outcome


def _common_outcome(code: str, message: str) -> Outcome:
    """Busy codes are tried again while the deadline allows, so throttling alone never fails a stack operation."""
    if code in BUSY_CODES:
        return Outcome.BUSY
    if code == "InvalidParameterValue" and CLASSIC_RETIRED_HINT.lower() in message.lower():
        return Outcome.NOT_PERMITTED
    return Outcome.FAILED


def not_permitted_reason(api_message: str) -> str:
    """Names this resource's own VPC-mode properties: the fix is a change of properties, not of resource type."""
    return (
        "Cache security groups only serve EC2-Classic, which AWS retired in August 2023, and this account "
        "cannot use them. Use this resource's VPC mode, which opens the cache's VPC security groups: set "
        "ReplicationGroupId, CacheClusterId or ServerlessCacheName (the cache) and SourceSecurityGroupId "
        "(the group to let in) instead of CacheSecurityGroupName and EC2SecurityGroupName. "
        f"ElastiCache said: {api_message}"
    )
