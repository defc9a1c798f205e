"""What the kind suite applies, checked here without a cluster (runs in `make test`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import jsonschema
import kubernetes_validate
import pytest
import yaml

from carrier_operator.binding import render_env
from tests.support.pss import pod_spec_of, violations
from tests.support.servers import AWS_TEST_ENV, MotoServer, eventually, free_port

from .kube import ROOT
from .manifests import (
    RECORDS,
    SCALED,
    SCALED_WORKER,
    binding,
    flooder,
    keda_auth,
    labelled_pod,
    moto,
    scaled_binding,
    worker,
)

ENDPOINT = "http://sqs.carrier-e2e.svc:5000"


def _all() -> list[dict[str, Any]]:
    return [
        binding(ENDPOINT, batch_size=10),
        binding(ENDPOINT, batch_size=1, name="late", queue="e2e-late"),
        *worker(ENDPOINT),
        *worker(ENDPOINT, name="late-worker", binding_name="late", replicas=2),
        labelled_pod("late"),
        *moto(),
        *worker(ENDPOINT, name=SCALED_WORKER, binding_name=SCALED, replicas=0),
        *[m for m in keda_auth() if m["kind"] == "Secret"],
        *flooder("10.244.0.12", 9102, 30),
    ]


def test_manifests_are_valid_and_restricted() -> None:
    for manifest in _all():
        if manifest["kind"] == "CarrierBinding":
            continue
        kubernetes_validate.validate(manifest, "1.33.0", strict=True)
        if manifest["kind"] == "Deployment":
            assert violations(pod_spec_of(manifest)) == [], manifest["metadata"]["name"]
        if manifest["kind"] == "Pod":
            assert violations(manifest["spec"]) == []


def test_binding_is_accepted_by_the_crd_and_the_operator() -> None:
    crd = ROOT / "crds" / "carrierbinding.yaml"
    if not crd.exists():
        pytest.skip("crds/carrierbinding.yaml not written yet")
    schema = yaml.safe_load(crd.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for size in (10, 5):
        manifest = binding(ENDPOINT, batch_size=size)
        jsonschema.Draft4Validator(schema).validate(manifest)
        assert render_env(manifest["spec"])["CARRIER_SQS_BATCH_SIZE"] == str(size)


def test_scaled_binding_is_accepted_and_names_its_worker() -> None:
    """test_kind_keda.py's binding: the CRD schema and every rule the validating webhook applies."""
    from carrier_operator.validation import binding_problems

    crd = ROOT / "crds" / "carrierbinding.yaml"
    schema = yaml.safe_load(crd.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    manifest = scaled_binding(ENDPOINT)
    jsonschema.Draft4Validator(schema).validate(manifest)
    assert binding_problems(manifest["spec"], "carrier-e2e", allow_remote_webhooks=False) == []
    section = manifest["spec"]["autoscaling"]
    assert (section["minReplicas"], section["maxReplicas"]) == (0, 4)
    assert section["target"]["name"] == SCALED_WORKER
    (auth,) = [m for m in keda_auth() if m["kind"] == "TriggerAuthentication"]
    assert section["authenticationRef"]["name"] == auth["metadata"]["name"]
    params = {ref["parameter"] for ref in auth["spec"]["secretTargetRef"]}
    assert params == {"awsAccessKeyID", "awsSecretAccessKey"}  # KEDA's aws auth parameters


async def test_worker_records_each_message_and_stops_on_sigterm(
    moto: MotoServer, sqs: Any, tmp_path: Path
) -> None:
    records = (await sqs.create_queue(QueueName=RECORDS))["QueueUrl"]
    port = free_port()
    env = {**os.environ, **AWS_TEST_ENV, "SQS_ENDPOINT": moto.endpoint, "PORT": str(port)}
    script = Path(__file__).with_name("worker.py")
    process = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env)
    try:
        async with aiohttp.ClientSession() as http:

            async def post() -> bool:
                try:
                    body = json.dumps({"id": "m-1", "sleep": 0})
                    async with http.post(f"http://127.0.0.1:{port}/", data=body) as answer:
                        return answer.status == 200
                except aiohttp.ClientConnectionError:
                    return False  # not listening yet

            await eventually(post, timeout=20, what="the worker to accept a message")
        answer = await sqs.receive_message(QueueUrl=records, WaitTimeSeconds=1)
        assert json.loads(answer["Messages"][0]["Body"])["id"] == "m-1"
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=20)
    assert code == 0


async def test_flooder_sends_its_waves_and_reports_what_it_saw() -> None:
    """The kind suite's flooder against a local server: a wave a second, every answer counted."""
    hits: list[str] = []

    async def answer(request: aiohttp.web.Request) -> aiohttp.web.Response:
        hits.append(request.path)
        return aiohttp.web.Response(text="ok")

    app = aiohttp.web.Application()
    app.router.add_get("/healthz", answer)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        script = Path(__file__).with_name("flooder.py")
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), f"http://127.0.0.1:{port}", "1.5", "40",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await runner.cleanup()
    assert process.returncode == 0
    seen = json.loads(out)
    assert set(seen) == {"200", "404"}, "/healthz answered, /metrics not served here"
    assert seen["200"] == seen["404"], "half of each wave on each path"
    assert seen["200"] % 20 == 0, "whole waves of 40"
    assert seen["200"] >= 20
    assert hits.count("/healthz") == seen["200"]
