"""``carrier-operator``: load the settings, configure kopf, run both faces until SIGTERM.

Settings come from ``CARRIER_OPERATOR_*`` env, and the flags below override them. A bad setting
prints one line and exits 2. SIGTERM/SIGINT stop kopf gracefully (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from carrier_sidecar.memory import settle

from . import admission, reconcile
from .autoscaling import depth_document
from .background import cancel_and_wait
from .binding import GROUP
from .checker import Checker
from .config import OperatorConfigError, OperatorSettings
from .events import EventPoster
from .kubeapi import KubeAPI
from .leader import LeaderElector, Leadership, SoleReplica, default_identity
from .liveness import serving_liveness
from .logs import configure_logging
from .metrics import OperatorMetrics
from .pods import PodWatcher
from .queues import QueueReader
from .scaling_sync import ScalingSync
from .scheduler import Scheduler, utc_now
from .spec_sync import SpecSync
from .status_writer import StatusWriter

logger = logging.getLogger(__name__)


def configure_kopf(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    """kopf's knobs for this operator (also applied to the settings object passed to kopf)."""
    # Our own Events say what changed; kopf's per-handler "succeeded" ones would be noise.
    settings.posting.level = logging.WARNING
    # Never kopf peering: with equal priorities every peer pauses, and a paused peer stops
    # indexing, which admission needs on every replica. One writer is elected by a Lease.
    settings.peering.standalone = True
    settings.peering.clusterwide = not config.namespace_list
    # No kopf change handler is registered (reconcile.py), so kopf writes nothing on bindings;
    # should one be added, its bookkeeping goes to our annotations, not to status.kopf (the
    # CRD's structural schema would prune that).
    prefix = GROUP
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration"
    )
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 600
    settings.watching.chunk_size = 500  # kopf lists bindings (and CRDs) in pages, not at once
    settings.watching.client_timeout = 660


@kopf.on.startup()
async def _startup(
    settings: kopf.OperatorSettings, memo: Any, indices: Any = None, **kwargs: Any
) -> None:
    config: OperatorSettings = memo.config
    metrics: OperatorMetrics = memo.metrics
    configure_kopf(settings, config)
    identity = default_identity()
    api = await KubeAPI.from_environment()
    api.user_agent = f"carrier-operator/{identity}"
    admission.configure(settings, config, memo, api=api).on_review = metrics.admission_reviewed
    leadership: Leadership = SoleReplica()
    if config.leader_election:
        leadership = LeaderElector(
            api,
            namespace=config.lease_namespace_name,
            name=config.lease_name,
            identity=identity,
            lease_duration=config.lease_duration,
            renew_deadline=config.renew_deadline,
            retry_period=config.retry_period,
            # A new leader starts from the statuses as written and looks at every binding.
            on_started_leading=lambda: _elected(checker, scheduler),
        )
    statuses = StatusWriter(api, leadership)
    reader = QueueReader()
    pods = PodWatcher(api, config.namespace_list)
    checker = Checker(
        statuses=statuses,
        reader=reader,
        bindings=kwargs[reconcile.BINDINGS_INDEX],
        pods=pods.index,
        interval=config.queue_check_interval,
        sync=SpecSync(
            api,
            EventPoster(api, leadership, identity),
            leadership,
            rollout_enabled=config.rollout_enabled,
            config=config,
            metrics=metrics,
        ),
        leadership=leadership,
        queue_check=config.queue_check,
        scaling=ScalingSync(
            api, leadership, enabled=config.autoscaling, endpoint_base=config.depth_endpoint_base
        ),
        metrics=metrics,
    )
    metrics.watch(statuses.items, leadership.is_leader)
    pods.on_change = functools.partial(checker.touch, queue=False)
    scheduler = Scheduler(
        api=api,
        bindings=kwargs[reconcile.BINDINGS_INDEX],
        reader=reader,
        events=EventPoster(api, leadership, identity),
        leadership=leadership,
        config=config,
        clock=_schedule_clock(config),
        on_send=metrics.schedule_sent,
    )
    memo.carrier = reconcile.Runtime(
        config=config,
        api=api,
        statuses=statuses,
        reader=reader,
        checker=checker,
        leadership=leadership,
        identity=identity,
        scheduler=scheduler,
    )
    memo.carrier_pods = pods
    memo.carrier_settle = asyncio.create_task(
        _settle_after_start(memo.carrier), name="carrier settle after start-up"
    )
    await pods.start()
    checker.start()
    scheduler.start()
    if isinstance(leadership, LeaderElector):
        leadership.start()
    logger.info(
        "carrier-operator started",
        extra={
            "identity": identity,
            "namespaces": config.namespaces or "(all)",
            "leader_election": f"on (Lease {config.lease_namespace_name}/{config.lease_name})"
            if config.leader_election
            else "off (sole replica)",
            "queue_check": f"every {config.queue_check_interval:g}s"
            if config.queue_check
            else "off",
        },
    )


def _elected(checker: Checker, scheduler: Scheduler) -> None:
    checker.elected()
    scheduler.elected()


def _schedule_clock(config: OperatorSettings) -> Callable[[], datetime]:
    """The scheduler's clock: real UTC, shifted only by the test-only offset setting."""
    offset = timedelta(seconds=config.schedule_clock_offset_for_tests)
    if not offset:
        return utc_now
    logger.warning(
        "schedules run on a shifted clock (a setting for tests only)",
        extra={"offset": str(offset)},
    )
    return lambda: utc_now() + offset


async def _settle_after_start(carrier: reconcile.Runtime) -> None:
    """Give start-up's peak back (glibc keeps it otherwise, so RSS stays at the peak): once kopf
    has listed the bindings (a follower's whole start-up), and again once this replica, as the
    leader, has run two reconcile rounds over the full index (the first may have begun on a
    partial one), which wrote every status. Rounds run only on the leader: a follower waits
    here, idle, until it is elected or stopped."""
    await carrier.indexed.wait()
    settle()
    for _ in range(2):
        carrier.checker.round_done.clear()
        await carrier.checker.round_done.wait()
    settle()
    logger.info("start-up done: garbage collected, free heap returned to the system")


@kopf.on.cleanup()
async def _cleanup(memo: Any, **_: Any) -> None:
    await cancel_and_wait(getattr(memo, "carrier_settle", None))
    pods = getattr(memo, "carrier_pods", None)
    if isinstance(pods, PodWatcher):
        await pods.stop()
    carrier = getattr(memo, "carrier", None)
    if isinstance(carrier, reconcile.Runtime):
        await carrier.close()


def _probe(memo: Any, **_: Any) -> int:
    """The liveness endpoint also reports how many bindings the operator tracks."""
    carrier = getattr(memo, "carrier", None)
    return len(carrier.statuses.keys()) if isinstance(carrier, reconcile.Runtime) else 0


def _depth(memo: Any, namespace: str, name: str) -> tuple[int, dict[str, Any]]:
    """The depth endpoint's answer from this replica's index (the same on every replica)."""
    carrier = getattr(memo, "carrier", None)
    if not isinstance(carrier, reconcile.Runtime):
        return 503, {"error": "the operator is starting"}
    entries = list(carrier.checker.bindings.get((namespace, name)) or ())
    max_age = 3 * carrier.config.queue_check_interval + 30
    return depth_document(entries[-1] if entries else None, datetime.now(UTC), max_age)


def _leader_probe(memo: Any) -> bool:
    """The liveness endpoint also says whether this replica is the writer right now."""
    carrier = getattr(memo, "carrier", None)
    return isinstance(carrier, reconcile.Runtime) and carrier.leadership.is_leader()


async def run(
    config: OperatorSettings,
    *,
    stop_flag: Any = None,
    ready_flag: Any = None,
) -> None:
    """Run kopf with our handlers until ``stop_flag`` is set or a signal arrives."""
    settings = kopf.OperatorSettings()
    configure_kopf(settings, config)
    metrics = OperatorMetrics()
    memo = kopf.Memo(config=config, metrics=metrics)
    # Our own liveness listener, not kopf's liveness_endpoint: kopf binds one address family.
    # The same port serves /metrics (per-binding series once the reconcile loop runs).
    async with serving_liveness(
        config.liveness_port,
        lambda: {"bindings": _probe(memo), "leader": _leader_probe(memo)},
        depth=functools.partial(_depth, memo),
        metrics=metrics.registry,
    ):
        await _run_kopf(config, settings, memo, stop_flag=stop_flag, ready_flag=ready_flag)


async def _run_kopf(
    config: OperatorSettings,
    settings: kopf.OperatorSettings,
    memo: kopf.Memo,
    *,
    stop_flag: Any,
    ready_flag: Any,
) -> None:
    namespaces = config.namespace_list
    await kopf.operator(
        settings=settings,
        memo=memo,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="carrier-operator",
        description="CarrierBinding operator and sidecar injector. Every flag overrides its "
        "CARRIER_OPERATOR_* variable.",
    )
    parser.add_argument("--namespaces", help="comma-separated namespaces to watch (default: all)")
    parser.add_argument("--log-format", choices=["json", "plain"])
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    election = parser.add_mutually_exclusive_group()
    election.add_argument(
        "--leader-election",
        dest="leader_election",
        action="store_const",
        const=True,
        help="elect one writer among replicas through a Lease",
    )
    election.add_argument(
        "--no-leader-election",
        dest="leader_election",
        action="store_const",
        const=False,
        help="this replica is the only one (default)",
    )
    parser.add_argument("--lease-name", help="the Lease replicas elect the writer through")
    parser.add_argument("--liveness-port", type=int)
    parser.add_argument("--queue-check-interval", type=float, help="seconds")
    parser.add_argument("--webhook-port", type=int)
    return parser


def load_config(argv: Sequence[str] | None = None) -> OperatorSettings:
    """Env settings with the flags on top; :class:`OperatorConfigError` (one line) if invalid."""
    args = _parser().parse_args(argv)
    overrides = {key: value for key, value in vars(args).items() if value is not None}
    return OperatorSettings.load(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except OperatorConfigError as exc:
        print(f"carrier-operator: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    try:
        asyncio.run(run(config))
    except OperatorConfigError as exc:  # found only when used (e.g. a busy liveness port)
        print(f"carrier-operator: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
