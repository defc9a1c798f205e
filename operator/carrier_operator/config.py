"""The operator's own settings (``CARRIER_OPERATOR_*``), shared by its two faces.

The reconciler and the injector read the same model, so the Helm chart sets each knob once.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from carrier_sidecar.settings import describe_error

from .binding import GROUP

# Paths the webhook server answers on: kopf serves each admission handler at "/<handler id>".
MUTATE_PODS_ID = "mutate-pods"
VALIDATE_BINDINGS_ID = "validate-carrierbindings"
INJECTED_ANNOTATION = f"{GROUP}/injected"
SIDECAR_MODE_ANNOTATION = f"{GROUP}/sidecar-mode"  # e.g. "native (all 3 nodes >= 1.29)"
SIDECAR_CONTAINER = "carrier"


class OperatorConfigError(Exception):
    """Invalid operator configuration; ``str()`` is one line."""


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CARRIER_OPERATOR_", case_sensitive=False, env_ignore_empty=True, frozen=True
    )

    namespaces: str = Field(
        "", description="Comma-separated namespaces to watch; empty watches all (cluster-wide)."
    )
    log_format: Literal["json", "plain"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    liveness_port: int = Field(8080, ge=1, le=65535, description="kopf's /healthz liveness port.")

    # --- leader election (several replicas) -----------------------------------------------
    leader_election: bool = Field(
        False,
        description="Elect one writer among replicas through a coordination.k8s.io Lease; off "
        "= this replica is the only one and always writes.",
    )
    lease_name: str = Field("carrier-operator", min_length=1, description="The Lease's name.")
    lease_namespace: str = Field(
        "", description="The Lease's namespace; empty = the service namespace (the release's)."
    )
    lease_duration: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="Seconds a follower waits, from the last renewal it "
        "saw, before it takes the Lease over.",
    )
    renew_deadline: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds a leader may fail to renew before it stops "
        "writing (must be below the lease duration).",
    )
    retry_period: float = Field(
        2.0, gt=0, le=600, description="Seconds between attempts to acquire or renew."
    )

    # --- reconciliation --------------------------------------------------------------------
    queue_check_interval: float = Field(
        60.0, gt=0, description="Seconds between queue attribute reads per binding."
    )
    queue_check: bool = Field(
        True,
        description="Read each binding's queue with the operator's own AWS identity (the "
        "QueueReachable condition); off = never (a binding can also turn it off itself).",
    )

    schedule_clock_offset_for_tests: float = Field(
        0.0,
        ge=-366 * 86400,
        le=366 * 86400,
        description="FOR TESTS ONLY: seconds added to the clock spec.schedules ticks are "
        "judged by (real time, shifted), so a test meets a tick in seconds, not minutes. "
        "Leave 0 in a cluster.",
    )

    rollout_enabled: bool = Field(
        True,
        description="rolloutOnChange may restart Deployments/StatefulSets (the chart grants "
        "patch on them only with rollout.enabled); off: a Warning event says to restart them.",
    )

    autoscaling: bool = Field(
        False,
        description="spec.autoscaling may create KEDA ScaledObjects (the chart grants the RBAC "
        "only with autoscaling.enabled); off: such bindings get Autoscaling=False "
        "AutoscalingDisabled.",
    )
    depth_endpoint: str = Field(
        "",
        description="Base URL at which KEDA reaches this operator's HTTP port for "
        "spec.autoscaling.source: operator; empty = http://<service host>:<liveness port>.",
    )

    # --- injection -------------------------------------------------------------------------
    sidecar_image: str = Field(
        "ghcr.io/carrier-k8s/carrier-sidecar:0.1.0", min_length=1, description="Default image."
    )
    sidecar_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    sidecar_cpu_request: str = "10m"
    sidecar_memory_request: str = "64Mi"
    sidecar_memory_limit: str = "128Mi"
    native_sidecar: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Inject as an initContainer with restartPolicy Always: auto = while every "
        "node's kubelet is >= 1.29.",
    )
    on_missing_binding: Literal["deny", "admit"] = Field(
        "deny",
        description="A labelled pod whose binding is missing or not Ready: deny it, or admit "
        "it without the sidecar.",
    )
    allow_remote_webhooks: bool = Field(
        False, description="Allow bindings whose webhook is not the pod's own loopback."
    )

    # --- the webhook server and its TLS ----------------------------------------------------
    webhook_port: int = Field(8443, ge=1, le=65535)
    service_name: str = Field("carrier-operator", description="Service fronting the webhooks.")
    service_namespace: str = Field("carrier-system", description="Namespace of that Service.")
    mutating_webhook_configuration: str = Field(
        "carrier-injector",
        description="MutatingWebhookConfiguration whose caBundle is kept current.",
    )
    validating_webhook_configuration: str = Field(
        "carrier-validator",
        description="ValidatingWebhookConfiguration whose caBundle is kept current.",
    )
    validate_bindings: bool = Field(
        True,
        description="The chart rendered the validating configuration (webhook.validateBindings):"
        " off, its caBundle is neither looked for nor patched.",
    )
    cert_dir: str | None = Field(
        None,
        description="Directory with tls.crt, tls.key (and ca.crt) from cert-manager; unset = "
        "self-signed, generated by the operator.",
    )
    cert_secret: str = Field(
        "carrier-operator-webhook-tls",
        description="Secret holding the self-signed CA and serving cert, shared by replicas.",
    )
    cert_validity_days: int = Field(365, ge=1, le=3650)
    cert_renew_before_days: int = Field(30, ge=1, le=3650)

    @field_validator("namespaces")
    @classmethod
    def _strip(cls, value: str) -> str:
        return ",".join(ns.strip() for ns in value.split(",") if ns.strip())

    @model_validator(mode="after")
    def _lease_timing(self) -> OperatorSettings:
        if self.leader_election and not (
            self.retry_period < self.renew_deadline < self.lease_duration
        ):
            raise ValueError(
                "CARRIER_OPERATOR_RENEW_DEADLINE: must lie between the retry period and the "
                f"lease duration (got retry {self.retry_period:g}s, renew "
                f"{self.renew_deadline:g}s, lease {self.lease_duration:g}s)"
            )
        return self

    @property
    def lease_namespace_name(self) -> str:
        return self.lease_namespace or self.service_namespace

    @property
    def namespace_list(self) -> list[str]:
        return [ns for ns in self.namespaces.split(",") if ns]

    @property
    def service_host(self) -> str:
        return f"{self.service_name}.{self.service_namespace}.svc"

    @property
    def depth_endpoint_base(self) -> str:
        return self.depth_endpoint or f"http://{self.service_host}:{self.liveness_port}"

    @classmethod
    def load(cls, **overrides: Any) -> OperatorSettings:
        """Read the environment; ``overrides`` (e.g. CLI flags) win over it."""
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise OperatorConfigError(describe_error(exc, "CARRIER_OPERATOR_")) from None
