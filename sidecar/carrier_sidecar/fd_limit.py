"""Raise the soft open-file limit to the hard one at start-up, as Go programs do since Go 1.19.

The probe port is reachable from the pod network, and every connection on it is a file
descriptor shared with the SQS and webhook connections. containerd 2 no longer starts containers
with a 1 048 576 soft limit: they inherit 1 024, which a burst of 1 000 connections would use up,
and deliveries would then fail with EMFILE (containerd/containerd#8924: "software that needs a
higher limit should request to raise the soft limit"). The Go Carrier gets it from its runtime.
"""

from __future__ import annotations

import resource


def raise_open_files_limit() -> tuple[int, int] | None:
    """(before, after) if the soft limit was raised, None if it already was the hard limit (or
    cannot be changed here)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft == resource.RLIM_INFINITY or soft >= hard:
            return None
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return None
    return soft, hard


def connection_cap(share: float = 0.25, floor: int = 64, ceiling: int = 4096) -> int:
    """How many connections the probe port may hold open: a ``share`` of the soft open-file
    limit (between ``floor`` and ``ceiling``), so a flood always leaves descriptors for SQS and
    the webhook. 4 096 (with the hard limit of 524 288 that containerd 2 leaves) takes a burst of
    1 000 connections whole; a limit of 1 024 that cannot be raised gives 256."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ValueError, OSError):
        return floor
    if soft == resource.RLIM_INFINITY:
        return ceiling
    return max(floor, min(ceiling, int(soft * share)))
