"""The injector's kopf admission face. Placeholder until the injector lands: see ``configure``."""

from __future__ import annotations

import kopf

from .config import OperatorSettings


def configure(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    """Point kopf's admission server at our HTTPS endpoint (filled in by the injector)."""
    del settings, config
