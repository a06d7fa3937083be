"""The rules of the resource, as pure functions: no AWS calls, no I/O.

Everything CloudFormation sends is checked here once, on the way in, and turned
into a frozen :class:`Ingress`; everything the resource reports back (the
physical id, the outcome of an API error) is derived here too, so the
lifecycle code never looks at raw strings.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

#: Properties CloudFormation adds on its own; they carry no meaning for us.
IGNORED_PROPERTIES = frozenset({"ServiceToken", "ServiceTimeout"})
KNOWN_PROPERTIES = ("CacheSecurityGroupName", "EC2SecurityGroupName", "EC2SecurityGroupOwnerId")

MAX_NAME_LENGTH = 255
#: The id prefix marks ids this resource minted; anything else on Delete came
#: from crhelper (a failed Create) or from CloudFormation itself.
ID_PREFIX = "cache-sg-ingress"
ID_SEPARATOR = ":"

# Cache security group names are alphanumeric (hyphens allowed), so they never
# hold the id separator. EC2-Classic group names are any printable ASCII.
_CACHE_GROUP_NAME = re.compile(r"[A-Za-z0-9-]+")
_EC2_GROUP_NAME = re.compile(r"[\x20-\x7e]+")
_ACCOUNT_ID = re.compile(r"\d{12}")
_DASHED_ACCOUNT_ID = re.compile(r"\d{4}-\d{4}-\d{4}")
_ACCESS_KEY_ID = re.compile(r"(AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}")
_STACK_ARN_ACCOUNT = re.compile(r"arn:[^:]+:cloudformation:[^:]*:(\d{12}):stack/")


class ResourceError(Exception):
    """A failure whose message is the finished Reason CloudFormation shows the user."""


class InvalidProperties(ResourceError):
    """ResourceProperties that cannot describe an ingress; the message says what to fix."""


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


def parse_properties(properties: Any, stack_id: str) -> Ingress:
    """Check ResourceProperties and return the ingress they describe.

    Raises :class:`InvalidProperties` naming the first property at fault, so
    that bad input is answered before any API call.
    """
    if not isinstance(properties, Mapping):
        raise InvalidProperties(
            f"ResourceProperties must be a map of property names to strings, got {kind_of(properties)}"
        )
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
    owner = properties.get("EC2SecurityGroupOwnerId")
    owner_id = account_from_stack_id(stack_id) if owner is None else normalize_account_id(owner)
    return Ingress(cache_group=cache_group, ec2_group=ec2_group, owner_id=owner_id)


def check_known(properties: Mapping[str, Any], known: tuple[str, ...]) -> None:
    """Reject properties no mode knows, suggesting the closest known name: typos fail instead of being ignored."""
    unknown = sorted(str(k) for k in properties if k not in known and k not in IGNORED_PROPERTIES)
    if unknown:
        raise InvalidProperties("; ".join(_unknown_property_message(name, known) for name in unknown))


def normalize_account_id(value: Any, name: str = "EC2SecurityGroupOwnerId") -> str:
    """Accept ``123456789012`` or ``1234-5678-9012`` and return the 12 digits."""
    if not isinstance(value, str):
        raise InvalidProperties(f"{name} must be a string of 12 digits, got {kind_of(value)}")
    text = value.strip()
    if _ACCOUNT_ID.fullmatch(text):
        return text
    if _DASHED_ACCOUNT_ID.fullmatch(text):
        return text.replace("-", "")
    if _ACCESS_KEY_ID.fullmatch(text):
        raise InvalidProperties(
            f"{name} must be the 12-digit AWS account number that owns the security group, not an access key id"
        )
    shown = text if len(text) <= 40 else text[:40] + "..."
    raise InvalidProperties(f"{name} must be a 12-digit AWS account number such as 123456789012, got {shown!r}")


def account_from_stack_id(stack_id: str, name: str = "EC2SecurityGroupOwnerId") -> str:
    """The account that owns the stack: the default owner, as in AWS::ElastiCache::SecurityGroupIngress."""
    match = _STACK_ARN_ACCOUNT.match(stack_id) if isinstance(stack_id, str) else None
    if not match:
        raise InvalidProperties(
            f"{name} is not set and the account cannot be read from the StackId; "
            f"set {name} to the 12-digit account that owns the security group"
        )
    return match.group(1)


def parse_physical_id(physical_id: Any) -> Ingress | None:
    """The ingress an id of ours names, or None for an id this resource did not mint."""
    if not isinstance(physical_id, str):
        return None
    parts = physical_id.split(ID_SEPARATOR, 3)
    if len(parts) != 4 or parts[0] != ID_PREFIX:
        return None
    _, cache_group, owner_id, ec2_group = parts
    if not (
        _CACHE_GROUP_NAME.fullmatch(cache_group)
        and _ACCOUNT_ID.fullmatch(owner_id)
        and _EC2_GROUP_NAME.fullmatch(ec2_group)
        and len(cache_group) <= MAX_NAME_LENGTH
        and len(ec2_group) <= MAX_NAME_LENGTH
    ):
        return None
    return Ingress(cache_group=cache_group, ec2_group=ec2_group, owner_id=owner_id)


def unrecorded_by_failed_update(attempted: Ingress, physical_id: Any) -> Ingress | None:
    """The ingress a failed Update may have authorized behind CloudFormation's back, if this Update is its rollback.

    After an Update fails, CloudFormation keeps the old physical id and rolls
    back with an Update whose ResourceProperties are the old ones (naming that
    id) and whose OldResourceProperties are the failed ones (``attempted``).
    In every other Update, OldResourceProperties name the id CloudFormation
    holds. So when they name another ingress, the failed attempt may have
    authorized it and no Delete will ever come for it.
    """
    return None if attempted.physical_id == physical_id else attempted


class Outcome(Enum):
    """What an ElastiCache error code means for the request at hand."""

    DONE = "done"  # the desired state already holds: success
    BUSY = "busy"  # the group is mid-change: wait and try again
    NOT_PERMITTED = "not-permitted"  # the account has no EC2-Classic
    FAILED = "failed"


CLASSIC_RETIRED_HINT = "Use of cache security groups is not permitted"


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


#: Throttling that outlasted botocore's own retries (ElastiCache says Throttling, EC2 RequestLimitExceeded).
THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})
#: Codes meaning "not now": a change in flight, or throttling.
BUSY_CODES = THROTTLING_CODES | {"InvalidCacheSecurityGroupState"}


def _common_outcome(code: str, message: str) -> Outcome:
    """Busy codes are tried again while the deadline allows, so throttling alone never fails a stack operation."""
    if code in BUSY_CODES:
        return Outcome.BUSY
    if code == "InvalidParameterValue" and CLASSIC_RETIRED_HINT.lower() in message.lower():
        return Outcome.NOT_PERMITTED
    return Outcome.FAILED


def not_permitted_reason(api_message: str) -> str:
    return (
        "Cache security groups only serve EC2-Classic, which AWS retired in August 2023, and this account "
        "cannot use them. Caches in a VPC are reached through VPC security groups instead "
        f"(AWS::EC2::SecurityGroupIngress on the cache's security group). ElastiCache said: {api_message}"
    )


def required_string(properties: Mapping[str, Any], name: str) -> str:
    if name not in properties:
        raise InvalidProperties(f"{name} is required")
    value = properties[name]
    if not isinstance(value, str):
        raise InvalidProperties(f"{name} must be a string, got {kind_of(value)}")
    if not value.strip():
        raise InvalidProperties(f"{name} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidProperties(f"{name} must be at most {MAX_NAME_LENGTH} characters, got {len(value)}")
    return value


def _unknown_property_message(name: str, known: tuple[str, ...]) -> str:
    shown = name if len(name) <= 60 else name[:60] + "..."
    candidates = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), candidates, n=1, cutoff=0.6)
    hint = f" (did you mean {candidates[close[0]]}?)" if close else ""
    return f"unknown property {shown!r}{hint}; known properties: {', '.join(known)}"


def kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a map"
    if value is None:
        return "null"
    return type(value).__name__
