"""The fake API is as strict as kube-apiserver where it matters (issue 11 §6).

Authentication (401), the chart's rendered RBAC (403), selectors and pagination, a request log.
Each test talks real HTTP(S) to the fixture, as the operator does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.support import kube_select
from tests.support.kube import (
    NAMESPACES,
    PODS,
    SECRETS,
    FakeKube,
    fake_kube,
    pod_object,
)
from tests.support.kube_access import ADMIN, ADMIN_TOKEN, OPERATOR, OPERATOR_TOKEN

pytestmark = pytest.mark.slow  # a real HTTP(S) fake API server


async def call(
    kube: FakeKube, path: str, token: str | None = None, method: str = "GET", body: Any = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, kube.url + path, headers=headers, json=body) as response,
    ):
        return response.status, await response.json(content_type=None)


@pytest.fixture
async def kube() -> AsyncIterator[FakeKube]:
    async with fake_kube(namespaces=("default", "team-a")) as api:
        yield api


async def test_a_request_without_credentials_is_refused_with_401(kube: FakeKube) -> None:
    status, body = await call(kube, "/api/v1/namespaces/team-a/pods")
    assert status == 401
    assert (body["kind"], body["code"], body["reason"]) == ("Status", 401, "Unauthorized")
    status, _ = await call(kube, "/version", token="not-a-known-token")
    assert status == 401
    assert kube.served("GET", "/api/v1/namespaces/team-a/pods")[-1].user is None


async def test_the_operator_gets_exactly_the_charts_rbac(kube: FakeKube) -> None:
    ok = [
        "/version",
        "/apis",
        "/api/v1/pods?labelSelector=x",
        "/apis/carrier.amplify.security/v1alpha1/namespaces/team-a/carrierbindings",
        "/api/v1/namespaces/carrier-system/secrets/carrier-operator-webhook-tls",
    ]
    for path in ok:
        status, body = await call(kube, path, OPERATOR_TOKEN)
        assert status in {200, 404}, (path, body)  # 404: allowed, but absent
    refused = [
        ("GET", "/api/v1/namespaces/team-a/pods/one"),  # pods: list/watch only
        ("GET", "/api/v1/namespaces/team-a/secrets/carrier-operator-webhook-tls"),
        ("GET", "/api/v1/namespaces/carrier-system/secrets/someone-elses"),
        ("GET", "/api/v1/namespaces/carrier-system/secrets"),  # resourceNames: no list
        ("POST", "/apis/apps/v1/namespaces/team-a/deployments"),
        ("DELETE", "/apis/carrier.amplify.security/v1alpha1/namespaces/team-a/carrierbindings/b"),
    ]
    for method, path in refused:
        status, body = await call(kube, path, OPERATOR_TOKEN, method=method, body={})
        assert status == 403, (method, path, body)
        assert body["reason"] == "Forbidden"
        assert OPERATOR.user in body["message"]
    # The admin arranging the test may do anything.
    status, _ = await call(kube, "/api/v1/namespaces/team-a/secrets", ADMIN_TOKEN)
    assert status == 200


async def test_namespaced_values_grant_only_the_watched_namespaces() -> None:
    values = {"operator": {"namespaces": ["team-a"]}}
    async with fake_kube(namespaces=("team-a", "team-b"), chart_values=values) as kube:
        status, _ = await call(kube, "/api/v1/namespaces/team-a/pods", OPERATOR_TOKEN)
        assert status == 200
        status, body = await call(kube, "/api/v1/namespaces/team-b/pods", OPERATOR_TOKEN)
        assert status == 403
        assert 'in the namespace "team-b"' in body["message"]
        status, _ = await call(kube, "/api/v1/pods", OPERATOR_TOKEN)  # no ClusterRole for pods
        assert status == 403


async def test_the_request_log_names_method_path_query_user_and_status(kube: FakeKube) -> None:
    await call(kube, "/api/v1/namespaces/team-a/pods?labelSelector=a%3Db", OPERATOR_TOKEN)
    await call(kube, "/api/v1/namespaces/team-a/pods/x", OPERATOR_TOKEN)
    listed, fetched = kube.served(path_part="/namespaces/team-a/pods")[-2:]
    assert (listed.method, listed.verb, listed.query, listed.user, listed.status) == (
        "GET",
        "list",
        {"labelSelector": "a=b"},
        OPERATOR.user,
        200,
    )
    assert (fetched.verb, fetched.status) == ("get", 403)


async def test_label_selectors_are_applied_server_side(kube: FakeKube) -> None:
    kube.load(
        PODS,
        [
            _labelled("p1", {"app": "a", "tier": "web"}),
            _labelled("p2", {"app": "b", "tier": "web"}),
            _labelled("p3", {"app": "c"}),
            _labelled("p4", {}),
        ],
    )
    expected = {
        "app": ["p1", "p2", "p3"],
        "!app": ["p4"],
        "app=a": ["p1"],
        "app==a": ["p1"],
        "app!=a": ["p2", "p3", "p4"],
        "app in (a,c)": ["p1", "p3"],
        "app notin (a,c)": ["p2", "p4"],
        "app,tier=web": ["p1", "p2"],
        "app in (a, b),tier": ["p1", "p2"],
    }
    for selector, names in expected.items():
        path = f"/api/v1/namespaces/team-a/pods?labelSelector={selector}"
        status, body = await call(kube, path, ADMIN_TOKEN)
        assert status == 200, body
        assert sorted(i["metadata"]["name"] for i in body["items"]) == names, selector
    status, body = await call(kube, "/api/v1/pods?labelSelector=app in (a", ADMIN_TOKEN)
    assert (status, body["reason"]) == (400, "BadRequest")


async def test_field_selectors_on_name_and_phase(kube: FakeKube) -> None:
    kube.load(
        PODS, [pod_object("team-a", "run", None), pod_object("team-a", "done", None, "Failed")]
    )
    _, body = await call(kube, "/api/v1/pods?fieldSelector=status.phase!=Failed", ADMIN_TOKEN)
    assert [i["metadata"]["name"] for i in body["items"]] == ["run"]
    _, body = await call(kube, "/api/v1/pods?fieldSelector=metadata.name=done", ADMIN_TOKEN)
    assert [i["metadata"]["name"] for i in body["items"]] == ["done"]
    status, body = await call(kube, "/api/v1/pods?fieldSelector=spec.bogus=1", ADMIN_TOKEN)
    assert status == 400
    assert "not supported" in body["message"]


async def test_lists_are_paginated_with_opaque_continue_tokens(kube: FakeKube) -> None:
    assert (
        kube.load(PODS, (pod_object("team-a", f"pod-{i:05d}", None) for i in range(1203))) == 1203
    )
    names: list[str] = []
    token, pages, versions = "", 0, set()
    while True:
        query = f"limit=500&continue={token}" if token else "limit=500"
        status, body = await call(kube, f"/api/v1/namespaces/team-a/pods?{query}", ADMIN_TOKEN)
        assert status == 200
        pages += 1
        names += [i["metadata"]["name"] for i in body["items"]]
        versions.add(body["metadata"]["resourceVersion"])
        token = body["metadata"].get("continue", "")
        if not token:
            break
        assert body["metadata"]["remainingItemCount"] == 1203 - len(names)
        assert pages < 10
    assert pages == 3
    assert len(names) == len(set(names)) == 1203
    assert len(versions) == 1  # a continued list keeps its first page's version
    status, body = await call(kube, "/api/v1/pods?limit=5&continue=garbage", ADMIN_TOKEN)
    assert status == 400


async def test_a_watch_sees_only_matching_objects_and_label_changes(kube: FakeKube) -> None:
    await kube.create(PODS, _labelled("before", {"app": "a"}))
    await kube.create(PODS, _labelled("other", {"app": "b"}))
    events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()

    async def watch() -> None:
        headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
        url = kube.url + "/api/v1/pods?watch=true&labelSelector=app%3Da"
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
            async for line in r.content:
                if line.strip():
                    event = json.loads(line)
                    await events.put((event["type"], event["object"]["metadata"]["name"]))

    async def next_event() -> tuple[str, str]:
        return await asyncio.wait_for(events.get(), timeout=10)

    task = asyncio.create_task(watch())
    try:
        assert await next_event() == ("ADDED", "before")
        await kube.create(PODS, _labelled("unrelated", {"app": "b"}))
        await kube.create(PODS, _labelled("later", {"app": "a"}))
        assert await next_event() == ("ADDED", "later")
        await kube.patch(PODS, "team-a", "later", {"metadata": {"labels": {"app": "z"}}})
        assert await next_event() == ("DELETED", "later")  # left the selector
        await kube.patch(PODS, "team-a", "other", {"metadata": {"labels": {"app": "a"}}})
        assert await next_event() == ("ADDED", "other")  # entered it
        await kube.delete(PODS, "team-a", "before")
        assert await next_event() == ("DELETED", "before")
        assert events.empty()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    watches = kube.served("GET", "/api/v1/pods", user=OPERATOR.user)
    assert watches
    assert watches[-1].query["labelSelector"] == "app=a"


async def test_client_certificates_authenticate_over_tls() -> None:
    async with fake_kube(tls=True) as kube:
        assert kube.url.startswith("https://")
        assert kube.ca is not None
        cert, key = kube.issue_client_cert(OPERATOR)
        context = kube.ca.client_context()
        context.load_cert_chain(cert, key)
        connector = aiohttp.TCPConnector(ssl=context)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(kube.url + "/api/v1/pods?labelSelector=x") as response:
                assert response.status == 200
            async with session.get(kube.url + "/api/v1/namespaces/default/secrets") as response:
                assert response.status == 403  # the cert's identity is the operator's
        plain = aiohttp.TCPConnector(ssl=kube.ca.client_context())
        async with (
            aiohttp.ClientSession(connector=plain) as session,
            session.get(kube.url + "/version") as response,
        ):
            assert response.status == 401
        assert kube.served("GET", "/api/v1/pods")[-1].user == OPERATOR.user


async def test_the_fixtures_own_writes_are_an_admins(kube: FakeKube) -> None:
    await kube.create(SECRETS, {"metadata": {"name": "s", "namespace": "team-a"}})
    created = kube.served("POST", "/secrets")[-1]
    assert (created.user, created.status) == (ADMIN.user, 200)
    assert kube.get(NAMESPACES, None, "team-a") is not None


def test_selector_grammar_rejects_what_upstream_rejects() -> None:
    for bad in ["app in ()", "a b", "app=(x", "=x"]:
        with pytest.raises(kube_select.BadRequest):
            kube_select.label_selector(bad)
    match = kube_select.label_selector("carrier.amplify.security/binding")
    assert match({"metadata": {"labels": {"carrier.amplify.security/binding": "b"}}})
    assert not match({"metadata": {"labels": {}}})


def _labelled(name: str, labels: dict[str, str], namespace: str = "team-a") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "labels": labels}, "status": {}}
