"""What every mode offers, and what its operations return.

A mode (EC2-Classic, VPC) parses properties into its own request, resolves a
request into what it grants, grants (takes a hold and makes what is missing),
reasserts what is held, releases (lets go, revoking what no one else holds),
and tells what a failed Update left behind. The entry point sees modes only
through :class:`Mode`, bound to their values by :mod:`cache_ingress.modes`,
so it has one path per request type whatever the mode. The words (holder,
hold, ledger...) are in the package's glossary (:mod:`cache_ingress`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol, TypeVar

from .timing import Deadline


class Change(Enum):
    """What a request changed, for metrics and logs."""

    AUTHORIZED = "Authorizations"
    ALREADY_PRESENT = "AlreadyPresent"
    REVOKED = "Revocations"
    ALREADY_ABSENT = "AlreadyAbsent"


@dataclass(frozen=True)
class Result:
    """What an operation changed, and the attributes ``Fn::GetAtt`` reads afterwards."""

    change: Change
    data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Instance:
    """The resource instance a request comes from: its stack, its logical id, and the id CloudFormation holds for it.

    ``physical_id`` is the request's PhysicalResourceId: empty on Create, the
    old id on an Update (replacing or not), the id being deleted on Delete.
    What a mode grants is held in the name of this instance.
    """

    stack_id: str
    logical_id: str
    physical_id: str


class Grant(Protocol):
    """What a resource grants: named exactly by its physical id, described by its attributes."""

    @property
    def physical_id(self) -> str: ...

    def attributes(self) -> dict[str, str]: ...


RequestT = TypeVar("RequestT")
GrantT = TypeVar("GrantT", bound=Grant)


class Mode(Protocol[RequestT, GrantT]):
    """One mode's operations; each takes the mode's own request and grant types, keyword arguments after them."""

    def parse_properties(self, properties: Mapping[str, Any], *, stack_id: str, logical_id: str) -> RequestT:
        """The request the properties describe; raises InvalidProperties before any API call."""
        ...

    def parse_physical_id(self, physical_id: str) -> GrantT | None:
        """What an id of this mode grants; None for any other id."""
        ...

    def resolve(self, request: RequestT, *, deadline: Deadline) -> GrantT:
        """What the request grants, looking up in AWS whatever the properties leave out."""
        ...

    def grant(
        self,
        granted: GrantT,
        *,
        request: RequestT,
        instance: Instance,
        deadline: Deadline,
        undo_on_failure: bool,
        on_held: Callable[[], None],
    ) -> Result:
        """Make it so, held by ``instance``; with ``undo_on_failure``, a failure first takes back what it added.

        ``on_held`` runs once a hold is recorded, before the first change in AWS.
        """
        ...

    def reassert(self, granted: GrantT, *, request: RequestT, instance: Instance, deadline: Deadline) -> Result:
        """Make sure AWS has what ``instance`` already holds of it; take no new hold."""
        ...

    def release(self, granted: GrantT, *, instance: Instance, deadline: Deadline) -> Result:
        """Let go of what ``instance`` holds of it; what nothing else holds is revoked, what is gone counts."""
        ...

    def left_by_failed_update(
        self, attempted: RequestT, *, request: RequestT | None, physical_id: str, deadline: Deadline
    ) -> GrantT | None:
        """If this Update rolls back a failed one (``attempted``), what that one may have granted unrecorded."""
        ...

    def could_name(self, request: RequestT, granted: GrantT) -> bool:
        """Whether the request, once resolved, could grant exactly ``granted``; no API call."""
        ...

    def same_asked(self, one: RequestT, other: RequestT) -> bool:
        """Whether two requests must grant the same: they differ at most in what the grant's id does not hold."""
        ...
