"""The Kubernetes "restricted" Pod Security Standard, as a pure check of a pod spec.

Mirrors https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline +
restricted, current version) so tests can prove a rendered or injected pod would be admitted by
a namespace labelled ``pod-security.kubernetes.io/enforce: restricted`` without an API server.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
_RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})


def pod_spec_of(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod spec of a Pod or of a workload's pod template."""
    spec = manifest.get("spec") or {}
    if manifest.get("kind") == "Pod":
        return spec
    return (spec.get("template") or {}).get("spec") or {}


def _containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key in _CONTAINER_LISTS:
        for container in pod.get(key) or ():
            yield f"{key}[{container.get('name', '?')}]", container


def violations(pod: Mapping[str, Any]) -> list[str]:
    """Every rule of the restricted profile the pod spec breaks, one line each (empty = passes)."""
    found: list[str] = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"spec.{key} must be unset or false")
    for volume in pod.get("volumes") or ():
        kinds = set(volume) - {"name"}
        if not kinds <= _RESTRICTED_VOLUMES:
            found.append(f"volume {volume.get('name')}: type {sorted(kinds)} is not allowed")
    for sysctl in psc.get("sysctls") or ():
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            found.append(f"spec.securityContext.sysctls: {sysctl.get('name')} is not safe")
    found += _selinux("spec.securityContext", psc)
    found += _apparmor("spec.securityContext", psc)
    if psc.get("runAsUser") == 0:
        found.append("spec.securityContext.runAsUser must not be 0")
    if psc.get("seccompProfile", {}).get("type") == "Unconfined":
        found.append("spec.securityContext.seccompProfile must not be Unconfined")

    pod_non_root = psc.get("runAsNonRoot") is True
    pod_seccomp = psc.get("seccompProfile", {}).get("type") in _SECCOMP_OK
    for where, container in _containers(pod):
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"{where}: privileged must be unset or false")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or ()):
            found.append(f"{where}: capabilities.drop must include ALL")
        extra = set(caps.get("add") or ()) - {"NET_BIND_SERVICE"}
        if extra:
            found.append(f"{where}: capabilities.add {sorted(extra)} is not allowed")
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and not pod_non_root):
            found.append(f"{where}: runAsNonRoot must be true (here or on the pod)")
        if sc.get("runAsUser") == 0:
            found.append(f"{where}: runAsUser must not be 0")
        seccomp = sc.get("seccompProfile", {}).get("type")
        if seccomp == "Unconfined" or (seccomp is None and not pod_seccomp):
            found.append(f"{where}: seccompProfile must be RuntimeDefault or Localhost")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{where}: procMount must be Default")
        for port in container.get("ports") or ():
            if port.get("hostPort"):
                found.append(f"{where}: hostPort must be unset or 0")
        found += _selinux(where, sc)
        found += _apparmor(where, sc)
    return found


def _selinux(where: str, context: Mapping[str, Any]) -> list[str]:
    options = context.get("seLinuxOptions") or {}
    bad = []
    if options.get("type", "") not in _SELINUX_TYPES:
        bad.append(f"{where}: seLinuxOptions.type {options['type']!r} is not allowed")
    if options.get("user") or options.get("role"):
        bad.append(f"{where}: seLinuxOptions.user and .role must be unset")
    return bad


def _apparmor(where: str, context: Mapping[str, Any]) -> list[str]:
    kind = (context.get("appArmorProfile") or {}).get("type")
    if kind not in (None, "RuntimeDefault", "Localhost"):
        return [f"{where}: appArmorProfile must be RuntimeDefault or Localhost"]
    return []
