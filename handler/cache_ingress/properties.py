"""Checks every mode applies to ResourceProperties: strings, account ids, unknown names.

CloudFormation sends every property value as a string; these validators turn
them into typed values once, on the way in, and raise
:class:`~cache_ingress.errors.InvalidProperties` naming the property at fault,
so that bad input is answered before any API call.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidProperties

#: Properties CloudFormation adds on its own; they carry no meaning for us.
IGNORED_PROPERTIES = frozenset({"ServiceToken", "ServiceTimeout"})
MAX_NAME_LENGTH = 255

_ACCOUNT_ID = re.compile(r"\d{12}")
_DASHED_ACCOUNT_ID = re.compile(r"\d{4}-\d{4}-\d{4}")
_ACCESS_KEY_ID = re.compile(r"(AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}")
_STACK_ARN_ACCOUNT = re.compile(r"arn:[^:]+:cloudformation:[^:]*:(\d{12}):stack/")


def check_map(properties: Any) -> Mapping[str, Any]:
    """The properties as a map; anything else is refused before any name is looked at."""
    if not isinstance(properties, Mapping):
        raise InvalidProperties(
            f"ResourceProperties must be a map of property names to strings, got {kind_of(properties)}"
        )
    return properties


def check_known(properties: Mapping[str, Any], known: tuple[str, ...]) -> None:
    """Reject properties no mode knows, suggesting the closest known name: typos fail instead of being ignored."""
    unknown = sorted(str(k) for k in properties if k not in known and k not in IGNORED_PROPERTIES)
    if unknown:
        raise InvalidProperties("; ".join(_unknown_property_message(name, known) for name in unknown))


def is_account_id(text: str) -> bool:
    return _ACCOUNT_ID.fullmatch(text) is not None


def normalize_account_id(value: Any, name: str) -> str:
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


def account_from_stack_id(stack_id: str, name: str) -> str:
    """The account that owns the stack: the default owner, as in AWS::ElastiCache::SecurityGroupIngress."""
    match = _STACK_ARN_ACCOUNT.match(stack_id) if isinstance(stack_id, str) else None
    if not match:
        raise InvalidProperties(
            f"{name} is not set and the account cannot be read from the StackId; "
            f"set {name} to the 12-digit account that owns the security group"
        )
    return match.group(1)


def owner_account(properties: Mapping[str, Any], name: str, stack_id: str) -> str:
    """The account named by property ``name``, or the stack's own when it is not set."""
    value = properties.get(name)
    return account_from_stack_id(stack_id, name) if value is None else normalize_account_id(value, name)


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
    """How a reason names a value's JSON type."""
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
