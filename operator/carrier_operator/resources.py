"""The sidecar container's resources: derived from the binding's concurrency unless it says.

The memory the sidecar needs grows with what it may hold (``carrier_sidecar.sizing``, the one
home of that formula): one fixed limit for every binding OOM-kills the busy ones into a crash
loop that looks like a queue problem. So the default request and limit are the operator's
configured values raised to the binding's bound; an explicit ``spec.sidecar.resources`` wins,
with an admission warning when its memory limit is below the bound.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from carrier_sidecar.settings import Settings
from carrier_sidecar.sizing import as_mebibytes, memory_bound

from .config import OperatorSettings

_SUFFIX: dict[str, Decimal] = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))},
    "m": Decimal("0.001"),
    "": Decimal(1),
}
_QUANTITY = re.compile(
    r"^\+?(\d+(?:\.\d*)?|\.\d+)(?:[eE]([-+]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m)?)$"
)


def quantity_bytes(text: Any) -> int | None:
    """A Kubernetes memory quantity in bytes (``"64Mi"``, ``"1G"``, ``"129e6"``), or None."""
    found = _QUANTITY.match(str(text).strip())
    if not found:
        return None
    number, exponent, suffix = found.groups()
    try:
        value = Decimal(number) * (
            Decimal(10) ** int(exponent) if exponent else _SUFFIX[suffix or ""]
        )
    except InvalidOperation:
        return None
    return int(value.to_integral_value(rounding="ROUND_CEILING"))


def default_resources(settings: Settings, config: OperatorSettings) -> dict[str, Any]:
    """Requests/limits for a binding that sets none: the configured values, raised to the bound."""
    bound = memory_bound(settings)
    request = _at_least(config.sidecar_memory_request, bound)
    limit = _at_least(config.sidecar_memory_limit, bound)
    return {
        "requests": {"cpu": config.sidecar_cpu_request, "memory": request},
        "limits": {"memory": limit},
    }


def memory_warnings(resources: Mapping[str, Any], settings: Settings) -> list[str]:
    """A binding's own memory limit below the bound: the sidecar can be OOM-killed."""
    limits = resources.get("limits")
    limit = limits.get("memory") if isinstance(limits, Mapping) else None
    if limit is None:
        return []
    size = quantity_bytes(limit)
    bound = memory_bound(settings)
    if size is None or size >= bound:
        return []
    return [
        f"spec.sidecar.resources.limits.memory {limit} is below what the sidecar may need with "
        f"{settings.sqs_receivers} receiver(s) x ({settings.sqs_receiver_workers} workers + "
        f"batch {settings.sqs_batch_size}) messages of up to 1 MiB: {as_mebibytes(bound)} "
        "(docs/injector.md, memory): it can be OOM-killed and crash-loop under load"
    ]


def _at_least(configured: str, bound: int) -> str:
    size = quantity_bytes(configured)
    return configured if size is not None and size >= bound else as_mebibytes(bound)
