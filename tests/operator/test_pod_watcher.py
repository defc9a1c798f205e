"""The pod watcher on its own: the index it keeps, 410 Gone, refusals and bounded retries.

``BoundPods`` is pure logic (tested in-process); ``PodWatcher`` runs over real HTTP against the
fake API, as the operator's identity.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from carrier_operator.kubeapi import KubeAPI
from carrier_operator.pods import SELECTOR, BoundPods, PodWatcher
from tests.support.kube import PODS, FakeKube, fake_kube, pod_object
from tests.support.kube_access import OPERATOR
from tests.support.servers import eventually

pytestmark = pytest.mark.slow  # real servers or processes


def test_the_index_keeps_only_live_labelled_pods() -> None:
    index = BoundPods()
    assert index.apply(pod_object("a", "p1", "orders")) == {("a", "orders")}
    assert index.apply(pod_object("a", "p1", "orders")) == set()  # no news
    assert index.apply(pod_object("a", "p2", "orders")) == {("a", "orders")}
    assert index[("a", "orders")] == {"p1", "p2"}
    # Relabelled to another binding: both keys change.
    assert index.apply(pod_object("a", "p2", "payments")) == {("a", "orders"), ("a", "payments")}
    assert index.apply(pod_object("a", "p1", "orders", phase="Succeeded")) == {("a", "orders")}
    assert ("a", "orders") not in index
    deleting = pod_object("a", "p2", "payments")
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert index.apply(deleting) == {("a", "payments")}
    assert index.apply(pod_object("a", "p3", None)) == set()
    assert len(index) == 0


def test_a_relist_drops_pods_that_left_while_the_watch_was_down() -> None:
    index = BoundPods()
    for namespace, name in [("a", "p1"), ("a", "p2"), ("b", "p3")]:
        index.apply(pod_object(namespace, name, "orders"))
    changed = index.replace("a", [pod_object("a", "p2", "orders"), pod_object("a", "p4", "x")])
    assert changed == {("a", "orders"), ("a", "x")}
    assert index[("a", "orders")] == {"p2"}
    assert index[("b", "orders")] == {"p3"}  # another scope: untouched
    assert index.replace(None, []) == {("a", "orders"), ("a", "x"), ("b", "orders")}
    assert not index


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fake_kube(namespaces=("team-a", "team-b")) as api:
        api.load(PODS, [pod_object("team-a", f"w{i}", "orders") for i in range(3)])
        api.load(PODS, [pod_object("team-a", f"plain{i}", None) for i in range(50)])
        yield api


@pytest.fixture
async def api(kube: FakeKube) -> AsyncIterator[KubeAPI]:
    client = KubeAPI(kube.url, token=kube.operator_token)
    yield client
    await client.close()


def _names(watcher: PodWatcher, key: tuple[str, str]) -> set[str]:
    return set(watcher.index.get(key, frozenset()))


async def test_a_410_gone_relists_and_watching_resumes(kube: FakeKube, api: KubeAPI) -> None:
    changes: list[tuple[str, str]] = []
    watcher = PodWatcher(api, on_change=changes.append, page_size=2)
    await watcher.start(first_list_timeout=10)
    try:
        assert _names(watcher, ("team-a", "orders")) == {"w0", "w1", "w2"}
        lists = [e for e in kube.served("GET", "/pods", user=OPERATOR.user) if e.verb == "list"]
        assert [e.query.get("continue", "") != "" for e in lists] == [False, True]  # 2 pages
        await eventually(
            lambda: any(e.verb == "watch" for e in kube.served("GET", "/pods")), 10, "watching"
        )

        await kube.expire_watches(PODS)
        await eventually(lambda: len(_lists(kube)) >= 4, 10, "a second (paged) list after 410")
        await kube.create(PODS, pod_object("team-a", "w3", "orders"))
        await eventually(lambda: "w3" in _names(watcher, ("team-a", "orders")), 10, "w3 seen")
        await kube.delete(PODS, "team-a", "w0")
        await eventually(lambda: "w0" not in _names(watcher, ("team-a", "orders")), 10, "w0 gone")
        assert ("team-a", "orders") in changes
        for entry in kube.served("GET", "/pods"):
            assert entry.query["labelSelector"] == SELECTOR
    finally:
        await watcher.stop()


def _lists(kube: FakeKube) -> list[Any]:
    return [e for e in kube.served("GET", "/pods", user=OPERATOR.user) if e.verb == "list"]


async def test_a_refused_list_is_retried_with_backoff_and_start_does_not_hang() -> None:
    values = {"operator": {"namespaces": ["team-a"]}}
    async with fake_kube(namespaces=("team-a", "team-b"), chart_values=values) as kube:
        client = KubeAPI(kube.url, token=kube.operator_token)
        watcher = PodWatcher(client, ["team-a", "team-b"])  # team-b: no Role there
        try:
            await watcher.start(first_list_timeout=1)
            await eventually(
                lambda: len([e for e in _lists(kube) if "team-b" in e.path]) >= 3, 10, "retries"
            )
            refused = [e.status for e in _lists(kube) if "team-b" in e.path]
            assert set(refused) == {403}
            assert [e.status for e in _lists(kube) if "team-a" in e.path] == [200]
            await kube.create(PODS, pod_object("team-a", "late", "orders"))
            await eventually(lambda: _names(watcher, ("team-a", "orders")) == {"late"}, 10, "a")
        finally:
            await watcher.stop()
            await client.close()
