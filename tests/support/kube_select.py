"""What kube-apiserver does to a list or watch query: label and field selectors, pagination.

Kept apart from the emulator so the grammar is testable on its own. Malformed input raises
:class:`BadRequest` (the API server's 400), never a silent "match everything".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class BadRequest(ValueError):
    """The query cannot be served as asked (HTTP 400)."""


Match = Callable[[Mapping[str, Any]], bool]

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^()]*)\)$")
_EQUALITY = re.compile(rf"^(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})$")
_EXISTS = re.compile(rf"^(?P<neg>!?)\s*(?P<key>{_KEY})$")


def _requirements(selector: str) -> list[str]:
    """Split on the commas that are not inside ``in (...)`` value sets."""
    parts: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(selector):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise BadRequest(f"unbalanced parenthesis in selector {selector!r}")
        elif char == "," and depth == 0:
            parts.append(selector[start:index])
            start = index + 1
    if depth:
        raise BadRequest(f"unbalanced parenthesis in selector {selector!r}")
    parts.append(selector[start:])
    return [part.strip() for part in parts if part.strip()]


def _label_requirement(text: str) -> Match:
    if found := _SET.match(text):
        key, values = found["key"], {v.strip() for v in found["values"].split(",") if v.strip()}
        if not values:
            raise BadRequest(f"empty value set in {text!r}")
        if found["op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if found := _EQUALITY.match(text):
        key, value = found["key"], found["value"] or ""
        if found["op"] == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if found := _EXISTS.match(text):
        key = found["key"]
        if found["neg"]:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise BadRequest(f"unable to parse requirement {text!r}")


def label_selector(selector: str | None) -> Match:
    """A predicate over an object's labels (an empty selector matches everything)."""
    checks = [_label_requirement(part) for part in _requirements(selector or "")]

    def match(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


# The field labels kube-apiserver supports: metadata.* everywhere, a few more per resource.
_FIELDS: dict[str, tuple[str, ...]] = {
    "*": ("metadata.name", "metadata.namespace"),
    "pods": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "status.phase"),
    "events": ("involvedObject.kind", "involvedObject.name", "involvedObject.namespace", "reason"),
    "secrets": ("type",),
}


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return "" if value is None else str(value)


def field_selector(selector: str | None, plural: str) -> Match:
    """A predicate over an object's supported fields (``=``, ``==``, ``!=`` only, as upstream)."""
    allowed = _FIELDS["*"] + _FIELDS.get(plural, ())
    checks: list[Match] = []
    for part in _requirements(selector or ""):
        found = re.match(r"^(?P<key>[A-Za-z.]+)\s*(?P<op>==|=|!=)\s*(?P<value>[^,]*)$", part)
        if found is None:
            raise BadRequest(f"invalid field selector {part!r}")
        key, op, value = found["key"], found["op"], found["value"]
        if key not in allowed:
            raise BadRequest(f'field label not supported: "{key}"')
        checks.append(_field_check(key, value, negate=op == "!="))
    return lambda obj: all(check(obj) for check in checks)


def _field_check(key: str, value: str, *, negate: bool) -> Match:
    def check(obj: Mapping[str, Any]) -> bool:
        return (_field(obj, key) == value) != negate

    return check


def selector_match(params: Mapping[str, str], plural: str) -> Match:
    """Both selectors of a query, combined."""
    labels = label_selector(params.get("labelSelector"))
    fields = field_selector(params.get("fieldSelector"), plural)
    return lambda obj: labels(obj) and fields(obj)


# --- pagination -------------------------------------------------------------------------------
def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def encode_continue(after: tuple[str, str], resource_version: str) -> str:
    raw = json.dumps({"after": list(after), "rv": resource_version}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str) -> tuple[tuple[str, str], str]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, name = data["after"]
        return (str(namespace), str(name)), str(data["rv"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise BadRequest(f"invalid continue token: {exc}") from None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str
    remaining: int | None


def paginate(
    items: Iterable[dict[str, Any]], params: Mapping[str, str], resource_version: str
) -> Page:
    """One page in (namespace, name) order, as etcd's key order gives it; ``limit`` absent or 0
    means everything. A continued list keeps the resourceVersion of its first page."""
    ordered: Sequence[dict[str, Any]] = sorted(items, key=_key)
    token = params.get("continue") or ""
    if token:
        after, resource_version = decode_continue(token)
        ordered = [item for item in ordered if _key(item) > after]
    try:
        limit = int(params.get("limit") or 0)
    except ValueError:
        raise BadRequest(f"invalid limit {params.get('limit')!r}") from None
    if limit < 0:
        raise BadRequest("limit must not be negative")
    if not limit or len(ordered) <= limit:
        return Page(list(ordered), resource_version, "", None)
    page = list(ordered[:limit])
    return Page(
        page,
        resource_version,
        encode_continue(_key(page[-1]), resource_version),
        len(ordered) - limit,
    )
