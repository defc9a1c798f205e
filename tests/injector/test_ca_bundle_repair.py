"""GitOps and quiet operation in self-signed mode, with kopf running against the fake API:
a caBundle blanked by a sync comes back within seconds by itself, and a configuration the chart
never rendered (``webhook.validateBindings=false``) is never looked for."""

from __future__ import annotations

import base64
import logging
import time

import pytest

from tests.injector.harness import running_injector, webhook_configuration
from tests.support.kube import MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS, FakeKube
from tests.support.servers import eventually

pytestmark = pytest.mark.slow  # real servers or processes


def _bundle(kube: FakeKube, resource: str, name: str) -> str:
    obj = kube.get(resource, None, name) or {}
    return str(((obj.get("webhooks") or [{}])[0].get("clientConfig") or {}).get("caBundle", ""))


async def test_a_blanked_ca_bundle_is_repaired_within_seconds_unprompted() -> None:
    async with running_injector() as injector:
        config, kube = injector.config, injector.kube
        expected = base64.b64encode(injector.ca).decode()
        name = config.mutating_webhook_configuration
        await eventually(lambda: _bundle(kube, MUTATING_WEBHOOKS, name) == expected, 10, "set")
        # What an Argo CD sync of `helm template` output does: the chart's object, no caBundle.
        chart = webhook_configuration(name, "/mutate-pods", config)
        await kube.patch(MUTATING_WEBHOOKS, None, name, {"webhooks": chart["webhooks"]})
        assert _bundle(kube, MUTATING_WEBHOOKS, name) == ""
        blanked = time.monotonic()
        await eventually(lambda: _bundle(kube, MUTATING_WEBHOOKS, name) == expected, 10, "repair")
        assert time.monotonic() - blanked < 10  # within ~10 s, with no nudge from the test
        assert not kube.requests("PATCH", "/secrets/")  # the repair never rewrites the cert


async def test_an_unrendered_validating_configuration_is_never_looked_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="carrier_operator.cert_self_signed")
    async with running_injector(validate_bindings=False, webhook_configurations=False) as injector:
        config, kube = injector.config, injector.kube
        chart = webhook_configuration(config.mutating_webhook_configuration, "/mutate-pods", config)
        await kube.create(MUTATING_WEBHOOKS, chart)  # what the chart renders: no validator
        expected = base64.b64encode(injector.ca).decode()
        for _check in range(3):
            seen = len(kube.requests("GET", "mutatingwebhookconfigurations"))
            injector.operator.call(injector.server.check_certificate_now)
            await eventually(
                lambda n=seen: len(kube.requests("GET", "mutatingwebhookconfigurations")) > n,  # type: ignore[misc]
                10,
                "another check",
            )
        assert _bundle(kube, MUTATING_WEBHOOKS, config.mutating_webhook_configuration) == expected
        assert not kube.requests(path_part="validatingwebhookconfigurations")
        assert kube.get(VALIDATING_WEBHOOKS, None, config.validating_webhook_configuration) is None
    assert [getattr(r, "kind", "") for r in caplog.records if r.getMessage() == "caBundle set"]
    assert not [r for r in caplog.records if "validatingwebhook" in getattr(r, "kind", "")]
