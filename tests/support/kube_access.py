"""Who may ask the fake API what: authentication, the chart's RBAC, and a log of every request.

kube-apiserver refuses a request without known credentials (401) and, for an authenticated
user, anything its Roles and ClusterRoles do not grant (403). The fake does the same, with the
RBAC taken from the chart as ``helm template`` renders it, so an API call the operator makes
but the chart does not grant fails a test here rather than in a cluster.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.chart import helm

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()

    @classmethod
    def service_account(cls, namespace: str, name: str) -> Identity:
        return cls(
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
        )


ADMIN = Identity("kubernetes-admin", (MASTERS,))
# The chart's service account for release "carrier" in "carrier-system" (tests/chart/helm.py).
OPERATOR = Identity.service_account(helm.NAMESPACE, f"{helm.RELEASE}-operator")
ADMIN_TOKEN = "fake-kube-admin-token"
OPERATOR_TOKEN = "fake-kube-operator-token"


class Refused(Exception):
    """A request the API server answers with a Status ``code`` (401, 403)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


# --- what a request asks for ------------------------------------------------------------------
@dataclass(frozen=True)
class Attributes:
    """The RBAC view of a request (kube-apiserver's ``authorizer.Attributes``)."""

    verb: str
    path: str
    group: str | None = None  # None: a non-resource URL (discovery, /version)
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""

    @classmethod
    def of(cls, method: str, path: str, query: Mapping[str, str]) -> Attributes:
        parts = [p for p in path.split("/") if p]
        method = method.upper()
        if parts[:1] == ["api"] and len(parts) >= 3:
            group, rest = "", parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 4:
            group, rest = parts[1], parts[3:]
        else:
            return cls(verb=method.lower(), path=path)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        resource = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        subresource = "/".join(rest[2:])
        if resource == "namespaces" and name:
            namespace = name  # a namespace object lives in itself, as upstream
        watching = query.get("watch") in {"true", "1"}
        verb = {
            "GET": "watch" if watching else ("get" if name else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(method, method.lower())
        if verb in {"list", "watch"} and not name:
            wanted = _field_name(query.get("fieldSelector"))
            name = wanted or ""
        return cls(verb, path, group, resource, subresource, namespace, name)

    def describe(self) -> str:
        what = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        scope = f'in the namespace "{self.namespace}"' if self.namespace else "at the cluster scope"
        return f'cannot {self.verb} resource "{what}" in API group "{self.group}" {scope}'


def _field_name(selector: str | None) -> str | None:
    """``metadata.name=x`` narrows a list/watch to one name (what resourceNames can grant)."""
    for part in (selector or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "metadata.name" and value:
            return value.lstrip("=").strip()
    return None


# --- RBAC -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    api_groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: frozenset[str] = frozenset()

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> Rule:
        return cls(
            frozenset(rule.get("apiGroups") or ()),
            frozenset(rule.get("resources") or ()),
            frozenset(rule.get("verbs") or ()),
            frozenset(rule.get("resourceNames") or ()),
            frozenset(rule.get("nonResourceURLs") or ()),
        )

    def allows(self, request: Attributes) -> bool:
        if not ({"*", request.verb} & self.verbs):
            return False
        if request.group is None:
            return any(
                url == request.path or (url.endswith("*") and request.path.startswith(url[:-1]))
                for url in self.non_resource_urls
            )
        what = (
            f"{request.resource}/{request.subresource}" if request.subresource else request.resource
        )
        if not ({"*", request.group} & self.api_groups):
            return False
        if not ({"*", what} & self.resources):
            return False
        return not self.resource_names or request.name in self.resource_names


# Granted to every authenticated user by the default ClusterRoles (system:discovery,
# system:basic-user, system:public-info-viewer).
_DEFAULT_RULES = (
    Rule(
        frozenset(),
        frozenset(),
        frozenset({"get"}),
        non_resource_urls=frozenset(
            {
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/version",
                "/healthz",
                "/livez",
                "/readyz",
                "/openapi/*",
            }
        ),
    ),
)


def _subject_matches(subject: Mapping[str, Any], identity: Identity) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "ServiceAccount":
        return identity.user == f"system:serviceaccount:{subject.get('namespace')}:{name}"
    if kind == "User":
        return identity.user == name
    if kind == "Group":
        return name in identity.groups or name == AUTHENTICATED
    return False


@dataclass(frozen=True)
class Rbac:
    """The rules granted to each identity by a set of RBAC manifests."""

    roles: Mapping[tuple[str, str, str], tuple[Rule, ...]]  # (kind, namespace, name) -> rules
    bindings: tuple[Mapping[str, Any], ...]

    @classmethod
    def of(cls, manifests: Iterable[Mapping[str, Any]]) -> Rbac:
        roles: dict[tuple[str, str, str], tuple[Rule, ...]] = {}
        bindings: list[Mapping[str, Any]] = []
        for doc in manifests:
            kind, meta = doc.get("kind"), doc.get("metadata") or {}
            if kind in {"ClusterRole", "Role"}:
                key = (str(kind), str(meta.get("namespace") or ""), str(meta.get("name")))
                roles[key] = tuple(Rule.of(rule) for rule in doc.get("rules") or ())
            elif kind in {"ClusterRoleBinding", "RoleBinding"}:
                bindings.append(doc)
        return cls(roles, tuple(bindings))

    def allows(self, identity: Identity, request: Attributes) -> bool:
        if MASTERS in identity.groups:
            return True
        if any(rule.allows(request) for rule in _DEFAULT_RULES):
            return True
        for binding in self.bindings:
            if not any(_subject_matches(s, identity) for s in binding.get("subjects") or ()):
                continue
            meta, ref = binding.get("metadata") or {}, binding.get("roleRef") or {}
            scope = str(meta.get("namespace") or "")
            if binding.get("kind") == "RoleBinding" and scope != request.namespace:
                continue  # a RoleBinding grants only inside its own namespace
            role_ns = scope if ref.get("kind") == "Role" else ""
            rules = self.roles.get((str(ref.get("kind")), role_ns, str(ref.get("name"))), ())
            if any(rule.allows(request) for rule in rules):
                return True
        return False


@functools.lru_cache(maxsize=16)
def _chart_rbac(values_json: str) -> Rbac:
    binary = helm.helm_binary(4) or helm.helm_binary(3)
    if binary is None:
        raise RuntimeError("the fake API enforces the chart's RBAC: run `make tools` for helm")
    manifests = helm.render(binary, json.loads(values_json))
    return Rbac.of(manifests)


def chart_rbac(values: Mapping[str, Any] | None = None) -> Rbac:
    """The RBAC ``helm template`` renders for these chart values (cached per values)."""
    return _chart_rbac(json.dumps(dict(values or {}), sort_keys=True))


# --- the request log --------------------------------------------------------------------------
@dataclass
class Served:
    """One request as the API server's audit log shows it (``status`` 0 while in progress;
    a watch is 200 from the moment its stream starts)."""

    method: str
    path: str
    query: Mapping[str, str]
    verb: str
    user: str | None = None
    status: int = 0


# --- the gate ---------------------------------------------------------------------------------
@dataclass
class Access:
    """Authentication (bearer tokens, client certificates) then authorisation (RBAC)."""

    rbac: Rbac
    tokens: dict[str, Identity] = field(
        default_factory=lambda: {ADMIN_TOKEN: ADMIN, OPERATOR_TOKEN: OPERATOR}
    )
    log: list[Served] = field(default_factory=list)

    def authenticate(self, headers: Mapping[str, str], peercert: Any) -> Identity:
        """A verified client certificate first (as upstream's x509 authenticator), else a
        known bearer token; anything else is 401."""
        identity = _cert_identity(peercert) if peercert else None
        if identity is not None:
            return identity
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip() in self.tokens:
            return self.tokens[token.strip()]
        raise Refused(401, "Unauthorized", "Unauthorized")

    def authorize(self, identity: Identity, request: Attributes) -> None:
        if not self.rbac.allows(identity, request):
            what = request.resource or request.path
            raise Refused(
                403,
                "Forbidden",
                f'{what} is forbidden: User "{identity.user}" {request.describe()}',
            )


def _cert_identity(peercert: Mapping[str, Any]) -> Identity | None:
    """CN is the user, each O a group: a cert the TLS layer verified against the fake's CA."""
    user, groups = None, []
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return Identity(user, tuple(groups)) if user else None


def peer_certificate(transport: Any) -> Any:
    """The verified client certificate of a TLS connection, if any."""
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    return ssl_object.getpeercert()
