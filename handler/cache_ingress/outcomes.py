"""What an AWS error code means for the request at hand, shared by both modes' rules.

Each mode maps its own API's codes onto these outcomes (:mod:`cache_ingress.classic_rules`,
:mod:`cache_ingress.vpc_rules`); the lifecycles act on the outcome, never on a raw code.
"""

from __future__ import annotations

from enum import Enum


class Outcome(Enum):
    """What an error code means for the request at hand."""

    DONE = "done"  # the desired state already holds: success
    BUSY = "busy"  # not now (throttling, a change in flight): wait and try again
    NOT_PERMITTED = "not-permitted"  # the account has no EC2-Classic
    FAILED = "failed"


#: Throttling that outlasted botocore's own retries (ElastiCache says Throttling, EC2 RequestLimitExceeded,
#: DynamoDB ProvisionedThroughputExceededException or ThrottlingException).
THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "ProvisionedThroughputExceededException"}
)
