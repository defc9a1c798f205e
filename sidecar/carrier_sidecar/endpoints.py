"""A lean endpoint resolver for botocore: ~7 MB less resident memory per sidecar.

botocore parses its whole ``endpoints.json`` (every AWS service, ~1.2 MB of JSON, ~7 MB of
objects kept for the process's life) when it creates a client, even with an explicit endpoint
URL. The SQS client (and the STS/SSO clients that credential providers create) only read their
own entries, so the session is given a resolver over just those, taken verbatim from the
installed botocore (see ``_endpoints_data.py``). If botocore's internals ever change shape, the
session keeps its default resolver.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

SERVICES = ("sqs", "sts", "sso", "sso-oidc")

log = logging.getLogger("carrier.sqs")


def trim(endpoints: dict[str, Any]) -> dict[str, Any]:
    """``endpoints.json`` with only :data:`SERVICES` in each partition."""
    partitions = [
        {
            **partition,
            "services": {
                name: entry
                for name, entry in sorted(partition.get("services", {}).items())
                if name in SERVICES
            },
        }
        for partition in endpoints.get("partitions", [])
    ]
    return {**endpoints, "partitions": partitions}


def render(endpoints: dict[str, Any]) -> str:
    return json.dumps(trim(endpoints), separators=(",", ":"), sort_keys=True)


def install_lean_resolver(session: Any) -> None:
    """Make ``session`` build its endpoint resolver from the trimmed data (best effort)."""
    try:
        from botocore.regions import EndpointResolver

        from ._endpoints_data import ENDPOINTS_JSON

        def lean() -> EndpointResolver:
            return EndpointResolver(json.loads(ENDPOINTS_JSON), uses_builtin_data=True)

        session._internal_components.lazy_register_component("endpoint_resolver", lean)
    except Exception as exc:  # pragma: no cover - only if botocore's internals change
        log.debug("keeping botocore's default endpoint resolver", extra={"error": repr(exc)})


def _main() -> None:
    """Print the module for ``_endpoints_data.py`` from the installed botocore."""
    from botocore.loaders import create_loader

    text = render(create_loader().load_data("endpoints"))
    sys.stdout.write(
        '"""The slice of botocore\'s ``endpoints.json`` an SQS client needs (generated; do not edit).\n\n'
        "Regenerate with ``python -m carrier_sidecar.endpoints`` after bumping botocore; a test fails\n"
        'when this copy no longer matches the installed botocore.\n"""\n\n'
        f"ENDPOINTS_JSON = {text!r}\n"
    )


if __name__ == "__main__":
    _main()
