"""Logging for the operator process: kopf's formatters (JSON lines or plain), our level.

Our records carry a constant message and their variable parts as ``extra={...}`` fields, as the
sidecar's do: kopf's JSON formatter emits those as keys; the plain format appends them as
``key=value`` pairs (kopf's own plain formatter would drop them).
"""

from __future__ import annotations

import logging

import kopf

from carrier_sidecar.logs import extras

from .config import OperatorSettings

# What kopf attaches to its records for its own use (its JSON formatter skips them too).
_KOPF_ATTRIBUTES = frozenset({"k8s_skip", "k8s_ref", "settings"})


class PlainFieldsFormatter(logging.Formatter):
    """The message, then each extra field as ``key=value``: readable and still greppable."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(
            f"{key}={value}" for key, value in extras(record).items() if key not in _KOPF_ATTRIBUTES
        )
        if not fields:
            return line
        head, newline, rest = line.partition("\n")  # a traceback stays below the fields
        return f"{head} {fields}{newline}{rest}"


def configure_logging(config: OperatorSettings) -> None:
    """Root logging as kopf does it, with the level and format from the operator's settings."""
    json = config.log_format == "json"
    log_format = kopf.LogFormat.JSON if json else kopf.LogFormat.PLAIN
    before = set(logging.getLogger().handlers)
    kopf.configure(debug=config.log_level == "debug", log_format=log_format, log_prefix=False)
    if not json:
        for handler in set(logging.getLogger().handlers) - before:  # the one kopf added
            handler.setFormatter(PlainFieldsFormatter(kopf.LogFormat.PLAIN.value))
    logging.getLogger().setLevel(config.log_level.upper())
    for noisy in ("aiobotocore", "botocore", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
