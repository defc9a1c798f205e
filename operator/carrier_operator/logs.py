"""Logging for the operator process: kopf's formatters (JSON lines or plain), our level."""

from __future__ import annotations

import logging

import kopf

from .config import OperatorSettings


def configure_logging(config: OperatorSettings) -> None:
    """Root logging as kopf does it, with the level and format from the operator's settings."""
    log_format = kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.PLAIN
    kopf.configure(debug=config.log_level == "debug", log_format=log_format, log_prefix=False)
    logging.getLogger().setLevel(config.log_level.upper())
    for noisy in ("aiobotocore", "botocore", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
