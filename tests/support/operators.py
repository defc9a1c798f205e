"""Several real ``carrier-operator`` processes against one fake API: the multi-replica fixture.

Each replica is the console script in its own process, as in its own pod: its own liveness and
webhook ports, its own identity (``POD_NAME``), JSON logs captured to a file, the shared
kubeconfig of :func:`tests.support.kube.fake_kube`. The self-signed webhook certificate is one
Secret shared by all replicas, so one CA verifies every replica's HTTPS port, as behind the
chart's Service. Usage (inside an async test)::

    async with fake_kube(namespaces=(...)) as kube, operators(kube, 3) as fleet:
        leader = await fleet.wait_for_leader()
        leader.kill()                       # SIGKILL
        await fleet.wait_for_leader(other_than=leader)

Helpers: :meth:`Replica.wait_for_log`, :meth:`Fleet.lease_holder`, :meth:`Fleet.writes_by`
(requests the fake API served, by the ``User-Agent`` each replica sends), :meth:`Fleet.mutate`
(an AdmissionReview over HTTPS to one replica).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import kmock

from carrier_operator.config import MUTATE_PODS_ID, OperatorSettings
from tests.chart import helm
from tests.support.kube import LEASES, SECRETS, FakeKube, fake_kube
from tests.support.servers import AWS_TEST_ENV, eventually, free_port

SCRIPT = str(Path(sys.executable).parent / "carrier-operator")
RELEASE_NAMESPACE = "carrier-system"
LEASE_NAME = helm.RELEASE  # the chart's fullname for the release the fake API renders
WRITES = {"POST", "PATCH", "PUT", "DELETE"}
TEST_CLIENT = "kmock/"  # the User-Agent of FakeKube's own requests (the test arranging things)


@dataclass
class Replica:
    """One operator process."""

    index: int
    pod_name: str
    liveness_port: int
    webhook_port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (a partial last line is skipped)."""
        found: list[dict[str, Any]] = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                parsed = json.loads(line)
                if isinstance(parsed, dict):
                    found.append(parsed)
        return found

    def logged(self, text: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if text in str(line.get("message", ""))]

    async def wait_for_log(self, text: str, timeout: float = 30) -> dict[str, Any]:
        """The first log line containing ``text``, waited for with a deadline."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            found[:] = self.logged(text)
            if not found and not self.alive:
                raise AssertionError(
                    f"{self.pod_name} exited ({self.process.returncode}) before it logged"
                    f" {text!r}:\n{self.tail()}"
                )
            return bool(found)

        await eventually(
            seen, timeout, lambda: f"{self.pod_name} to log {text!r}; its log ends:\n{self.tail()}"
        )
        return found[0]

    @property
    def identity(self) -> str | None:
        """The holder identity this replica campaigns with (from its start-up line)."""
        for line in self.logged("carrier-operator started"):
            if line.get("identity"):
                return str(line["identity"])
        return None

    @property
    def user_agent(self) -> str:
        return f"carrier-operator/{self.identity}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no release of the Lease, no clean-up, as when a node dies."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


@dataclass
class Fleet:
    kube: FakeKube
    config: OperatorSettings
    replicas: list[Replica] = field(default_factory=list)
    ca: bytes | None = None

    @property
    def alive(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    def lease(self) -> dict[str, Any]:
        lease = self.kube.get(LEASES, self.config.lease_namespace_name, self.config.lease_name)
        return dict(lease or {})

    def lease_holder(self) -> str | None:
        holder = (self.lease().get("spec") or {}).get("holderIdentity")
        return str(holder) if holder else None

    def by_identity(self, identity: str | None) -> Replica | None:
        return next((r for r in self.replicas if identity and r.identity == identity), None)

    async def wait_for_leader(
        self, *, other_than: Replica | None = None, timeout: float = 40
    ) -> Replica:
        """The replica holding the Lease, which must also say it became the leader."""
        found: list[Replica] = []

        def elected() -> bool:
            replica = self.by_identity(self.lease_holder())
            if replica is None or replica is other_than or not replica.alive:
                return False
            if not replica.logged("became the leader"):
                return False
            found[:] = [replica]
            return True

        await eventually(elected, timeout, f"a leader other than {other_than}", every=0.1)
        return found[0]

    def requests_by(self, replica: Replica) -> list[kmock.Request]:
        return [
            r for r in self.kube.requests() if r.headers.get("User-Agent") == replica.user_agent
        ]

    def writes(self, path_part: str = "") -> list[kmock.Request]:
        """Every write the fake API served but the test's own (the fixture's client is kmock's),
        optionally under a path: the replicas', kopf's included, whoever sent them."""
        return [
            r
            for r in self.kube.requests()
            if str(r.method.value).upper() in WRITES
            and path_part in r.url.path
            and not str(r.headers.get("User-Agent", "")).startswith(TEST_CLIENT)
        ]

    async def load_ca(self, timeout: float = 30) -> bytes:
        """The shared webhook CA, from the Secret the replicas created."""

        def secret() -> bool:
            obj = self.kube.get(SECRETS, self.config.service_namespace, self.config.cert_secret)
            data = (obj or {}).get("data") or {}
            if data.get("ca.crt"):
                self.ca = base64.b64decode(data["ca.crt"])
            return self.ca is not None

        await eventually(secret, timeout, "the webhook certificate Secret")
        assert self.ca is not None
        return self.ca

    async def mutate(self, replica: Replica, review: Mapping[str, Any]) -> dict[str, Any]:
        """POST an AdmissionReview to one replica's own HTTPS port, verified against the CA."""
        ca = self.ca or await self.load_ca()
        context = ssl.create_default_context(cadata=ca.decode("ascii"))
        connector = aiohttp.TCPConnector(ssl=context)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(
                f"https://127.0.0.1:{replica.webhook_port}/{MUTATE_PODS_ID}",
                json=dict(review),
                server_hostname=self.config.service_host,
                timeout=aiohttp.ClientTimeout(total=10),
            ) as response,
        ):
            answer: dict[str, Any] = await response.json()
            return answer

    async def admits(self, replica: Replica, review: Mapping[str, Any]) -> bool:
        """True if the replica answers and allows (a connection error is a False, not a raise)."""
        try:
            answer = await self.mutate(replica, review)
        except (aiohttp.ClientError, TimeoutError):
            return False
        return bool((answer.get("response") or {}).get("allowed"))


def fleet_cluster(*namespaces: str) -> contextlib.AbstractAsyncContextManager[FakeKube]:
    """The fake API as the chart sets it up for several replicas: the workload ``namespaces``,
    the release's namespace (its Lease), and the RBAC the chart renders for replicaCount 2."""
    return fake_kube(
        namespaces=("default", *namespaces, RELEASE_NAMESPACE), chart_values={"replicaCount": 2}
    )


def replica_env(kube: FakeKube, index: int, liveness: int, webhook: int) -> dict[str, str]:
    return {
        **os.environ,
        **AWS_TEST_ENV,
        "KUBECONFIG": str(kube.kubeconfig),
        "POD_NAME": f"carrier-operator-{index}",
        "CARRIER_OPERATOR_LOG_FORMAT": "json",
        "CARRIER_OPERATOR_LOG_LEVEL": "info",
        "CARRIER_OPERATOR_LEADER_ELECTION": "true",
        # The chart names the Lease after the release, and its RBAC grants only that name.
        "CARRIER_OPERATOR_LEASE_NAME": LEASE_NAME,
        "CARRIER_OPERATOR_LIVENESS_PORT": str(liveness),
        "CARRIER_OPERATOR_WEBHOOK_PORT": str(webhook),
        "CARRIER_OPERATOR_SERVICE_NAMESPACE": RELEASE_NAMESPACE,
        "CARRIER_OPERATOR_QUEUE_CHECK_INTERVAL": "2",
    }


@contextlib.asynccontextmanager
async def operators(
    kube: FakeKube,
    count: int,
    *,
    env: Mapping[str, str | None] | None = None,
    stop_timeout: float = 30,
) -> AsyncIterator[Fleet]:
    """Start ``count`` replicas (they need ``carrier-system`` among the fake's namespaces);
    SIGTERM them at exit and fail if one does not stop in time. ``env`` overrides all (a None
    value removes the variable)."""
    config = OperatorSettings(service_namespace=RELEASE_NAMESPACE, lease_name=LEASE_NAME)
    fleet = Fleet(kube=kube, config=config)
    folder = Path(tempfile.mkdtemp(prefix="carrier-operators-"))
    try:
        for index in range(count):
            liveness, webhook = free_port(), free_port()
            log_path = folder / f"operator-{index}.log"
            environ: dict[str, str | None] = {
                **replica_env(kube, index, liveness, webhook),
                **(env or {}),
            }
            process = _spawn({k: v for k, v in environ.items() if v is not None}, log_path)
            fleet.replicas.append(
                Replica(index, f"carrier-operator-{index}", liveness, webhook, log_path, process)
            )
        for replica in fleet.replicas:
            await replica.wait_for_log("carrier-operator started", timeout=60)
        yield fleet
    finally:
        await _stop_all(fleet.replicas, stop_timeout)


def _spawn(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen([SCRIPT], env=env, stdout=log, stderr=subprocess.STDOUT)


async def _stop_all(replicas: list[Replica], timeout: float) -> None:
    for replica in replicas:
        if replica.alive:
            replica.process.send_signal(signal.SIGTERM)
    stuck: list[str] = []
    for replica in replicas:
        try:
            await asyncio.to_thread(replica.process.wait, timeout)
        except subprocess.TimeoutExpired:
            stuck.append(replica.pod_name)
            replica.process.kill()
            replica.process.wait()
    if stuck:
        raise TimeoutError(f"replicas did not stop within {timeout}s on SIGTERM: {stuck}")


def kill_on(
    kube: FakeKube, replica: Replica, matches: Callable[[kmock.Request], bool], *, nth: int = 1
) -> list[kmock.Request]:
    """SIGKILL ``replica`` at the moment it sends its ``nth`` write that ``matches``, before the
    fake API applies that write (refused with 503: the process is gone anyway). Returns the
    list the matching writes are recorded in."""
    seen: list[kmock.Request] = []

    def hook(request: kmock.Request) -> None:
        if request.headers.get("User-Agent") != replica.user_agent or not matches(request):
            return
        seen.append(request)
        if len(seen) == nth and replica.alive:
            replica.process.send_signal(signal.SIGKILL)
            raise kmock.KubernetesError(status=503, reason="ServiceUnavailable", message="killed")

    kube.mock.write_hooks.append(hook)
    return seen
