"""The CarrierBinding CRD, generated from the sidecar's :class:`Settings` (one source of truth).

Every settings leaf of ``spec`` — its type, default, bounds, enum and description — comes from
the field that declares its ``binding`` path; only the pod-level keys (``binding.POD_KEYS``),
the loopback shorthands (``webhook.port/path``, ``healthCheck.port/path``) and the status are
written here. ``crds/carrierbinding.yaml`` is this module's output, and a test keeps them equal::

    python -m carrier_operator.crd > crds/carrierbinding.yaml
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic.fields import FieldInfo

from carrier_sidecar.durations import format_duration
from carrier_sidecar.settings import Settings, env_name, render_value
from carrier_sidecar.tasks import TASK_NAME

from . import autoscaling
from .binding import GROUP, KIND, PLURAL, VERSION, binding_paths
from .schedules import MACROS, MAX_BODY, MAX_SCHEDULES

# Go durations ("1m30s", "500ms") or plain seconds ("90", "1.5"), as the sidecar parses them.
DURATION_PATTERN = (
    r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)$|^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$"
)
URL_PATTERN = r"^https?://[^/?#\s]+([/?#]\S*)?$"
# Fields whose default stays out of the schema: a cross-field rule needs to see whether the user
# set them (webhook.url vs webhook.port), or the field is newer than stored bindings, which the
# API server would otherwise default on read into a new rendered env and a rollout of every pod
# on upgrade (webhook.format).
NO_SCHEMA_DEFAULT = frozenset({"webhook.url", "webhook.format"})
SECTION_DOCS = {
    "queue": "The SQS queue to deliver from: its name or URL, region and optional endpoint.",
    "webhook": "Where each message is POSTed: a port and path on the pod's own loopback, or a URL.",
    "delivery": "How messages are received, delivered, retried and drained.",
    "healthCheck": "Optional health gate: a path (and port) on the pod's loopback, or a URL.",
    "sidecar": "The injected sidecar container: image, resources, logging and extra env.",
}


def is_duration(name: str) -> bool:
    """Whether a setting is a duration (it renders seconds in Go syntax)."""
    return render_value(name, 1.0) == format_duration(1.0)


def _base_annotation(info: FieldInfo) -> Any:
    annotation = info.annotation
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        annotation = args[0]
    while get_origin(annotation) is typing.Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def bounds(info: FieldInfo) -> dict[str, Any]:
    """OpenAPI bounds from the field's constraints (ge/le/gt/lt, min_length)."""
    found: dict[str, Any] = {}
    for item in info.metadata:
        if getattr(item, "ge", None) is not None:
            found["minimum"] = item.ge
        if getattr(item, "gt", None) is not None:
            found["minimum"] = item.gt
            found["exclusiveMinimum"] = True
        if getattr(item, "le", None) is not None:
            found["maximum"] = item.le
        if getattr(item, "lt", None) is not None:
            found["maximum"] = item.lt
            found["exclusiveMaximum"] = True
        if getattr(item, "min_length", None) is not None:
            found["minLength"] = item.min_length
    return {key: _number(value) for key, value in found.items()}


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def setting_schema(path: str, name: str) -> dict[str, Any]:
    """The OpenAPI schema of one settings leaf."""
    info = Settings.model_fields[name]
    description = f"{info.description or ''} ({env_name(name)})".strip()
    schema: dict[str, Any] = {"description": description}
    limits = bounds(info)
    annotation = _base_annotation(info)
    if is_duration(name):
        # controller-gen's int-or-string shape: type-only branches; `pattern` applies to the
        # string form, `minimum`/`maximum` to the integer form (JSON Schema ignores the rest).
        schema["x-kubernetes-int-or-string"] = True
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        schema["pattern"] = DURATION_PATTERN
        schema.update(limits)
        schema["description"] = (
            f"{info.description} A Go duration (60s, 1m30s, 500ms) or whole seconds. "
            f"({env_name(name)})"
        )
    elif get_origin(annotation) is Literal:
        schema["type"] = "string"
        schema["enum"] = list(get_args(annotation))
    elif annotation is bool:
        schema["type"] = "boolean"
    elif annotation is int:
        schema["type"] = "integer"
        schema.update(limits)
    else:
        schema["type"] = "string"
        schema.update(limits)
        if name.endswith(("_endpoint", "_url")):
            schema["pattern"] = URL_PATTERN
    default = info.default
    if default is not None and path not in NO_SCHEMA_DEFAULT:
        schema["default"] = format_duration(float(default)) if is_duration(name) else default
    return schema


def _port(description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": 65535, "description": description}


def _quantities() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
        },
    }


def _extra_leaves() -> dict[str, dict[str, Any]]:
    """Leaves that are not settings: loopback shorthands and the pod-level keys (POD_KEYS)."""
    return {
        "webhook.port": _port("The worker's port on the pod's loopback (127.0.0.1)."),
        "webhook.path": {
            "type": "string",
            "pattern": "^/",
            "description": "Path on that port (default /). Needs webhook.port.",
        },
        "healthCheck.port": _port("Port of the health check (default: webhook.port)."),
        "healthCheck.path": {
            "type": "string",
            "pattern": "^/",
            "description": "Health check path on the pod's loopback.",
        },
        "sidecar.image": {
            "type": "string",
            "minLength": 1,
            "description": "Sidecar image (default: the operator's CARRIER_OPERATOR_SIDECAR_IMAGE).",
        },
        "sidecar.resources": {
            "type": "object",
            "description": "Sidecar container resources (default: the operator's).",
            "properties": {"limits": _quantities(), "requests": _quantities()},
        },
        "sidecar.env": {
            "type": "array",
            "description": "Extra env for the sidecar container (e.g. AWS_*). CARRIER_* names "
            "are refused: each setting has its own field in this spec.",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "maxItems": 64,
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "value": {"type": "string"},
                    "valueFrom": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                        "description": "As in a container's env (secretKeyRef, ...).",
                    },
                },
                "x-kubernetes-validations": [
                    {
                        "rule": "!(has(self.value) && has(self.valueFrom))",
                        "message": "set value or valueFrom, not both",
                    }
                ],
            },
        },
        "rolloutOnChange": {
            "type": "boolean",
            "default": False,
            "description": "Restart the Deployments/StatefulSets whose pod template carries this "
            "binding's label when the rendered sidecar changes.",
        },
        "schedules": _schedules_schema(),
        "queueCheck": {
            "type": "boolean",
            "default": True,
            "description": "Let the operator read this queue with its own AWS identity (the "
            "QueueReachable condition). Turn off for a queue only the workload's role can read; "
            "pods are admitted either way.",
        },
    }


# A path segment that is not "." or ".." (RE2 has no lookahead): the sidecar's path rule, but
# for escapes (%2e, %2f...), which the validating webhook refuses.
_CHAR = "[A-Za-z0-9._~!$&'()*+;=:@%-]"
_NON_DOT = "[A-Za-z0-9_~!$&'()*+;=:@%-]"
_SEGMENT = f"({_NON_DOT}{_CHAR}*|\\.{_NON_DOT}{_CHAR}*|\\.\\.{_CHAR}+)"
TASK_PATH_PATTERN = f"^/({_SEGMENT}(/{_SEGMENT})*/?)?$"
TASK_NAME_PATTERN = f"^{TASK_NAME.pattern}$"  # the sidecar's own rule for task names
CRON_PATTERN = f"^(@({'|'.join(sorted(m[1:] for m in MACROS))})|\\S+( +\\S+){{4}})$"


def _schedules_schema() -> dict[str, Any]:
    """``spec.schedules``: what a schema can say; croniter and zoneinfo decide the rest in the
    validating webhook (``schedules.py``), with the same one-line messages."""
    return {
        "type": "array",
        "description": "Periodic tasks: the operator's leader sends one SQS message per tick "
        "to this binding's queue (attributes Carrier.TaskName and Carrier.ScheduledTime), and "
        "the sidecar POSTs it to the task's path (CARRIER_WEBHOOK_TASKS).",
        "maxItems": MAX_SCHEDULES,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name", "schedule", "path"],
            "properties": {
                "name": {
                    "type": "string",
                    "pattern": TASK_NAME_PATTERN,
                    "description": "The task's name, unique in the binding: the message's "
                    "Carrier.TaskName.",
                },
                "schedule": {
                    "type": "string",
                    "maxLength": 256,
                    "pattern": CRON_PATTERN,
                    "description": "5-field cron (minute hour day-of-month month day-of-week) "
                    "or a macro (@hourly, @daily, ...).",
                },
                "timeZone": {
                    "type": "string",
                    "maxLength": 64,
                    "pattern": "^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$",
                    "description": "IANA time zone the schedule is read in (default UTC).",
                },
                "path": {
                    "type": "string",
                    "maxLength": 1024,
                    "pattern": TASK_PATH_PATTERN,
                    "description": "Absolute path on the webhook's origin the task is POSTed "
                    "to: no scheme, host, query, '.' or '..' segment.",
                },
                "body": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_BODY,
                    "description": "The message body (default {} as application/json).",
                },
                "contentType": {
                    "type": "string",
                    "maxLength": 256,
                    "pattern": "^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*"
                    "(;[ -~]*)?$",
                    "description": "Content-Type the task is POSTed with (Body.ContentType).",
                },
                "startingDeadlineSeconds": {
                    "type": "integer",
                    "format": "int64",
                    "minimum": 1,
                    "description": "A tick later than this (the operator was down) is not "
                    "sent; unset: the latest missed tick is sent, however late.",
                },
                "suspend": {
                    "type": "boolean",
                    "description": "No ticks are sent while true.",
                },
            },
        },
    }


SECTION_RULES: dict[str, list[dict[str, str]]] = {
    "queue": [
        {
            "rule": "has(self.name) != has(self.url)",
            "message": "set exactly one of queue.name and queue.url",
        }
    ],
    "webhook": [
        {
            "rule": "!(has(self.port) && has(self.url))",
            "message": "set webhook.port (with path) or webhook.url, not both",
        },
        {"rule": "!has(self.path) || has(self.port)", "message": "webhook.path needs webhook.port"},
    ],
    "healthCheck": [
        {
            "rule": "!(has(self.path) && has(self.url))",
            "message": "set healthCheck.path (and port) or healthCheck.url, not both",
        },
        {
            "rule": "!has(self.port) || has(self.path)",
            "message": "healthCheck.port needs healthCheck.path",
        },
    ],
}


AUTOSCALING_DOCS = {
    "minReplicas": "Fewest replicas; 0 scales the workload to zero while the queue is idle.",
    "maxReplicas": "Most replicas.",
    "messagesPerReplica": "Messages one replica should have: KEDA aims at depth / this.",
    "activationMessages": "Depth above which a workload at zero replicas is woken.",
    "pollingSeconds": "Seconds between KEDA's depth reads (KEDA's pollingInterval).",
    "cooldownSeconds": "Seconds of an idle queue before scaling to minReplicas 0 "
    "(KEDA's cooldownPeriod).",
}


def autoscaling_schema() -> dict[str, Any]:
    """``spec.autoscaling``: names, defaults and bounds from :mod:`.autoscaling`; the rules
    across fields as CEL (the validating webhook applies the same, :func:`autoscaling_problems`)."""
    props: dict[str, Any] = {
        "target": {
            "type": "object",
            "description": "The workload to scale, in the binding's namespace.",
            "required": ["name"],
            "properties": {
                "kind": {
                    "type": "string",
                    "enum": list(autoscaling.TARGET_KINDS),
                    "default": autoscaling.TARGET_KINDS[0],
                },
                "name": {"type": "string", "minLength": 1},
            },
        },
    }
    for name, (default, low, high) in autoscaling.INTEGERS.items():
        leaf: dict[str, Any] = {
            "type": "integer",
            "format": "int32",
            "minimum": low,
            "maximum": high,
            "description": AUTOSCALING_DOCS[name],
        }
        if default is not None:
            leaf["default"] = default
        props[name] = leaf
    props["includeInFlight"] = {
        "type": "boolean",
        "default": True,
        "description": "Count messages in flight (received, not yet deleted) as depth.",
    }
    props["source"] = {
        "type": "string",
        "enum": list(autoscaling.SOURCES),
        "default": autoscaling.SOURCES[0],
        "description": "Who reads the depth: sqs = KEDA's aws-sqs-queue scaler with KEDA's AWS "
        "identity; operator = KEDA's metrics-api scaler on the operator's depth endpoint.",
    }
    props["podIdentity"] = {
        "type": "object",
        "description": "source sqs: KEDA authenticates with its AWS pod identity (the operator "
        "makes the TriggerAuthentication).",
        "required": ["provider"],
        "properties": {
            "provider": {"type": "string", "enum": list(autoscaling.POD_IDENTITY_PROVIDERS)},
            "roleArn": {"type": "string", "pattern": "^arn:"},
            "identityOwner": {"type": "string", "enum": list(autoscaling.IDENTITY_OWNERS)},
        },
        "x-kubernetes-validations": [
            {
                "rule": "!(has(self.roleArn) && has(self.identityOwner))",
                "message": "set podIdentity.roleArn or podIdentity.identityOwner, not both",
            }
        ],
    }
    props["authenticationRef"] = {
        "type": "object",
        "description": "source sqs: a KEDA TriggerAuthentication of this namespace to use.",
        "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1}},
    }
    return {
        "type": "object",
        "description": "Scale the target on the queue's depth with a KEDA ScaledObject the "
        "operator owns.",
        "required": list(autoscaling.REQUIRED),
        "properties": props,
        "x-kubernetes-validations": [
            {
                "rule": "self.minReplicas <= self.maxReplicas",
                "message": "autoscaling.minReplicas must not exceed autoscaling.maxReplicas",
            },
            {
                "rule": "self.source == 'operator' ? !has(self.podIdentity) && "
                "!has(self.authenticationRef) : has(self.podIdentity) != "
                "has(self.authenticationRef)",
                "message": "source sqs needs exactly one of autoscaling.podIdentity and "
                "autoscaling.authenticationRef; source operator takes neither",
            },
        ],
    }


def spec_schema() -> dict[str, Any]:
    leaves = {path: setting_schema(path, name) for path, name in binding_paths().items()}
    leaves.update(_extra_leaves())
    properties: dict[str, Any] = {}
    for path, schema in leaves.items():
        section, _, leaf = path.partition(".")
        if not leaf:
            properties[section] = schema
            continue
        node = properties.setdefault(
            section,
            {"type": "object", "description": SECTION_DOCS.get(section, ""), "properties": {}},
        )
        node["properties"][leaf] = schema
    for section, rules in SECTION_RULES.items():
        properties[section]["x-kubernetes-validations"] = rules
    for section in ("delivery", "healthCheck", "sidecar", "webhook"):
        properties[section]["default"] = {}  # so the leaves' defaults apply
    properties["autoscaling"] = autoscaling_schema()
    return {
        "type": "object",
        "description": "A queue, the webhook its messages go to, and how: pods opt in with the "
        f"label {GROUP}/binding=<name>.",
        "required": ["queue"],
        "properties": properties,
    }


def _condition() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
            "observedGeneration": {"type": "integer", "format": "int64"},
        },
    }


def status_schema() -> dict[str, Any]:
    count = {"type": "integer", "format": "int64", "minimum": 0}
    return {
        "type": "object",
        "description": "Written by the operator.",
        "properties": {
            "observedGeneration": {"type": "integer", "format": "int64"},
            "conditions": {
                "type": "array",
                "description": "Valid (the spec is accepted: the admission gate), "
                "QueueReachable (the operator's own read of the queue), Ready (valid and, "
                "unless the check is off, reachable) and, with spec.autoscaling, Autoscaling.",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
                "items": _condition(),
            },
            "queue": {"type": "string", "description": "The queue's name or URL, as given."},
            "queueUrl": {"type": "string", "description": "The URL the queue resolved to."},
            "webhook": {"type": "string", "description": "The webhook, as given."},
            "queueDepth": {
                "type": "object",
                "description": "Approximate message counts at lastChecked.",
                "properties": {"visible": count, "inFlight": count, "delayed": count},
            },
            "boundPods": {**count, "description": "Live pods labelled with this binding."},
            "boundPodNames": {
                "type": "array",
                "description": "Up to 20 of them, sorted.",
                "items": {"type": "string"},
            },
            "lastChecked": {"type": "string", "format": "date-time"},
            "settingsHash": {
                "type": "string",
                "description": "Digest of the rendered CARRIER_* env.",
            },
            "sidecarHash": {
                "type": "string",
                "description": "Digest of the whole sidecar (env, extra env, image, resources): "
                "what rolloutOnChange compares.",
            },
            "renderedEnvCount": {**count, "description": "CARRIER_* variables rendered."},
            "autoscaling": {
                "type": "object",
                "description": "The KEDA ScaledObject the operator owns for spec.autoscaling, and "
                "the replicas the workload has and KEDA's HPA wants.",
                "properties": {
                    "scaledObject": {"type": "string"},
                    "currentReplicas": count,
                    "desiredReplicas": count,
                },
            },
            "schedules": _schedules_status_schema(),
            "deadLetter": dead_letter_schema(),
        },
    }


def _schedules_status_schema() -> dict[str, Any]:
    when = {"type": "string", "format": "date-time"}
    return {
        "type": "array",
        "description": "Per spec.schedules entry, written by the leader's scheduler.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "lastScheduleTime": {
                    **when,
                    "description": "The last tick claimed for sending (claimed before the "
                    "send, so a failover never sends it twice).",
                },
                "nextScheduleTime": {**when, "description": "The next tick (absent: suspended)."},
                "lastResult": {
                    "type": "object",
                    "properties": {
                        "outcome": {"type": "string", "enum": ["Sent", "Failed", "Missed"]},
                        "tick": when,
                        "reason": {"type": "string"},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    }


def dead_letter_schema() -> dict[str, Any]:
    """``status.deadLetter``: the queue's redrive policy and its dead-letter queue's depth."""
    count = {"type": "integer", "format": "int64", "minimum": 0}
    return {
        "type": "object",
        "description": "The queue's dead-letter queue, from its RedrivePolicy, at lastChecked. "
        "reason NoRedrivePolicy: the queue has none.",
        "properties": {
            "reason": {
                "type": "string",
                "description": "DeadLetterQueueRead, NoRedrivePolicy, DeadLetterAccessDenied, "
                "DeadLetterQueueNotFound or DeadLetterQueueError.",
            },
            "message": {"type": "string"},
            "arn": {"type": "string", "description": "The policy's deadLetterTargetArn."},
            "maxReceiveCount": {**count, "description": "Receives before a message moves."},
            "messages": {**count, "description": "Messages in it (visible, in flight, delayed)."},
        },
    }


PRINTER_COLUMNS = [
    {"name": "Queue", "type": "string", "jsonPath": ".status.queue"},
    {"name": "Webhook", "type": "string", "jsonPath": ".status.webhook"},
    {
        "name": "Valid",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Valid")].status',
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Pods", "type": "integer", "jsonPath": ".status.boundPods"},
    {"name": "Depth", "type": "integer", "jsonPath": ".status.queueDepth.visible"},
    {"name": "DLQ", "type": "integer", "jsonPath": ".status.deadLetter.messages"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {
        "name": "ScaledObject",
        "type": "string",
        "priority": 1,
        "jsonPath": ".status.autoscaling.scaledObject",
    },
    {
        "name": "Replicas",
        "type": "integer",
        "priority": 1,
        "jsonPath": ".status.autoscaling.currentReplicas",
    },
    {
        "name": "Desired",
        "type": "integer",
        "priority": 1,
        "jsonPath": ".status.autoscaling.desiredReplicas",
    },
]


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["cb"],
                "categories": ["carrier"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "Deliver an SQS queue's messages to a webhook in the "
                            "pods that opt in.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# Generated by `python -m carrier_operator.crd` from the sidecar's settings model.\n"


def render_yaml() -> str:
    import yaml

    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, allow_unicode=True, width=100)


if __name__ == "__main__":
    sys.stdout.write(render_yaml())
