"""Admission fuzzing: random and mutated AdmissionReview bodies against the running webhook over
HTTPS. Every answer must be a well-formed AdmissionReview (never a 500, never a crash), an
allowed patch must apply to the object it came with, and the server must still serve a normal
review at the end. ``CARRIER_CHAOS=full`` runs 10 000 bodies; the default run ~1 000.
``CARRIER_FUZZ_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import jsonpatch
import pytest
import pytest_asyncio

from carrier_operator.binding import BINDING_LABEL
from carrier_operator.config import MUTATE_PODS_ID, SIDECAR_CONTAINER, VALIDATE_BINDINGS_ID
from tests.injector.harness import (
    Answer,
    Injector,
    binding_review,
    pod_review,
    ready_binding,
    replicaset_pod,
    running_injector,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.chaos, pytest.mark.slow]

FULL = os.environ.get("CARRIER_CHAOS") == "full"
COUNT = 10_000 if FULL else 1_000
SEED = int(os.environ.get("CARRIER_FUZZ_SEED", "20261128"))
CONCURRENCY = 8
PATHS = (f"/{MUTATE_PODS_ID}", f"/{VALIDATE_BINDINGS_ID}", "/", "/unknown", "/mutate-pods/x")
EXPECTED_STATUSES = {200, 400, 404, 405, 413}


def junk(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(12 if depth < 3 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.randint(-(2**63), 2**63)
    if choice == 3:
        return rng.random() * 1e300
    if choice == 4:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(0, 20)))
    if choice == 5:
        return "x" * rng.choice([0, 1, 63, 64, 253, 254, 70_000])
    if choice == 6:
        return rng.choice(["", "../..", "a/b", "UPPER", "-x-", "orders", "team-a", "\x00"])
    if choice == 7:
        return rng.choice(["pods", "CREATE", "v1", "admission.k8s.io/v1", "AdmissionReview"])
    if choice < 10:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {
        str(junk(rng, depth + 1))[:20]: junk(rng, depth + 1) for _ in range(rng.randrange(0, 4))
    }


def paths_of(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += paths_of(value, (*prefix, index))
    return found


def mutate(rng: random.Random, doc: dict[str, Any]) -> dict[str, Any]:
    """Delete, replace or retype a few random spots of a valid review."""
    doc = copy.deepcopy(doc)
    for _ in range(rng.randrange(1, 4)):
        spots = [p for p in paths_of(doc) if p]
        inside = [p for p in spots if p[:2] == ("request", "object") and len(p) > 2]
        if inside and rng.random() < 0.7:  # mostly the object: the envelope check is simple
            spots = inside
        if not spots:
            break
        path = rng.choice(spots)
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        action = rng.randrange(3)
        if action == 0 and isinstance(parent, dict):
            del parent[key]
        elif action == 0 and isinstance(parent, list):
            parent.pop(key)
        else:
            parent[key] = junk(rng)
    return doc


def valid_bodies() -> list[dict[str, Any]]:
    irsa = replicaset_pod("orders")
    irsa["spec"]["containers"][0]["env"] = [{"name": "AWS_ROLE_ARN", "value": "arn"}]
    return [
        pod_review(replicaset_pod("orders"), namespace="team-a"),
        pod_review(replicaset_pod(None), namespace="team-a"),
        pod_review(replicaset_pod("missing"), namespace="team-a"),
        pod_review(irsa, namespace="team-a"),
        pod_review(
            replicaset_pod("orders", initContainers=[{"name": "i", "image": "i"}]),
            namespace="team-a",
        ),
        binding_review(ready_binding("team-a", "x", status=None)),
        binding_review(
            ready_binding(
                "team-a", "x", {"queue": {"name": "q"}, "delivery": {"batchSize": 3}}, status=None
            ),
            operation="UPDATE",
        ),
    ]


def generate(rng: random.Random) -> tuple[str, bytes, Any]:
    """(path, raw body, the review object if the body is JSON)."""
    kind = rng.randrange(10)
    base = rng.choice(valid_bodies())
    path = (
        f"/{MUTATE_PODS_ID}"
        if base["request"]["resource"]["resource"] == "pods"
        else f"/{VALIDATE_BINDINGS_ID}"
    )
    if rng.random() < 0.08:
        path = rng.choice(PATHS)
    if kind <= 4:
        doc: Any = mutate(rng, base)
    elif kind == 5:  # huge labels and annotations
        doc = copy.deepcopy(base)
        meta = doc["request"]["object"].setdefault("metadata", {})
        size = rng.choice([100, 10_000, 300_000])
        meta.setdefault("labels", {}).update({f"k{i}": "v" * 63 for i in range(size // 70)})
        meta["labels"][BINDING_LABEL] = rng.choice(["orders", "x" * 63, "a" * size])
        meta["annotations"] = {"big": "z" * size}
    elif kind == 6:  # wrong envelope
        doc = copy.deepcopy(base)
        doc[rng.choice(["apiVersion", "kind"])] = rng.choice(
            ["admission.k8s.io/v2", "v1", "Pod", "", None, 7]
        )
    elif kind == 7:  # another resource at this path
        doc = copy.deepcopy(base)
        doc["request"]["resource"] = rng.choice(
            [
                {"group": "", "version": "v1", "resource": "configmaps"},
                {"group": "apps", "version": "v1", "resource": "deployments"},
                {"group": "", "version": "v1", "resource": "pods"},
                {
                    "group": "carrier.amplify.security",
                    "version": "v1alpha1",
                    "resource": "carrierbindings",
                },
            ]
        )
        doc["request"]["operation"] = rng.choice(["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH"])
    elif kind == 8:  # pure junk JSON
        doc = junk(rng)
    else:  # not JSON at all
        raw = rng.choice(
            [
                bytes(rng.randrange(256) for _ in range(rng.randrange(0, 512))),
                json.dumps(base).encode()[: rng.randrange(1, 200)],
                b"[" * 100_000,
                b"{" * 5_000 + b"}" * 5_000,
                "ünïcödé".encode("utf-16"),
                b"",
            ]
        )
        return path, raw, None
    return path, json.dumps(doc).encode(), doc


def check(answer: Answer, sent: Any, path: str) -> str:
    """Assert the answer is well formed; return a label for the statistics."""
    assert answer.status in EXPECTED_STATUSES, (answer.status, answer.body)
    assert answer.status != 500
    assert isinstance(answer.body, dict), answer.body
    assert answer.body.get("kind") == "AdmissionReview"
    response = answer.response
    assert isinstance(response.get("uid"), str)
    assert isinstance(response.get("allowed"), bool)
    status = response.get("status") or {}
    assert status.get("code") != 500, status  # a 500 inside the review = a bug in a handler
    if answer.status != 200:
        assert response["allowed"] is False
        return f"http {answer.status}"
    request = sent["request"]
    assert response["uid"] == request["uid"]
    if response["allowed"] and "patch" in response:
        obj = copy.deepcopy(request["object"])
        result = jsonpatch.apply_patch(obj, answer.patch)
        assert path == f"/{MUTATE_PODS_ID}"
        # Security: only opted-in pods are ever changed, and only with their own namespace's
        # binding (the fuzz registers "orders" in team-a only).
        labels = request["object"]["metadata"]["labels"]
        assert labels[BINDING_LABEL] == "orders"
        namespace = request.get("namespace") or request["object"]["metadata"].get("namespace")
        assert namespace == "team-a"
        names = [c.get("name") for c in result["spec"].get("initContainers", [])]
        names += [c.get("name") for c in result["spec"]["containers"]]
        assert names.count(SIDECAR_CONTAINER) == 1
        return "patched"
    return "allowed" if response["allowed"] else f"denied {status.get('code')}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def injector() -> AsyncIterator[Injector]:
    async with running_injector(bindings=[ready_binding("team-a", "orders")]) as running:
        yield running


async def test_random_and_mutated_reviews_always_get_a_well_formed_answer(
    injector: Injector,
) -> None:
    rng = random.Random(SEED)
    cases = [generate(rng) for _ in range(COUNT)]
    outcomes: Counter[str] = Counter()
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(index: int, case: tuple[str, bytes, Any]) -> None:
        path, raw, doc = case
        async with semaphore:
            answer = await injector.post(path, raw, raw=True)
        try:
            outcomes[check(answer, doc, path)] += 1
        except AssertionError as exc:
            raise AssertionError(f"case {index} (seed {SEED}) {path} {raw[:300]!r}: {exc}") from exc

    await asyncio.gather(*(one(i, case) for i, case in enumerate(cases)))
    assert sum(outcomes.values()) == COUNT
    assert injector.server.internal_errors == 0
    # The mix really exercised every kind of answer.
    assert outcomes["patched"] > 0
    assert outcomes["allowed"] > 0
    assert outcomes["http 400"] > 0
    assert any(k.startswith("denied") for k in outcomes)
    print(f"fuzz seed={SEED} count={COUNT}: {dict(outcomes)}")

    # Still alive and still correct.
    answer = await injector.mutate(replicaset_pod("orders"), namespace="team-a")
    assert answer.allowed
    assert answer.patch


@pytest.mark.parametrize(
    "make",
    [
        lambda: b"not json",
        lambda: b"\xff\xfe\x00binary",
        lambda: b"[]",
        lambda: json.dumps(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
        ).encode(),
        lambda: json.dumps({"apiVersion": "v1", "kind": "Pod"}).encode(),
        lambda: b"[" * 200_000,
    ],
)
async def test_known_hostile_bodies(injector: Injector, make: Callable[[], bytes]) -> None:
    answer = await injector.post(f"/{MUTATE_PODS_ID}", make(), raw=True)
    assert answer.status == 400
    assert answer.body["kind"] == "AdmissionReview"
    assert answer.response["allowed"] is False
    assert answer.message


async def test_oversized_body_is_refused_politely(injector: Injector) -> None:
    review = pod_review(replicaset_pod("orders"), namespace="team-a")
    review["request"]["object"]["metadata"]["annotations"] = {"big": "x" * (5 * 1024 * 1024)}
    answer = await injector.post(f"/{MUTATE_PODS_ID}", review)
    assert answer.status == 413
    assert answer.response["allowed"] is False
