"""A pure checker of the Kubernetes Pod Security Standard "restricted" profile (v1.33 rules).

Written from https://kubernetes.io/docs/concepts/security/pod-security-standards/ so the tests
can assert compliance offline. ``pod_violations`` checks a whole pod (baseline + restricted);
``container_violations`` checks one container as if the pod set nothing, which is the promise
the injector makes: its sidecar complies whatever the worker's pod says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
SAFE_SYSCTLS = {
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
SELINUX_TYPES = {
    None,
    "",
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
}
SECCOMP_OK = {"RuntimeDefault", "Localhost"}
APPARMOR_OK = {None, "RuntimeDefault", "Localhost"}


def _ctx(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def container_violations(
    container: Mapping[str, Any], pod_context: Mapping[str, Any] | None = None
) -> list[str]:
    """Rules that apply per container; pod-level fields count where the standard allows it."""
    pod = _ctx(pod_context)
    sc = _ctx(container.get("securityContext"))
    name = container.get("name", "?")
    found: list[str] = []
    if sc.get("privileged") is True:
        found.append(f"{name}: privileged")
    if _ctx(sc.get("windowsOptions")).get("hostProcess") is True:
        found.append(f"{name}: hostProcess")
    caps = _ctx(sc.get("capabilities"))
    added = set(caps.get("add") or [])
    if added - {"NET_BIND_SERVICE"}:
        found.append(f"{name}: adds capabilities {sorted(added)}")
    if "ALL" not in (caps.get("drop") or []):
        found.append(f"{name}: does not drop ALL capabilities")
    for port in container.get("ports") or []:
        if _ctx(port).get("hostPort") not in (None, 0):
            found.append(f"{name}: hostPort {port['hostPort']}")
    if sc.get("procMount") not in (None, "Default"):
        found.append(f"{name}: procMount {sc['procMount']}")
    selinux = _ctx(sc.get("seLinuxOptions"))
    if selinux.get("type") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"{name}: seLinuxOptions {dict(selinux)}")
    if _ctx(sc.get("appArmorProfile")).get("type") not in APPARMOR_OK:
        found.append(f"{name}: appArmorProfile")
    if sc.get("allowPrivilegeEscalation") is not False:
        found.append(f"{name}: allowPrivilegeEscalation is not false")
    run_as_non_root = sc.get("runAsNonRoot", pod.get("runAsNonRoot"))
    if run_as_non_root is not True:
        found.append(f"{name}: runAsNonRoot is not true")
    if sc.get("runAsUser", pod.get("runAsUser")) == 0:
        found.append(f"{name}: runAsUser 0")
    seccomp = _ctx(sc.get("seccompProfile") or pod.get("seccompProfile")).get("type")
    if seccomp not in SECCOMP_OK:
        found.append(f"{name}: seccompProfile {seccomp!r} (needs RuntimeDefault or Localhost)")
    return found


def pod_violations(pod: Mapping[str, Any]) -> list[str]:
    spec = _ctx(pod.get("spec"))
    pod_sc = _ctx(spec.get("securityContext"))
    found: list[str] = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) is True:
            found.append(f"pod: {key}")
    for volume in spec.get("volumes") or []:
        kinds = set(_ctx(volume)) - {"name"}
        if kinds - ALLOWED_VOLUMES:
            found.append(f"pod: volume {volume.get('name')} uses {sorted(kinds - ALLOWED_VOLUMES)}")
    for sysctl in pod_sc.get("sysctls") or []:
        if _ctx(sysctl).get("name") not in SAFE_SYSCTLS:
            found.append(f"pod: sysctl {sysctl.get('name')}")
    if _ctx(pod_sc.get("seccompProfile")).get("type") == "Unconfined":
        found.append("pod: seccompProfile Unconfined")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod: runAsUser 0")
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(key) or []:
            found += container_violations(container, pod_sc)
    return found
