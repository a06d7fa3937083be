"""The one switch between the modes: from properties, and from a physical id.

The properties choose the mode: ``CacheSecurityGroupName`` and friends for an
EC2-Classic cache security group, a cache name (``ReplicationGroupId``,
``CacheClusterId``, ``ServerlessCacheName`` or ``MemoryDBClusterName``) for EC2
ingress rules on the security groups of a cache in a VPC. The physical id says which mode minted
it. What comes out is a :class:`Request` or a :class:`Granted`: a mode's value
bound to that mode, so the caller never asks which mode it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic

from . import classic_rules, vpc_rules
from .classic_rules import Ingress
from .errors import InvalidProperties
from .properties import check_known, check_map
from .protocol import GrantT, Instance, Mode, RequestT, Result
from .timing import Deadline
from .vpc_rules import RuleSet, VpcRequest

#: Every property either mode knows, for the unknown-property reason.
ALL_PROPERTIES = (*classic_rules.KNOWN_PROPERTIES, *vpc_rules.KNOWN_PROPERTIES)


@dataclass(frozen=True)
class Granted(Generic[RequestT, GrantT]):
    """What a mode grants, with the mode that grants and revokes it."""

    mode: Mode[RequestT, GrantT]
    value: GrantT

    @property
    def physical_id(self) -> str:
        return self.value.physical_id

    def attributes(self) -> dict[str, str]:
        return self.value.attributes()

    def grant(
        self,
        *,
        request: Request[RequestT, GrantT],
        instance: Instance,
        deadline: Deadline,
        undo_on_failure: bool,
        on_held: Callable[[], None] = lambda: None,
    ) -> Result:
        return self.mode.grant(
            self.value,
            request=request.value,
            instance=instance,
            deadline=deadline,
            undo_on_failure=undo_on_failure,
            on_held=on_held,
        )

    def reassert(self, *, request: Request[RequestT, GrantT], instance: Instance, deadline: Deadline) -> Result:
        return self.mode.reassert(self.value, request=request.value, instance=instance, deadline=deadline)

    def release(self, *, instance: Instance, deadline: Deadline) -> Result:
        return self.mode.release(self.value, instance=instance, deadline=deadline)


@dataclass(frozen=True)
class Request(Generic[RequestT, GrantT]):
    """What the properties ask of a mode."""

    mode: Mode[RequestT, GrantT]
    value: RequestT

    def resolve(self, *, deadline: Deadline) -> Granted[RequestT, GrantT]:
        return Granted(self.mode, self.mode.resolve(self.value, deadline=deadline))

    def left_by_failed_update(
        self, *, now: Request[Any, Any], physical_id: str, deadline: Deadline
    ) -> Granted[RequestT, GrantT] | None:
        """Taking this request as the failed attempt, what it may have granted that ``now``'s id does not name.

        ``now`` of another mode (a rollback across modes) asks for nothing this mode could share.
        """
        asked = now.value if now.mode is self.mode else None
        left = self.mode.left_by_failed_update(self.value, request=asked, physical_id=physical_id, deadline=deadline)
        return None if left is None else Granted(self.mode, left)

    def could_name(self, granted: Granted[Any, Any]) -> bool:
        """Whether this request, once resolved, could grant exactly ``granted`` (of the same mode); no API call."""
        return granted.mode is self.mode and self.mode.could_name(self.value, granted.value)

    def same_asked(self, other: Request[Any, Any]) -> bool:
        """Whether the two requests must grant the same."""
        return other.mode is self.mode and self.mode.same_asked(self.value, other.value)


@dataclass(frozen=True)
class Modes:
    """Both modes, made with their clients; the only place that chooses between them."""

    classic: Mode[Ingress, Ingress]
    vpc: Mode[VpcRequest, RuleSet]

    def request(self, properties: Any, *, stack_id: str, logical_id: str) -> Request[Any, Any]:
        """The request the properties describe, in the mode they choose; raises InvalidProperties."""
        mode: Mode[Any, Any] = self.vpc if vpc_mode(properties) else self.classic
        return Request(mode, mode.parse_properties(properties, stack_id=stack_id, logical_id=logical_id))

    def granted(self, physical_id: str) -> Granted[Any, Any] | None:
        """What an id of ours grants, in the mode that minted it; None for an id no mode minted."""
        for mode in (self.classic, self.vpc):
            value = mode.parse_physical_id(physical_id)
            if value is not None:
                return Granted(mode, value)
        return None


def vpc_mode(properties: Any) -> bool:
    """VPC mode when any VPC-only property is set, EC2-Classic otherwise; raises for properties of neither or both."""
    check_known(check_map(properties), ALL_PROPERTIES)
    vpc = [name for name in vpc_rules.KNOWN_PROPERTIES if name in properties]
    classic = [name for name in classic_rules.KNOWN_PROPERTIES if name in properties]
    if vpc and classic:
        raise InvalidProperties(
            f"{', '.join(classic)} (EC2-Classic cache security groups) cannot be mixed with "
            f"{', '.join(vpc)} (a cache in a VPC): a resource is one or the other. Name a cache security group "
            f"with CacheSecurityGroupName, or a VPC cache with one of {', '.join(vpc_rules.CACHE_PROPERTIES)}"
        )
    return bool(vpc)
