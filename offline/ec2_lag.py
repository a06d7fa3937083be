"""EC2's reads lagging its writes, as the EC2 front plays them: a read answers as EC2 stood ``seconds`` ago.

EC2 is eventually consistent (EC2 API Reference, "Eventual consistency in the
Amazon EC2 API"): a rule just authorized may be missing from the next
DescribeSecurityGroupRules, one just revoked may still be listed, a tag just
made or deleted may not show yet. moto answers every read with the latest
state; with a lag set, the front journals each write it forwards and bends
the reads:

- A write of rules (AuthorizeSecurityGroupIngress, RevokeSecurityGroupIngress,
  UpdateSecurityGroupRuleDescriptionsIngress, by GroupId) or of tags on rules
  (CreateTags, DeleteTags) is served with the rules it touches read from moto
  just before and just after it, one such write at a time; each rule that
  changed is journaled, with what it was and what it became.
- A read of DescribeSecurityGroupRules, DescribeSecurityGroups or DescribeTags
  goes to moto, then each rule changed within the lag is put back as it stood
  before its first change in that time: a rule made is hidden, a rule revoked
  shows again (where the read's filters would have found it: ``group-id``,
  ``security-group-rule-id``, ``tag:<key>``, ``tag-key``; for DescribeTags
  ``resource-id``, ``resource-type``, ``key``, ``value``; on the last page of a
  paged read), and its tags and description are those it had. A read naming
  a rule made within the lag (``SecurityGroupRuleIds``) answers
  ``InvalidSecurityGroupRuleId.NotFound``, as EC2 does for a rule it does not
  know yet.

Only what goes through the front is journaled: what a test makes in moto
directly shows at once. The answers are moto's own XML, edited; nothing but
moto's answers on loopback is parsed.
"""

from __future__ import annotations

import copy
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from xml.etree import ElementTree  # parses only moto's own answers, on loopback  # nosec B405

from offline.ec2_errors import not_found
from offline.front import Answer

#: A request to moto as the EC2 front forwards it: the form in, (status, XML, error code) out.
Ask = Callable[[dict[str, str]], Answer]

#: The reads that answer as EC2 stood ``seconds`` ago.
LAGGED_READS = frozenset({"DescribeSecurityGroupRules", "DescribeSecurityGroups", "DescribeTags"})
_RULE_WRITES = frozenset(
    {"AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress", "UpdateSecurityGroupRuleDescriptionsIngress"}
)
_TAG_WRITES = frozenset({"CreateTags", "DeleteTags"})
_NAMED_RULE = re.compile(r"SecurityGroupRuleId\.\d+")
#: Each kind of rule source: (its element in a SecurityGroupRule, its list in an IpPermission, the entry's key).
_SOURCES = (
    ("referencedGroupInfo", "groups", "groupId"),
    ("cidrIpv4", "ipRanges", "cidrIp"),
    ("cidrIpv6", "ipv6Ranges", "cidrIpv6"),
    ("prefixListId", "prefixListIds", "prefixListId"),
)


@dataclass(frozen=True)
class RuleChange:
    """One rule as a journaled write found it (``before``) and left it (``after``); None where it did not exist."""

    at: float
    rule_id: str
    before: ElementTree.Element | None
    after: ElementTree.Element | None


@dataclass(frozen=True)
class Lagged:
    """A rule changed within the lag: as it stood ``seconds`` ago, and as moto holds it now (None: no such rule)."""

    then: ElementTree.Element | None
    now: ElementTree.Element | None


class ReadLag:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Off (a lag of 0 seconds) until :meth:`set` says otherwise."""
        self._clock = clock
        self._lock = threading.Lock()
        # One journaled write or lagged read at a time: a read never sees a write moto made but the journal lacks.
        self._moto_lock = threading.Lock()
        self._seconds = 0.0
        self._changes: list[RuleChange] = []

    def set(self, seconds: float) -> None:
        """Reads answer as EC2 stood ``seconds`` ago, for the writes journaled from now on; 0 turns it off."""
        with self._lock:
            self._seconds = seconds
            self._changes.clear()

    def write(self, action: str, form: dict[str, str], ask: Ask) -> Answer:
        """Forward one call to moto; if it writes rules or their tags, journal each rule it changed."""
        scope = _scope(action, form)
        if not self._seconds or scope is None:
            return ask(form)
        with self._moto_lock:
            before = _rules(ask, *scope)
            answer = ask(form)
            if answer[0] == 200:
                self._journal(before, _rules(ask, *scope))
        return answer

    def read(self, action: str, form: dict[str, str], ask: Ask) -> Answer:
        """One read: moto's answer, or for a lagged read, moto's answer as it stood ``seconds`` ago."""
        if not self._seconds or action not in LAGGED_READS:
            return ask(form)
        with self._moto_lock:
            window = self._window()
            if not window:
                return ask(form)
            if action == "DescribeSecurityGroupRules":
                return _rules_read(form, ask, window)
            status, body, error = ask(form)
        if status != 200 or body is None:
            return status, body, error
        root = _parse(body)
        if action == "DescribeSecurityGroups":
            _lag_permissions(root, window)
        else:
            _lag_tags(root, _filters(form), window)
        return status, _xml(root), error

    def _journal(self, before: dict[str, ElementTree.Element], after: dict[str, ElementTree.Element]) -> None:
        at = self._clock()
        with self._lock:
            self._changes = [c for c in self._changes if c.at > at - self._seconds]
            for rule_id in sorted(before.keys() | after.keys()):
                was, became = before.get(rule_id), after.get(rule_id)
                if was is None or became is None or ElementTree.tostring(was) != ElementTree.tostring(became):
                    self._changes.append(RuleChange(at, rule_id, was, became))

    def _window(self) -> dict[str, Lagged]:
        """Each rule changed within the lag: as it stood before its first change then, and as it stands now."""
        with self._lock:
            since = self._clock() - self._seconds
            window: dict[str, Lagged] = {}
            for change in self._changes:
                if change.at > since:
                    first = window.get(change.rule_id)
                    window[change.rule_id] = Lagged(change.before if first is None else first.then, change.after)
            return window


def _scope(action: str, form: dict[str, str]) -> tuple[str, list[str]] | None:
    """The filter that finds every rule a write may change: its group's rules, or the rules it tags."""
    if action in _RULE_WRITES and form.get("GroupId"):
        return "group-id", [form["GroupId"]]
    if action in _TAG_WRITES:
        rules = [v for k, v in form.items() if re.fullmatch(r"ResourceId\.\d+", k) and v.startswith("sgr-")]
        return ("security-group-rule-id", rules) if rules else None
    return None


def _rules(ask: Ask, name: str, values: list[str]) -> dict[str, ElementTree.Element]:
    """The rules moto holds that the filter ``name`` = ``values`` finds, by id."""
    form = {"Action": "DescribeSecurityGroupRules", "Version": "2016-11-15", "Filter.1.Name": name}
    form.update({f"Filter.1.Value.{n}": value for n, value in enumerate(values, 1)})
    status, body, _ = ask(form)
    if status != 200 or body is None:
        raise RuntimeError(f"moto did not list the rules of {values}: {body}")
    return {_text(item, "securityGroupRuleId"): item for item in _items(_parse(body), "securityGroupRuleSet")}


def _rules_read(form: dict[str, str], ask: Ask, window: dict[str, Lagged]) -> Answer:
    """DescribeSecurityGroupRules as it stood: rules named by id asked of moto only if unchanged within the lag."""
    named = [v for k, v in form.items() if _NAMED_RULE.fullmatch(k)]
    unborn = [rule_id for rule_id in named if rule_id in window and window[rule_id].then is None]
    if unborn:
        return not_found(unborn[0])
    asked = {k: v for k, v in form.items() if not (_NAMED_RULE.fullmatch(k) and v in window)}
    everything_named_changed = named and not any(_NAMED_RULE.fullmatch(k) for k in asked)
    answer = (200, _empty("DescribeSecurityGroupRules", "securityGroupRuleSet"), None)
    status, body, error = answer if everything_named_changed else ask(asked)
    if status != 200 or body is None:
        return status, body, error
    root = _parse(body)
    listed = _child(root, "securityGroupRuleSet")
    for item in list(listed):
        if _text(item, "securityGroupRuleId") in window:
            listed.remove(item)
    if _find(root, "nextToken") is None:
        filters = _filters(form)
        for rule_id, lagged in window.items():
            then = lagged.then
            if then is not None and (not named or rule_id in named) and _rule_matches(then, filters):
                listed.append(copy.deepcopy(then))
    return status, _xml(root), error


def _lag_permissions(root: ElementTree.Element, window: dict[str, Lagged]) -> None:
    """DescribeSecurityGroups: each group's IpPermissions (and egress) without the rules made within the lag and
    with those revoked, each source with the description it had."""
    for group in _items(root, "securityGroupInfo"):
        group_id = _text(group, "groupId")
        for lagged in window.values():
            if lagged.now is not None and _text(lagged.now, "groupId") == group_id:
                _remove_source(group, lagged.now)
            if lagged.then is not None and _text(lagged.then, "groupId") == group_id:
                _add_source(group, lagged.then)


def _lag_tags(root: ElementTree.Element, filters: dict[str, list[str]], window: dict[str, Lagged]) -> None:
    """DescribeTags: the tags of each rule changed within the lag, as they stood."""
    listed = _child(root, "tagSet")
    for item in list(listed):
        if _text(item, "resourceId") in window:
            listed.remove(item)
    if _find(root, "nextToken") is not None:
        return
    for rule_id, lagged in window.items():
        for key, value in _tags(lagged.then).items():
            tag = {"key": key, "resourceId": rule_id, "resourceType": "security-group-rule", "value": value}
            wanted = {"resource-id": "resourceId", "resource-type": "resourceType", "key": "key", "value": "value"}
            if all(name in wanted and tag[wanted[name]] in values for name, values in filters.items()):
                _append(listed, "item", tag)


def _rule_matches(rule: ElementTree.Element, filters: dict[str, list[str]]) -> bool:
    """Whether DescribeSecurityGroupRules' ``filters`` find ``rule``; a filter not known here finds nothing."""
    tags = _tags(rule)
    for name, values in filters.items():
        if name == "group-id":
            found = _text(rule, "groupId") in values
        elif name == "security-group-rule-id":
            found = _text(rule, "securityGroupRuleId") in values
        elif name == "tag-key":
            found = any(key in values for key in tags)
        elif name.startswith("tag:"):
            found = tags.get(name[4:]) in values
        else:
            found = False
        if not found:
            return False
    return True


def _permission_of(group: ElementTree.Element, rule: ElementTree.Element, make: bool) -> ElementTree.Element | None:
    """The IpPermission of ``group`` with ``rule``'s direction, protocol and ports (made if ``make``)."""
    listed = _child(group, _direction(rule))
    shape = {name: _text(rule, name) for name in ("ipProtocol", "fromPort", "toPort")}
    if shape["ipProtocol"] == "-1":  # every protocol: a rule says ports -1, its IpPermission none
        shape.update(fromPort="", toPort="")
    for permission in listed:
        if all(_text(permission, name) == value for name, value in shape.items()):
            return permission
    if not make:
        return None
    permission = _append(listed, "item", {name: value for name, value in shape.items() if value})
    for _, list_name, _ in _SOURCES:
        _append(permission, list_name, {})
    return permission


def _source_of(rule: ElementTree.Element) -> tuple[str, str, dict[str, str]]:
    """(the IpPermission list it is in, the entry's key, the entry) for ``rule``'s source."""
    for rule_name, list_name, key in _SOURCES:
        found = _find(rule, rule_name)
        if found is None:
            continue
        if rule_name == "referencedGroupInfo":
            entry = {"userId": _text(found, "userId"), "groupId": _text(found, "groupId")}
        else:
            entry = {key: found.text or ""}
        description = _text(rule, "description")
        return list_name, key, {**({"description": description} if description else {}), **entry}
    raise ValueError(f"rule {_text(rule, 'securityGroupRuleId')} has no source")


def _remove_source(group: ElementTree.Element, rule: ElementTree.Element) -> None:
    permission = _permission_of(group, rule, make=False)
    if permission is None:
        return
    list_name, key, entry = _source_of(rule)
    sources = _child(permission, list_name)
    for item in list(sources):
        if _text(item, key) == entry[key]:
            sources.remove(item)
    if not any(len(_child(permission, name)) for _, name, _ in _SOURCES):
        _child(group, _direction(rule)).remove(permission)


def _direction(rule: ElementTree.Element) -> str:
    return "ipPermissionsEgress" if _text(rule, "isEgress") == "true" else "ipPermissions"


def _add_source(group: ElementTree.Element, rule: ElementTree.Element) -> None:
    permission = _permission_of(group, rule, make=True)
    if permission is not None:
        list_name, _, entry = _source_of(rule)
        _append(_child(permission, list_name), "item", entry)


def _tags(rule: ElementTree.Element | None) -> dict[str, str]:
    if rule is None:
        return {}
    return {_text(tag, "key"): _text(tag, "value") for tag in _items(rule, "tagSet")}


def _filters(form: dict[str, str]) -> dict[str, list[str]]:
    """The request's Filter.N.Name and Filter.N.Value.M: name -> values."""
    filters: dict[str, list[str]] = {}
    for key, name in form.items():
        number = re.fullmatch(r"Filter\.(\d+)\.Name", key)
        if number:
            prefix = f"Filter.{number.group(1)}.Value."
            filters[name] = [value for k, value in form.items() if k.startswith(prefix)]
    return filters


def _parse(body: str) -> ElementTree.Element:
    return ElementTree.fromstring(body.encode())  # noqa: S314 - moto's own answer, on loopback  # nosec B314


def _xml(root: ElementTree.Element) -> str:
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    ElementTree.register_namespace("", namespace)
    return ElementTree.tostring(root, encoding="unicode")


def _empty(action: str, listed: str) -> str:
    """A read's answer listing nothing, as moto writes one."""
    namespace = "http://ec2.amazonaws.com/doc/2016-11-15"
    return f'<{action}Response xmlns="{namespace}"><{listed}/><requestId>{uuid.uuid4()}</requestId></{action}Response>'


def _local(element: ElementTree.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def _find(parent: ElementTree.Element, name: str) -> ElementTree.Element | None:
    return next((child for child in parent if _local(child) == name), None)


def _child(parent: ElementTree.Element, name: str) -> ElementTree.Element:
    """``parent``'s element ``name``, made empty if it has none (moto leaves out an empty list at times)."""
    found = _find(parent, name)
    return found if found is not None else _append(parent, name, {})


def _items(parent: ElementTree.Element, listed: str) -> Iterator[ElementTree.Element]:
    yield from _child(parent, listed)


def _text(parent: ElementTree.Element, name: str) -> str:
    found = _find(parent, name)
    return "" if found is None else found.text or ""


def _append(parent: ElementTree.Element, name: str, children: dict[str, str]) -> ElementTree.Element:
    """A new element ``name`` at the end of ``parent``, in its namespace, holding one element per ``children``."""
    namespace = parent.tag[: parent.tag.index("}") + 1] if parent.tag.startswith("{") else ""
    made = ElementTree.SubElement(parent, namespace + name)
    for child, text in children.items():
        ElementTree.SubElement(made, namespace + child).text = text
    return made
