"""One chaos run: load a queue, run the sidecar through faults, account for every message.

Faults fire at seeded moments measured in *progress* (the share of ids already delivered), so
they land mid-run whatever the machine's speed:
- the webhook fails ``fault_rate`` of deliveries (5xx, 429 + Retry-After, reset, hang);
- ``sigterm`` / ``sigkill``: the sidecar is signalled, reaped, and a new incarnation started;
- ``sqs_outage``: the proxy in front of moto refuses and resets connections for a while;
- ``sqs_freeze``: moto_server is SIGSTOPped then SIGCONTed (a hung server that keeps its state).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session

from tests.chaos.accounting import Report, Window, account, order_violations
from tests.chaos.faulty_webhook import FaultyWebhook
from tests.support.queues import queue_counts
from tests.support.servers import MotoServer, WebhookRecorder, eventually
from tests.support.sidecar_runner import SidecarRunner
from tests.support.sqs_proxy import SqsProxy

VISIBILITY = 3.0
REQUEST_TIMEOUT = 1.0
SHUTDOWN_TIMEOUT = 5.0


@dataclass(frozen=True)
class Plan:
    kind: str  # "standard" | "fifo"
    messages: int
    seed: int
    groups: int = 10
    sigterms: int = 3
    sigkills: int = 3
    outages: int = 1
    freezes: int = 1
    outage_for: float = 3.0
    freeze_for: float = 3.0
    fault_rate: float = 0.2
    deadline: float = 150.0
    window: int | None = None
    """At most this many ids sent but not yet delivered (None: all sent up front). Stock moto
    costs O(queue depth) per call, so a 10 000-message run keeps the depth bounded this way."""

    def events(self) -> list[tuple[float, str]]:
        """(share of ids delivered, fault) in firing order, from the seed alone."""
        rng = random.Random(self.seed)
        kinds = (
            ["sigterm"] * self.sigterms
            + ["sigkill"] * self.sigkills
            + ["sqs_outage"] * self.outages
            + ["sqs_freeze"] * self.freezes
        )
        rng.shuffle(kinds)
        shares = sorted(rng.uniform(0.05, 0.85) for _ in kinds)
        return list(zip(shares, kinds, strict=True))


def sidecar_env(queue: str, endpoint: str) -> dict[str, str]:
    return {
        "CARRIER_SQS_ENDPOINT": endpoint,
        "CARRIER_SQS_QUEUE_NAME": queue,
        "CARRIER_SQS_BATCH_SIZE": "10",
        "CARRIER_SQS_RECEIVERS": "2",
        "CARRIER_SQS_RECEIVER_WORKERS": "8",
        "CARRIER_SQS_WAIT_TIME": "1s",
        "CARRIER_SQS_VISIBILITY_TIMEOUT": f"{VISIBILITY:g}s",
        "CARRIER_WEBHOOK_REQUEST_TIMEOUT": f"{REQUEST_TIMEOUT:g}s",
        "CARRIER_RETRY_BACKOFF_BASE": "1s",
        "CARRIER_RETRY_BACKOFF_MAX": "2s",
        "CARRIER_SHUTDOWN_TIMEOUT": f"{SHUTDOWN_TIMEOUT:g}s",
        "CARRIER_HTTP_ADDR": "none",
        "CARRIER_LOG_LEVEL": "warning",
    }


@dataclass
class Outcome:
    """Everything a run produced: the accounting plus the run's own observations."""

    plan: Plan
    report: Report
    faults: Counter[str]
    queue_left: dict[str, int]
    exit_codes: dict[str, list[int]]
    crashes: list[str]
    duration: float
    notes: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        return {
            "queue": self.plan.kind,
            "seed": self.plan.seed,
            **self.report.as_dict(),
            "faults": dict(sorted(self.faults.items())),
            "queue_left": self.queue_left,
            "sidecar_exit_codes": self.exit_codes,
            "crashes": len(self.crashes),
            "duration_s": round(self.duration, 1),
            "duplicate_examples": self.report.examples,
            "plan": asdict(self.plan),
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.figures(), indent=2, sort_keys=False) + "\n")


def _payloads(plan: Plan) -> list[dict[str, Any]]:
    if plan.kind == "fifo":
        return [
            {"id": f"m-{i:06d}", "group": f"g{i % plan.groups}", "seq": i // plan.groups}
            for i in range(plan.messages)
        ]
    return [{"id": f"m-{i:06d}"} for i in range(plan.messages)]


async def _create_queue(client: Any, plan: Plan, queue: str) -> str:
    attributes = {"VisibilityTimeout": str(int(VISIBILITY))}
    if plan.kind == "fifo":
        attributes["FifoQueue"] = "true"
    url: str = (await client.create_queue(QueueName=queue, Attributes=attributes))["QueueUrl"]
    return url


async def _send(client: Any, plan: Plan, url: str, docs: list[dict[str, Any]]) -> None:
    for start in range(0, len(docs), 10):
        entries = []
        for n, doc in enumerate(docs[start : start + 10]):
            entry: dict[str, Any] = {"Id": str(n), "MessageBody": json.dumps(doc)}
            if plan.kind == "fifo":
                entry["MessageGroupId"] = doc["group"]
                entry["MessageDeduplicationId"] = doc["id"]
            entries.append(entry)
        answer = await client.send_message_batch(QueueUrl=url, Entries=entries)
        assert not answer.get("Failed"), answer["Failed"]


async def _feed(
    client: Any, plan: Plan, url: str, docs: list[dict[str, Any]], delivered: set[str]
) -> None:
    """Send the rest in batches of 10 whenever fewer than ``window`` ids are outstanding."""
    assert plan.window is not None
    window, sent = plan.window, plan.window
    while sent < len(docs):

        def room(n: int = sent) -> bool:
            return n - len(delivered) < window - 10

        await eventually(
            room,
            plan.deadline,
            "room in the feed window",
            every=0.1,
        )
        await _send(client, plan, url, docs[sent : sent + 10])
        sent += 10


async def run(plan: Plan, moto: MotoServer, workdir: Path) -> Outcome:
    assert moto.proc is not None
    queue = f"chaos-{plan.kind}-{plan.seed}" + (".fifo" if plan.kind == "fifo" else "")
    session = get_session()
    async with session.create_client(
        "sqs", region_name="us-east-1", endpoint_url=moto.endpoint
    ) as client:
        url = await _create_queue(client, plan, queue)
        docs = _payloads(plan)
        await _send(client, plan, url, docs[: plan.window or len(docs)])
        faulty = FaultyWebhook(
            seed=plan.seed, fault_rate=plan.fault_rate, hang_for=REQUEST_TIMEOUT + 1.0
        )
        webhook = await WebhookRecorder(responder=faulty).start()
        proxy = await SqsProxy(upstream=moto.endpoint, queue_visibility=VISIBILITY).start()
        runner = SidecarRunner(
            env=sidecar_env(queue, proxy.endpoint),
            webhook_url=f"{webhook.url}/hook",
            log_dir=workdir,
        )
        windows: list[Window] = []
        crashes: list[str] = []
        faults: Counter[str] = Counter()
        t0 = time.monotonic()
        deadline = t0 + plan.deadline

        def remaining() -> float:
            return max(1.0, deadline - time.monotonic())

        async def restart() -> None:
            incarnation = await runner.start()
            proxy.incarnation = incarnation.number

        async def wait_for(check: Any, what: str) -> None:
            """Wait for ``check``; a sidecar that dies on its own is a crash: noted, restarted."""
            while True:
                await eventually(
                    lambda: check() or not runner.alive(), remaining(), f"{what} ({plan.kind})"
                )
                if check():
                    return
                code = await runner.end("crash", 5)
                crashes.append(f"incarnation {runner.current.number} exited {code}")
                await restart()

        feeder: asyncio.Task[None] | None = None
        if plan.window is not None and plan.window < len(docs):
            feeder = asyncio.create_task(_feed(client, plan, url, docs, faulty.delivered))
        try:
            await restart()
            for share, kind in plan.events():
                target = int(share * plan.messages)
                await wait_for(lambda t=target: len(faulty.delivered) >= t, f"{target} delivered")
                if kind in ("sigterm", "sigkill"):
                    # Signal a process that runs the sidecar's code: a signal during interpreter
                    # start-up (before any of it ran) kills it by the signal, nothing received.
                    number = runner.current.number
                    await wait_for(lambda n=number: n in proxy.seen, f"incarnation {number} up")
                faults[kind] += 1
                if kind in ("sigterm", "sigkill"):
                    await runner.end(kind, SHUTDOWN_TIMEOUT + 10)
                    await restart()
                elif kind == "sqs_outage":
                    start = time.monotonic()
                    await proxy.outage()
                    await asyncio.sleep(plan.outage_for)  # the fault's length, not a sync
                    await proxy.restore()
                    windows.append(Window(kind, start, time.monotonic()))
                else:
                    start = time.monotonic()
                    os.kill(moto.proc.pid, signal.SIGSTOP)
                    try:
                        await asyncio.sleep(plan.freeze_for)  # the fault's length, not a sync
                    finally:
                        os.kill(moto.proc.pid, signal.SIGCONT)
                    windows.append(Window(kind, start, time.monotonic()))
            await wait_for(lambda: len(faulty.delivered) >= plan.messages, "every id delivered")

            empty: dict[str, int] = {}

            async def drained() -> bool:
                empty.update(await queue_counts(client, url))
                return not any(empty.values()) or not runner.alive()

            # Copies still owed by killed incarnations come back within the visibility timeout
            # (plus backoff); the live sidecar deletes them. Bounded wait for an empty queue.
            await eventually(drained, min(remaining(), 60.0), "the queue to drain", every=0.5)
            await runner.end("final", SHUTDOWN_TIMEOUT + 10)
        except BaseException as exc:
            exc.add_note(f"delivered {len(faulty.delivered)}/{plan.messages}\n{runner.log_tail()}")
            raise
        finally:
            if feeder is not None:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)
            await runner.close()
            await proxy.stop()
            await webhook.stop()
            if moto.proc is not None and moto.proc.poll() is None:
                os.kill(moto.proc.pid, signal.SIGCONT)
        duration = time.monotonic() - t0
        queue_left = await queue_counts(client, url)
        await client.delete_queue(QueueUrl=url)

    faults.update({f"webhook_{k}": v for k, v in faulty.faults().items()})
    report = account(
        sent=[p["id"] for p in _payloads(plan)],
        deliveries=faulty.deliveries,
        ledger=proxy.ledger,
        incarnations=runner.incarnations,
        windows=windows,
    )
    if plan.kind == "fifo":
        sidecar_order, server_order = order_violations(faulty.deliveries, proxy.ledger)
        report.order_violations = sidecar_order
        report.order_violations_server = server_order
    exit_codes: dict[str, list[int]] = {}
    for inc in runner.incarnations:
        exit_codes.setdefault(str(inc.ended_by), []).append(
            inc.returncode if inc.returncode is not None else -999
        )
    outcome = Outcome(plan, report, faults, queue_left, exit_codes, crashes, duration)
    outcome.notes.append(runner.log_tail())
    return outcome
