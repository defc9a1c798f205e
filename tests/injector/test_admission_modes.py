"""Per-install choices, each against its own running injector: admit-without-sidecar, and the
binding lookup before kopf's index is filled (one API GET, still the pod's own namespace only).
The native-sidecar decision from the nodes is in ``test_sidecar_mode.py``."""

from __future__ import annotations

from typing import Any

import pytest

from carrier_operator import admission
from tests.injector.harness import ready_binding, replicaset_pod, running_injector
from tests.support.kube import BINDINGS
from tests.support.servers import eventually

pytestmark = pytest.mark.slow  # real servers or processes


async def test_admit_mode_lets_the_pod_through_without_the_sidecar_and_warns() -> None:
    async with running_injector(
        bindings=[ready_binding("team-a", "orders")], on_missing_binding="admit"
    ) as injector:
        answer = await injector.mutate(replicaset_pod("nope"), namespace="team-a")
        assert answer.allowed
        assert answer.patch == []
        assert answer.response["warnings"] == [
            'CarrierBinding "nope" not found in namespace "team-a": '
            "admitted without the Carrier sidecar"
        ]
        # A good binding is still injected in this mode.
        assert (await injector.mutate(replicaset_pod("orders"), namespace="team-a")).patch


async def test_before_the_index_is_filled_the_api_answers_for_the_pods_namespace() -> None:
    async with running_injector() as injector:  # no bindings yet: the index never reported
        found = admission.injector_of(injector.operator.memo)
        assert found is not None
        lookup = found.lookup
        assert not lookup.synced
        answer = await injector.mutate(replicaset_pod("orders"), namespace="team-a")
        assert not answer.allowed
        assert answer.message == 'CarrierBinding "orders" not found in namespace "team-a"'
        gets: list[Any] = injector.kube.requests("GET", "/carrierbindings/orders")
        assert [r.url.path for r in gets] == [
            "/apis/carrier.amplify.security/v1alpha1/namespaces/team-a/carrierbindings/orders"
        ]
        assert lookup.api_lookups == 1
        # Once a binding exists, kopf reports it and the index takes over (no more GETs).
        await injector.kube.create(BINDINGS, ready_binding("team-a", "orders"))
        await eventually(lambda: lookup.synced, 10, "kopf's index")
        answer = await injector.mutate(replicaset_pod("orders"), namespace="team-a")
        assert answer.allowed
        assert answer.patch
        assert lookup.api_lookups == 1
