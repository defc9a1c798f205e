"""Per-install choices, each against its own running injector: admit-without-sidecar, an API
server too old for native sidecars, a server version learnt from ``/version``, and the binding
lookup before kopf's index is filled (one API GET, still the pod's own namespace only)."""

from __future__ import annotations

from typing import Any

from carrier_operator import admission
from carrier_operator.config import SIDECAR_CONTAINER
from tests.injector.conftest import assert_valid_pod, containers, patched
from tests.injector.harness import ready_binding, replicaset_pod, running_injector
from tests.support.kube import BINDINGS
from tests.support.servers import eventually


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


async def test_old_api_server_gets_a_regular_container() -> None:
    async with running_injector(
        bindings=[ready_binding("team-a", "orders")], server_version=(1, 28)
    ) as injector:
        pod = replicaset_pod("orders")
        answer = await injector.mutate(pod, namespace="team-a")
        result = patched(pod, answer.patch)
        assert_valid_pod(result)
        assert list(containers(result)) == ["worker", SIDECAR_CONTAINER]
        assert "initContainers" not in result["spec"]


async def test_server_version_is_read_from_the_api_at_start() -> None:
    # kmock answers /version with 1.26: auto mode must then inject a regular container.
    async with running_injector(
        bindings=[ready_binding("team-a", "orders")], server_version=None
    ) as injector:
        assert admission._injector is not None
        assert admission._injector.server_version == (1, 26)
        assert injector.kube.requests("GET", "/version")
        answer = await injector.mutate(replicaset_pod("orders"), namespace="team-a")
        assert all(op["path"] != "/spec/initContainers" for op in answer.patch)


async def test_before_the_index_is_filled_the_api_answers_for_the_pods_namespace() -> None:
    async with running_injector() as injector:  # no bindings yet: the index never reported
        lookup = admission._injector.lookup if admission._injector else None
        assert lookup is not None
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
