"""EC2 on loopback with faults: moto's server behind a front (:mod:`offline.front`) in EC2's own error format.

The function's EC2 client talks to this front, which answers injected faults
as EC2 does (``RequestLimitExceeded``, ``InternalError``, ``Unavailable``) and
forwards the rest to moto in the query protocol.

EC2 is eventually consistent, and moto is not; two options of the front, off
by default, play it as EC2 does:

- :meth:`Ec2Front.set_read_lag`: reads lag writes (:mod:`offline.ec2_lag`).
- :meth:`Ec2Front.not_found_for` (one group or rule) and
  :meth:`Ec2Front.new_resources_not_found_for` (every group CreateSecurityGroup
  makes and every rule AuthorizeSecurityGroupIngress makes through the
  front): for that long, a call naming it (``GroupId``, ``GroupId.N``, a
  source group ``IpPermissions.N.Groups.M.GroupId``, ``SecurityGroupRuleId.N``,
  ``SecurityGroupRuleDescription.N.SecurityGroupRuleId``, ``ResourceId.N``)
  answers ``InvalidGroup.NotFound`` or ``InvalidSecurityGroupRuleId.NotFound``
  and reaches no further, as EC2 answers for a resource made a moment ago
  (EC2 API Reference, "Eventual consistency in the Amazon EC2 API").
"""

from __future__ import annotations

import re
import threading
import time

from offline.call_log import Call
from offline.ec2_errors import error_xml, not_found
from offline.ec2_lag import LAGGED_READS, ReadLag
from offline.front import Answer, Front
from offline.query_protocol import QueryService, forward

#: The EC2 actions that change something; the rest only look.
WRITES = frozenset(
    {
        "AuthorizeSecurityGroupIngress",
        "RevokeSecurityGroupIngress",
        "UpdateSecurityGroupRuleDescriptionsIngress",
        "CreateTags",
        "DeleteTags",
    }
)
#: The parameters that name a group or a rule a call acts on or lets in.
NAMING = re.compile(
    r"GroupId(\.\d+)?|IpPermissions\.\d+\.Groups\.\d+\.GroupId|SecurityGroupRuleId\.\d+"
    r"|SecurityGroupRuleDescription\.\d+\.SecurityGroupRuleId|ResourceId\.\d+"
)


class Ec2Front(Front, QueryService):
    thread_name = "ec2-front"

    def __init__(self, upstream: str = "", region: str = "us-east-1") -> None:
        super().__init__(upstream, region)
        self.lag = ReadLag()
        self._unseen_lock = threading.Lock()
        self._unseen: dict[str, float] = {}  # id -> until when a call naming it is NotFound
        self._new_unseen_s = 0.0

    def reset(self) -> None:
        """Forget every call and fault, and turn eventual consistency off."""
        super().reset()
        self.set_read_lag(0.0)
        with self._unseen_lock:
            self._unseen.clear()
            self._new_unseen_s = 0.0

    def set_read_lag(self, seconds: float) -> None:
        """DescribeSecurityGroupRules, DescribeSecurityGroups and DescribeTags answer as EC2 stood ``seconds``
        ago, for the writes made through the front from now on; 0 (the default) turns it off."""
        self.lag.set(seconds)

    def not_found_for(self, resource_id: str, seconds: float) -> None:
        """A call naming the group or rule ``resource_id`` answers NotFound for the next ``seconds``."""
        with self._unseen_lock:
            self._unseen[resource_id] = time.monotonic() + seconds

    def new_resources_not_found_for(self, seconds: float) -> None:
        """Each group or rule made through the front from now on is NotFound for ``seconds`` (0: not at all)."""
        with self._unseen_lock:
            self._new_unseen_s = seconds

    def writes(self) -> list[Call]:
        """Every call that changes something."""
        return [c for c in self.calls() if c.action in WRITES]

    def handle(self, form: dict[str, str]) -> tuple[int, str | None]:
        action = form.get("Action", "")
        params = {k: v for k, v in form.items() if k not in ("Action", "Version")}
        return self.serve_call(action, params, lambda: self._answer(action, form))

    def _answer(self, action: str, form: dict[str, str]) -> Answer:
        """NotFound for a resource not seen yet; else moto's answer, as the read lag bends it."""
        unseen = self._unseen_named(form)
        if unseen is not None:
            return not_found(unseen)

        def ask(asked: dict[str, str]) -> Answer:
            return forward(self.upstream, "ec2", self.region, asked)

        answer = (self.lag.read if action in LAGGED_READS else self.lag.write)(action, form, ask)
        if answer[0] == 200 and answer[1] is not None and action in ("CreateSecurityGroup", *WRITES):
            self._note_made(action, answer[1])
        return answer

    def _unseen_named(self, form: dict[str, str]) -> str | None:
        now = time.monotonic()
        with self._unseen_lock:
            return next(
                (v for k, v in form.items() if NAMING.fullmatch(k) and self._unseen.get(v, 0.0) > now),
                None,
            )

    def _note_made(self, action: str, body: str) -> None:
        """With :meth:`new_resources_not_found_for` on: the group or the rules the call made are not seen yet."""
        if not self._new_unseen_s:
            return
        if action == "CreateSecurityGroup":
            made = re.findall(r"<groupId>([^<]*)</groupId>", body)
        elif action == "AuthorizeSecurityGroupIngress":
            made = re.findall(r"<securityGroupRuleId>([^<]*)</securityGroupRuleId>", body)
        else:
            return
        for resource_id in made:
            self.not_found_for(resource_id, self._new_unseen_s)

    def throttled(self, action: str) -> Answer:
        return 503, error_xml("RequestLimitExceeded", "Request limit exceeded."), "RequestLimitExceeded"

    def failed(self, status: int) -> Answer:
        code = "Unavailable" if status == 503 else "InternalError"
        return status, error_xml(code, "An internal error has occurred"), code
