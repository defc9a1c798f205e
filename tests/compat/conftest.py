"""Reuse the sidecar suite's process fixture."""

from tests.sidecar.conftest import sidecar_command

__all__ = ["sidecar_command"]
