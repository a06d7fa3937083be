"""Every failure the resource reports, in one place.

Each class's message is the finished Reason CloudFormation shows the user, so
it says what to fix. The crhelper subclass (:mod:`cache_ingress.custom_resource`)
is the one place that turns them into a FAILED answer; anything else that
escapes becomes FAILED there too, with its type named.
"""

from __future__ import annotations


class ResourceError(Exception):
    """A failure whose message is the finished Reason CloudFormation shows the user."""


class InvalidProperties(ResourceError):
    """ResourceProperties that cannot describe a grant; the message names the property and what to fix."""


class ResourceFailure(ResourceError):
    """AWS refused, or did not settle before the deadline."""


class CacheNotFound(ResourceError):
    """The named cache does not exist in this account and region."""


class CacheUnusable(ResourceError):
    """The cache exists but lacks what the rules need; the message says which property to set."""


class Refused(ResourceFailure):
    """AWS answered a change with a refusal: that call changed nothing, and nothing of it is in flight."""


class OutOfTime(ResourceFailure):
    """A call was not started: the deadline had come, or the request had already been answered."""


class AccessRefused(ResourceFailure):
    """AWS refused a lookup for lack of permission (AccessDenied, UnauthorizedOperation): nothing was looked up."""


class LedgerUnreachable(ResourceFailure):
    """The ownership ledger (the DynamoDB table) refused or did not answer in time: nothing further was changed."""


class RuleQuotaExceeded(Refused):
    """A target security group has no room for the rules within its quota of inbound rules: nothing was changed."""
