"""The operator's log lines: a constant message, the variable parts as fields, in both formats."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from carrier_operator.config import OperatorSettings
from carrier_operator.logs import configure_logging


@pytest.fixture
def restored_root_logging() -> Iterator[None]:
    """configure_logging rewires the root logger (kopf's way): put it back for other tests."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_state = (list(asyncio_logger.handlers), asyncio_logger.propagate)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        asyncio_logger.handlers[:], asyncio_logger.propagate = asyncio_state


def _emit() -> None:
    logging.getLogger("carrier_operator.test").warning(
        "cannot write the status",
        extra={"namespace": "team-a", "binding": "orders", "error": "409 Conflict"},
    )


@pytest.mark.usefixtures("restored_root_logging")
def test_plain_lines_show_the_fields_as_key_value_pairs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(OperatorSettings(log_format="plain"))
    _emit()
    assert capsys.readouterr().err.splitlines() == [
        "cannot write the status namespace=team-a binding=orders error=409 Conflict"
    ]


@pytest.mark.usefixtures("restored_root_logging")
def test_plain_lines_keep_the_traceback_below_the_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(OperatorSettings(log_format="plain"))
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("carrier_operator.test").exception(
            "reconcile failed", extra={"binding": "orders"}
        )
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "reconcile failed binding=orders"
    assert lines[-1] == "RuntimeError: boom"


@pytest.mark.usefixtures("restored_root_logging")
def test_json_lines_carry_the_fields_as_keys(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(OperatorSettings(log_format="json"))
    _emit()
    (line,) = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["message"] == "cannot write the status"
    assert (entry["namespace"], entry["binding"], entry["error"]) == (
        "team-a",
        "orders",
        "409 Conflict",
    )
    assert entry["severity"] == "warn"
