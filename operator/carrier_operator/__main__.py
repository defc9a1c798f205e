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
from collections.abc import Sequence
from typing import Any

import kopf

from . import admission, reconcile
from .binding import GROUP
from .book import Book
from .checker import Checker
from .config import OperatorConfigError, OperatorSettings
from .kubeapi import KubeAPI
from .logs import configure_logging
from .pods import PodWatcher
from .queues import QueueReader

logger = logging.getLogger(__name__)

LIVENESS_PATH = "/healthz"


def configure_kopf(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    """kopf's knobs for this operator (also applied to the settings object passed to kopf)."""
    # Our own Events say what changed; kopf's per-handler "succeeded" ones would be noise.
    settings.posting.level = logging.WARNING
    settings.peering.standalone = not config.peering
    settings.peering.clusterwide = not config.namespace_list
    # Handler progress and the last-handled spec live in our annotations, not in status.kopf
    # (the CRD's structural schema would prune that).
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
    configure_kopf(settings, config)
    admission.configure(settings, config)
    api = await KubeAPI.from_environment()
    book = Book(api)
    reader = QueueReader()
    pods = PodWatcher(api, config.namespace_list)
    checker = Checker(
        book=book,
        reader=reader,
        bindings=kwargs[reconcile.BINDINGS_INDEX],
        pods=pods.index,
        interval=config.queue_check_interval,
    )
    pods.on_change = functools.partial(checker.touch, queue=False)
    memo.carrier = reconcile.Runtime(
        config=config, api=api, book=book, reader=reader, checker=checker
    )
    memo.carrier_pods = pods
    await pods.start()
    checker.start()
    logger.info(
        "carrier-operator started: namespaces=%s, peering=%s, queue check every %gs",
        config.namespaces or "(all)",
        config.peering,
        config.queue_check_interval,
    )


@kopf.on.cleanup()
async def _cleanup(memo: Any, **_: Any) -> None:
    pods = getattr(memo, "carrier_pods", None)
    if isinstance(pods, PodWatcher):
        await pods.stop()
    carrier = getattr(memo, "carrier", None)
    if isinstance(carrier, reconcile.Runtime):
        await carrier.close()


@kopf.on.probe(id="bindings")
def _probe(memo: Any, **_: Any) -> int:
    """The liveness endpoint also reports how many bindings the operator tracks."""
    carrier = getattr(memo, "carrier", None)
    return len(carrier.book.keys()) if isinstance(carrier, reconcile.Runtime) else 0


async def run(
    config: OperatorSettings,
    *,
    stop_flag: Any = None,
    ready_flag: Any = None,
) -> None:
    """Run kopf with our handlers until ``stop_flag`` is set or a signal arrives."""
    settings = kopf.OperatorSettings()
    configure_kopf(settings, config)
    namespaces = config.namespace_list
    await kopf.operator(
        settings=settings,
        memo=kopf.Memo(config=config),
        standalone=not config.peering,
        # A name makes peering mandatory in kopf: only then must the peering object exist.
        peering_name=config.peering_name if config.peering else None,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=f"http://0.0.0.0:{config.liveness_port}{LIVENESS_PATH}",
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
    peering = parser.add_mutually_exclusive_group()
    peering.add_argument("--peering", dest="peering", action="store_const", const=True)
    peering.add_argument(
        "--standalone", dest="peering", action="store_const", const=False, help="no peering"
    )
    parser.add_argument("--peering-name", help="(Cluster)KopfPeering object to elect through")
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
    asyncio.run(run(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
