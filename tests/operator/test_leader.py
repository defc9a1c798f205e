"""Lease leader election (``leader.py``) against the fake API over HTTP, with controlled clocks:
client-go's rules — expiry by the candidate's own clock from the last change it saw, one winner
per resourceVersion, a leader that cannot renew stops writing, a release hands over at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from carrier_operator.kubeapi import KubeAPI
from carrier_operator.leader import LeaderElector, NotLeader, fence
from tests.support.kube import LEASES, FakeKube, fake_kube
from tests.support.operators import LEASE_NAME

NAMESPACE = "carrier-system"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fake_kube(
        namespaces=("default", NAMESPACE), chart_values={"replicaCount": 2}
    ) as api:
        yield api


@pytest.fixture
async def api(kube: FakeKube) -> AsyncIterator[KubeAPI]:
    client = await KubeAPI.from_environment()  # the kubeconfig fake_kube wrote
    try:
        yield client
    finally:
        await client.close()


def _elector(api: KubeAPI, identity: str, clock: Callable[[], float]) -> LeaderElector:
    return LeaderElector(
        api,
        namespace=NAMESPACE,
        name=LEASE_NAME,
        identity=identity,
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
        clock=clock,
    )


def _holder(kube: FakeKube) -> str | None:
    spec = (kube.get(LEASES, NAMESPACE, LEASE_NAME) or {}).get("spec") or {}
    holder = spec.get("holderIdentity")
    return str(holder) if holder else None


async def test_a_lease_is_taken_only_after_it_expires_on_the_candidates_clock(
    kube: FakeKube, api: KubeAPI
) -> None:
    clock_a, clock_b = Clock(), Clock()
    clock_b.now = 5_000_000.0  # another node's clock, far off: never compared with a's
    a, b = _elector(api, "a", clock_a), _elector(api, "b", clock_b)
    assert await a.try_acquire_or_renew()
    assert a.is_leader()
    assert _holder(kube) == "a"
    assert not await b.try_acquire_or_renew(), "held and fresh"
    clock_b.now += 14.9
    assert not await b.try_acquire_or_renew(), "not expired yet on b's clock"
    clock_a.now += 5
    assert await a.try_acquire_or_renew(), "a renews"
    assert not await b.try_acquire_or_renew(), "b sees the record change (its clock: +14.9)"
    clock_b.now += 14.9
    assert not await b.try_acquire_or_renew(), "b's wait restarted from the renewal it saw"
    clock_a.now += 10  # a cannot renew (it is "partitioned") for its renew deadline
    assert not a.is_leader(), "a stops writing on its own, before b may take over"
    with pytest.raises(NotLeader):
        fence(a)
    clock_b.now += 0.2
    assert await b.try_acquire_or_renew(), "15 s after the last change b saw"
    lease = (kube.get(LEASES, NAMESPACE, LEASE_NAME) or {})["spec"]
    assert (lease["holderIdentity"], lease["leaseTransitions"]) == ("b", 1)
    assert not await a.try_acquire_or_renew(), "a finds b holding it"
    assert (a.is_leader(), b.is_leader()) == (False, True)


async def test_two_candidates_racing_for_an_expired_lease_produce_one_leader(
    kube: FakeKube, api: KubeAPI
) -> None:
    old = _elector(api, "old", Clock())
    assert await old.try_acquire_or_renew()
    clocks = [Clock(), Clock(), Clock()]
    candidates = [_elector(api, name, clock) for name, clock in zip("xyz", clocks, strict=True)]
    for candidate in candidates:  # each sees the record once...
        assert not await candidate.try_acquire_or_renew()
    for clock in clocks:  # ...and then nothing changes for a lease duration
        clock.now += 16
    won = await asyncio.gather(*(c.try_acquire_or_renew() for c in candidates))
    assert won.count(True) == 1, won
    winner = candidates[won.index(True)]
    assert _holder(kube) == winner.identity
    assert [c.is_leader() for c in candidates].count(True) == 1


async def test_a_released_lease_is_taken_within_a_second(kube: FakeKube, api: KubeAPI) -> None:
    clock_b = Clock()
    a, b = _elector(api, "a", Clock()), _elector(api, "b", clock_b)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    await a.stop()  # not started: releases only
    assert _holder(kube) is None
    assert not a.is_leader()
    assert not await b.try_acquire_or_renew() or _holder(kube) == "b"
    clock_b.now += 1.1
    assert await b.try_acquire_or_renew()
    assert _holder(kube) == "b"
