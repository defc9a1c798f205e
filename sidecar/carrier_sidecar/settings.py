"""Every ``CARRIER_*`` variable, once.

This model is the single source of truth: the sidecar loads it from the environment, the operator
renders a CarrierBinding into it (:meth:`Settings.from_fields`) and back out to env
(:meth:`Settings.to_env`), and the README table and the CRD schema are checked against it.
Each field's ``json_schema_extra`` says where it lives in a CarrierBinding (``binding``) and
whether the Go Carrier reads it too (``go``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .durations import format_duration, parse_duration
from .tasks import parse_task_routes

ENV_PREFIX = "CARRIER_"
SQS_MAX_VISIBILITY = 43200.0  # 12 hours, SQS's hard limit


class ConfigError(Exception):
    """Invalid configuration; ``str()`` is one line naming the variable and what is wrong."""


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
LogLevel = Literal["debug", "info", "warning", "error"]
RetryBackoff = Literal["exponential", "queue"]
WebhookFormat = Literal["raw", "cloudevents"]


def _meta(
    binding: str | None, *, go: bool = False, rendered_from: str | None = None
) -> dict[str, Any]:
    """``binding``: the setting's path in a CarrierBinding spec. ``rendered_from``: instead of a
    path of its own, the spec part the operator derives it from (``schedules``)."""
    meta: dict[str, Any] = {"binding": binding, "go": go}
    if rendered_from is not None:
        meta["rendered_from"] = rendered_from
    return meta


def injected_fields() -> frozenset[str]:
    """Settings the injector sets per pod, not from a binding (e.g. the drain token)."""
    return frozenset(
        name
        for name, info in Settings.model_fields.items()
        if isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("injected")
    )


class Settings(BaseModel):
    """The sidecar's configuration, read from ``CARRIER_*`` environment variables."""

    # A plain model, not pydantic-settings: the environment is read in one place, :meth:`load`
    # (so rendering a binding inside the operator never picks up the operator's own CARRIER_*
    # variables), and the sidecar image carries no pydantic-settings.
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        validate_default=True,
    )

    # --- the queue -------------------------------------------------------------------------
    sqs_endpoint: str | None = Field(
        None,
        description="SQS endpoint URL. Unset: resolved by AWS from the region.",
        json_schema_extra=_meta("queue.endpoint", go=True),
    )
    sqs_queue_name: str | None = Field(
        None,
        description="Queue name, resolved once with GetQueueUrl. Set this or the URL.",
        json_schema_extra=_meta("queue.name", go=True),
    )
    sqs_queue_url: str | None = Field(
        None,
        description="Full queue URL (skips GetQueueUrl). Set this or the name.",
        json_schema_extra=_meta("queue.url"),
    )
    sqs_region: str | None = Field(
        None,
        description="AWS region. Unset: the AWS chain (AWS_REGION), else taken from the queue URL.",
        json_schema_extra=_meta("queue.region"),
    )

    # --- receiving -------------------------------------------------------------------------
    sqs_batch_size: int = Field(
        1,
        ge=1,
        le=10,
        description="Messages per ReceiveMessage (1..10).",
        json_schema_extra=_meta("delivery.batchSize", go=True),
    )
    sqs_receivers: int = Field(
        1,
        ge=1,
        le=100,
        description="Concurrent long-polling receivers.",
        json_schema_extra=_meta("delivery.receivers", go=True),
    )
    sqs_receiver_workers: int = Field(
        1,
        ge=1,
        le=1000,
        description="Concurrent webhook deliveries per receiver.",
        json_schema_extra=_meta("delivery.workersPerReceiver", go=True),
    )
    sqs_visibility_timeout: Duration | None = Field(
        None,
        ge=0,
        le=SQS_MAX_VISIBILITY,
        description="Visibility timeout asked for on each receive. Unset: the queue's default.",
        json_schema_extra=_meta("delivery.visibilityTimeout"),
    )
    sqs_wait_time: Duration = Field(
        20.0,
        ge=0,
        le=20,
        description="Long-poll wait per ReceiveMessage (0..20s).",
        json_schema_extra=_meta("delivery.waitTime"),
    )
    sqs_heartbeat: bool = Field(
        True,
        description="Extend the visibility of messages whose delivery is still running.",
        json_schema_extra=_meta("delivery.heartbeat"),
    )
    retry_backoff: RetryBackoff = Field(
        "exponential",
        description=(
            "After a failed delivery: `exponential` sets the visibility to "
            "min(base x 2^(receives-1), max) with jitter; `queue` leaves it to the queue's "
            "visibility timeout (the Go Carrier's behaviour)."
        ),
        json_schema_extra=_meta("delivery.retryBackoff"),
    )
    retry_backoff_base: Duration = Field(
        1.0,
        ge=0,
        le=SQS_MAX_VISIBILITY,
        description="First retry delay for exponential backoff.",
        json_schema_extra=_meta("delivery.retryBackoffBase"),
    )
    retry_backoff_max: Duration = Field(
        900.0,
        ge=0,
        le=SQS_MAX_VISIBILITY,
        description="Longest retry delay for exponential backoff (at most 12h).",
        json_schema_extra=_meta("delivery.retryBackoffMax"),
    )
    shutdown_timeout: Duration = Field(
        25.0,
        ge=0,
        le=3600,
        description="On SIGTERM, how long in-flight deliveries may take before they are released.",
        json_schema_extra=_meta("delivery.shutdownTimeout"),
    )

    # --- the webhook -----------------------------------------------------------------------
    webhook_endpoint: str = Field(
        "http://localhost:9000",
        description="URL every message is POSTed to, exactly as given (path and query kept).",
        json_schema_extra=_meta("webhook.url", go=True),
    )
    webhook_request_timeout: Duration = Field(
        60.0,
        gt=0,
        le=SQS_MAX_VISIBILITY,
        description="Timeout of one POST.",
        json_schema_extra=_meta("webhook.requestTimeout", go=True),
    )
    webhook_default_content_type: str = Field(
        "application/json",
        min_length=1,
        description="Content-Type when the message has no `Body.ContentType` attribute.",
        json_schema_extra=_meta("webhook.defaultContentType", go=True),
    )
    webhook_format: WebhookFormat = Field(
        "raw",
        description=(
            "`raw` (default): the body and X-Carrier-* headers; `cloudevents`: also CloudEvents 1.0 "
            "binary-mode `ce-*` headers (a structured-mode body passes through unchanged)."
        ),
        json_schema_extra=_meta("webhook.format"),
    )
    webhook_tasks: str | None = Field(
        None,
        description=(
            "Task routes `name=/path,...`: a message whose `Carrier.TaskName` attribute names a "
            "task is POSTed to its path on the webhook's origin; an unlisted task nowhere."
        ),
        json_schema_extra=_meta(None, rendered_from="schedules"),
    )
    webhook_tls_insecure_skip_verify: bool = Field(
        False,
        description="Skip TLS certificate verification of an https webhook.",
        json_schema_extra=_meta("webhook.tlsInsecureSkipVerify", go=True),
    )

    webhook_ca_file: str | None = Field(
        None,
        description=(
            "PEM file of CA certificates trusted for an https webhook (and health endpoint), "
            "in addition to the system's: for a private CA."
        ),
        json_schema_extra=_meta("webhook.caFile"),
    )

    # --- the webhook health gate -----------------------------------------------------------
    webhook_health_check_endpoint: str | None = Field(
        None,
        description="If set: GET it; receive only once it answers 2xx; exit after repeated failures.",
        json_schema_extra=_meta("healthCheck.url", go=True),
    )
    webhook_health_check_interval: Duration = Field(
        60.0,
        gt=0,
        le=86400,
        description="Interval between health checks once the webhook is online.",
        json_schema_extra=_meta("healthCheck.interval", go=True),
    )
    webhook_health_check_timeout: Duration = Field(
        10.0,
        gt=0,
        le=3600,
        description="Timeout of one health check.",
        json_schema_extra=_meta("healthCheck.timeout", go=True),
    )
    webhook_offline_threshold_count: int = Field(
        5,
        ge=1,
        le=1000,
        description="Consecutive failed checks after which the sidecar releases its work and exits.",
        json_schema_extra=_meta("healthCheck.offlineThresholdCount", go=True),
    )

    # --- observability ---------------------------------------------------------------------
    enable_stat_log: bool = Field(
        False,
        description="Log a JSON line of counters and memory periodically.",
        json_schema_extra=_meta("sidecar.statLog", go=True),
    )
    stat_log_timer: Duration = Field(
        120.0,
        gt=0,
        le=86400,
        description="Interval of the stat log line.",
        json_schema_extra=_meta("sidecar.statLogInterval", go=True),
    )
    enable_colorized_logging: bool = Field(
        False,
        description="Human-readable coloured logs instead of JSON lines.",
        json_schema_extra=_meta("sidecar.colorizedLogging", go=True),
    )
    log_level: LogLevel = Field(
        "info",
        description="debug, info, warning or error.",
        json_schema_extra=_meta("sidecar.logLevel"),
    )
    http_addr: str = Field(
        ":9102",
        description="Address of /healthz, /readyz and /metrics (`host:port` or `:port`, which is IPv6 and IPv4); `none` turns it off.",
        json_schema_extra=_meta("sidecar.httpAddr"),
    )
    drain_token: str | None = Field(
        None,
        min_length=16,
        repr=False,
        description=(
            "Enables `GET /drain` on the HTTP address for callers sending it in the "
            "`X-Carrier-Drain-Token` header. Set per pod by the injector (not a binding field)."
        ),
        json_schema_extra={**_meta(None), "injected": True},
    )

    # --- validation ------------------------------------------------------------------------
    @field_validator("log_level", "retry_backoff", "webhook_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator(
        "webhook_endpoint", "webhook_health_check_endpoint", "sqs_endpoint", "sqs_queue_url"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_http_url(value)
        return value

    @field_validator("sqs_queue_name")
    @classmethod
    def _queue_name(cls, value: str | None) -> str | None:
        if value is not None and not _QUEUE_NAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a queue name (1-80 letters, digits, - or _, optional .fifo)"
            )
        return value

    @field_validator("webhook_tasks")
    @classmethod
    def _tasks(cls, value: str | None) -> str | None:
        if value is not None:
            parse_task_routes(value)
        return value

    @field_validator("http_addr")
    @classmethod
    def _addr(cls, value: str) -> str:
        parse_addr(value)
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> Settings:
        if self.sqs_queue_name is None and self.sqs_queue_url is None:
            raise ValueError(
                f"{env_name('sqs_queue_name')}: set the queue name "
                f"(or {env_name('sqs_queue_url')}); neither is set"
            )
        if self.sqs_queue_name is not None and self.sqs_queue_url is not None:
            raise ValueError(
                f"{env_name('sqs_queue_url')}: set either it or {env_name('sqs_queue_name')}, not both"
            )
        if self.retry_backoff_base > self.retry_backoff_max:
            raise ValueError(
                f"{env_name('retry_backoff_base')}: must not exceed "
                f"{env_name('retry_backoff_max')} ({format_duration(self.retry_backoff_max)})"
            )
        return self

    # --- derived ---------------------------------------------------------------------------
    @property
    def queue_label(self) -> str:
        """The queue as a person would name it in a log line."""
        return self.sqs_queue_name or str(self.sqs_queue_url)

    @property
    def is_fifo(self) -> bool:
        name = self.sqs_queue_name or urlsplit(str(self.sqs_queue_url)).path.rstrip("/")
        return name.endswith(".fifo")

    @property
    def in_flight_limit(self) -> int:
        return self.sqs_receivers * self.sqs_receiver_workers

    @property
    def task_routes(self) -> dict[str, str]:
        """Task name → path on the webhook's origin (empty: no task is routed anywhere)."""
        return parse_task_routes(self.webhook_tasks) if self.webhook_tasks else {}

    @property
    def http_bind(self) -> tuple[str, int] | None:
        return parse_addr(self.http_addr)

    # --- loading and rendering -------------------------------------------------------------
    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment (or ``environ``); raise :class:`ConfigError` with one line."""
        try:
            return cls.from_fields(_fields_from_env(os.environ if environ is None else environ))
        except ValidationError as exc:
            raise ConfigError(describe_error(exc)) from None

    @classmethod
    def from_fields(cls, values: Mapping[str, Any]) -> Settings:
        """Validate field values directly, never reading the process environment."""
        return cls.model_validate(dict(values))

    def to_env(self, *, include_defaults: bool = False) -> dict[str, str]:
        """Render as ``CARRIER_*`` variables: those explicitly set, or all with ``include_defaults``."""
        names = type(self).model_fields if include_defaults else self.model_fields_set
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            if name not in names:
                continue
            value = getattr(self, name)
            if value is not None:
                env[env_name(name)] = render_value(name, value)
        return env


_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,75}(\.fifo)?|[A-Za-z0-9_-]{1,80}")


def _is_duration(annotation: Any, metadata: list[Any]) -> bool:
    if any(isinstance(m, BeforeValidator) and m.func is _duration for m in metadata):
        return True
    return any(
        _is_duration(arg, list(getattr(arg, "__metadata__", ()))) for arg in get_args(annotation)
    )


_DURATION_FIELDS = frozenset(
    name
    for name, info in Settings.model_fields.items()
    if _is_duration(info.annotation, info.metadata)
)


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def env_names() -> Iterator[tuple[str, str]]:
    """(field, variable) for every setting, in declaration order."""
    for name in Settings.model_fields:
        yield name, env_name(name)


def render_value(field: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if field in _DURATION_FIELDS:
        return format_duration(float(value))
    return str(value)


def parse_addr(value: str) -> tuple[str, int] | None:
    """``:9102`` → ("", 9102): every address family (:mod:`.listen`); ``[::1]:80`` → ("::1", 80);
    ``none`` → None."""
    text = value.strip()
    if text.lower() in {"none", "off", "false", "disabled"}:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{value!r} is not host:port, :port or none")
    return host.strip("[]"), int(port_text)


def _check_http_url(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    try:
        _ = parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} has an invalid port") from exc


def _fields_from_env(environ: Mapping[str, str]) -> dict[str, str]:
    known = {env: field for field, env in env_names()}
    values: dict[str, str] = {}
    for key, value in environ.items():
        field = known.get(key.upper())
        if field is not None and value != "":
            values[field] = value
    return values


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``CARRIER_*`` names that no setting reads: most likely typos worth a warning."""
    known = {env for _, env in env_names()}
    return sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def first_error(exc: ValidationError) -> tuple[str | None, str, Any]:
    """(field, message, input) of the first error; field is None for a cross-field rule, whose
    message already names what it is about. Shared by every one-line error in the project."""
    err = exc.errors(include_url=False)[0]
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    loc = err.get("loc") or ()
    return (str(loc[0]) if loc else None), message, err.get("input")


def describe_error(exc: ValidationError, prefix: str = ENV_PREFIX) -> str:
    """The first error as one line: ``CARRIER_X: what is wrong (got 'value')``."""
    field, message, given = first_error(exc)
    if field is None:
        return message
    variable = prefix + field.upper()
    if (
        isinstance(given, str | int | float)
        and not isinstance(given, bool)
        and repr(str(given)) not in message
    ):
        return f"{variable}: {lower_first(message)} (got {str(given)!r})"
    return f"{variable}: {lower_first(message)}"


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
