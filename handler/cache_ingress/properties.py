"""Checks every mode applies to ResourceProperties: strings, numbers, account ids, unknown names.

CloudFormation sends every property value as a string; these validators turn
them into typed values once, on the way in, and raise
:class:`~cache_ingress.errors.InvalidProperties` naming the property at fault,
so that bad input is answered before any API call.

Numbers (``Port``, the owner account ids, ``ServiceTimeout``) are ASCII digits
only: Python's ``str.isdigit`` and the regular expression digit class also take ``²``, fullwidth
and Arabic-Indic digits, which AWS does not. A hand-written event may give a
number as a JSON number; every numeric property accepts that (as its decimal
digits) and every other property refuses it, by the same rule. Reasons name
the JSON type of a value of the wrong type ("got a number"), never Python's.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from .errors import InvalidProperties

#: Properties CloudFormation adds on its own: no part of the grant (ServiceTimeout bounds the deadline).
IGNORED_PROPERTIES = frozenset({"ServiceToken", "ServiceTimeout"})
MAX_NAME_LENGTH = 255
#: CloudFormation's bounds on ServiceTimeout, in seconds.
SERVICE_TIMEOUT_RANGE = (1, 3600)

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
_DASHED_ACCOUNT_ID = re.compile(r"[0-9]{4}-[0-9]{4}-[0-9]{4}")
_ACCESS_KEY_ID = re.compile(r"(AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,}")
_STACK_ARN_NAME = re.compile(r"arn:[^:]+:cloudformation:[^:]*:[0-9]{12}:stack/([^/]+)/")
_STACK_ARN_ACCOUNT = re.compile(r"arn:[^:]+:cloudformation:[^:]*:([0-9]{12}):stack/")
_DIGITS = re.compile(r"[0-9]+")


def check_map(properties: Any) -> Mapping[str, Any]:
    """The properties as a map; anything else is refused before any name is looked at."""
    if not isinstance(properties, Mapping):
        raise InvalidProperties(
            f"ResourceProperties must be a map of property names to strings, got {kind_of(properties)}"
        )
    return properties


def check_known(properties: Mapping[str, Any], known: tuple[str, ...]) -> None:
    """Reject properties no mode knows, suggesting the closest known name: typos fail instead of being ignored.

    Also checks CloudFormation's own ServiceTimeout, which both modes share.
    """
    unknown = [str(k) for k in properties if k not in known and k not in IGNORED_PROPERTIES]
    # Likely typos first: their suggestion is the useful part of the reason.
    unknown.sort(key=lambda name: (_closest(name, known) is None, name))
    if unknown:
        each = "; ".join(_unknown_property_message(name, known) for name in unknown[:MAX_UNKNOWN_SHOWN])
        more = f"; and {len(unknown) - MAX_UNKNOWN_SHOWN} more" if len(unknown) > MAX_UNKNOWN_SHOWN else ""
        raise InvalidProperties(f"{each}{more}. Known properties: {', '.join(known)}")
    check_service_timeout(properties)


#: An unknown-property reason names at most this many; the reason must fit CloudFormation's answer.
MAX_UNKNOWN_SHOWN = 5


def check_service_timeout(properties: Mapping[str, Any]) -> int | None:
    """ServiceTimeout, when set: whole seconds from 1 to 3600, as CloudFormation itself requires."""
    if "ServiceTimeout" not in properties:
        return None
    low, high = SERVICE_TIMEOUT_RANGE
    text = digits(properties["ServiceTimeout"], "ServiceTimeout", f"a number of seconds from {low} to {high}")
    if len(text) > 4 or not low <= int(text) <= high:
        raise InvalidProperties(f"ServiceTimeout must be a number of seconds from {low} to {high}, got {shown(text)}")
    return int(text)


def service_timeout_of(event: Mapping[str, Any]) -> int | None:
    """ServiceTimeout wherever the event carries it: in ResourceProperties, else at the event's top level.

    CloudFormation sends it among the properties; an event may also carry it
    beside them. When both are there, ResourceProperties' wins and the other is
    not looked at. Raises :class:`InvalidProperties` for a bad one.
    """
    properties = event.get("ResourceProperties")
    if isinstance(properties, Mapping) and "ServiceTimeout" in properties:
        return check_service_timeout(properties)
    return check_service_timeout(event)


def digits(value: Any, name: str, wanted: str) -> str:
    """A numeric property's ASCII digits: from a string (spaces around it ignored) or a JSON integer.

    Anything else is refused naming ``name`` and saying it should be ``wanted``.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not isinstance(value, str):
        raise InvalidProperties(f"{name} must be {wanted}, got {kind_of(value)}")
    text = value.strip()
    if not _DIGITS.fullmatch(text):
        raise InvalidProperties(f"{name} must be {wanted} in the digits 0-9, got {shown(value)}")
    return text


def shown(value: str, limit: int = 40) -> str:
    """A value as a reason quotes it: repr, and cut when long."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def is_account_id(text: str) -> bool:
    return _ACCOUNT_ID.fullmatch(text) is not None


def normalize_account_id(value: Any, name: str) -> str:
    """Accept ``123456789012`` or ``1234-5678-9012`` (or the JSON number 123456789012) and return the 12 digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidProperties(f"{name} must be a 12-digit AWS account number, got {kind_of(value)}")
    text = value.strip()
    if _ACCOUNT_ID.fullmatch(text):
        return text
    if _DASHED_ACCOUNT_ID.fullmatch(text):
        return text.replace("-", "")
    if _ACCESS_KEY_ID.fullmatch(text):
        raise InvalidProperties(
            f"{name} must be the 12-digit AWS account number that owns the security group, not an access key id"
        )
    raise InvalidProperties(
        f"{name} must be a 12-digit AWS account number such as 123456789012 (digits 0-9), got {shown(text)}"
    )


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
    text = name if len(name) <= 60 else name[:60] + "..."
    close = _closest(name, known)
    hint = f" (did you mean {close}?)" if close else ""
    return f"unknown property {text!r}{hint}"


def _closest(name: str, known: tuple[str, ...]) -> str | None:
    candidates = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), candidates, n=1, cutoff=0.6)
    return candidates[close[0]] if close else None


def kind_of(value: Any) -> str:
    """How a reason names a value's JSON type."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a map"
    if value is None:
        return "null"
    return "a value that is not JSON"


def stack_name(stack_id: Any) -> str | None:
    """The stack's name, read from its StackId (an ARN); None if it is not one."""
    match = _STACK_ARN_NAME.match(stack_id) if isinstance(stack_id, str) else None
    return match.group(1) if match else None
