"""Golden injection cases: ``golden/<case>.yaml`` in, ``golden/<case>.patch.yaml`` out.

Each case is a pod as the API server sends it plus the binding it names; the expected file is
the injector's whole answer (JSONPatch and warnings), so a reviewer sees what injection does to a
pod without reading code. ``CARRIER_UPDATE_GOLDEN=1`` rewrites the expected files after an
intended change; the diff is then the review.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from carrier_operator.config import OperatorSettings
from carrier_operator.injection import Binding, plan_injection
from tests.injector.conftest import assert_valid_pod, patched
from tests.injector.harness import READY

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml") if not p.name.endswith(".patch.yaml"))
UPDATE = os.environ.get("CARRIER_UPDATE_GOLDEN") == "1"
GOLDEN_TOKEN = "golden-drain-token-0123456789abcdef"


def _answer(case: dict[str, Any]) -> dict[str, Any]:
    pod = case["pod"]
    namespace = pod["metadata"]["namespace"]
    binding = Binding("orders", namespace, case["binding"], READY)
    config = OperatorSettings(**case.get("config", {}))
    # The drain token is random per pod at admission; a fixed one keeps the answer comparable.
    plan = plan_injection(
        pod, binding, config, native=bool(case["native"]), drain_token=GOLDEN_TOKEN
    )
    return {"patch": plan.patch, "warnings": list(plan.warnings)}


@pytest.mark.parametrize("name", CASES)
def test_golden_case(name: str) -> None:
    case = yaml.safe_load((GOLDEN / f"{name}.yaml").read_text())
    answer = _answer(case)
    expected_file = GOLDEN / f"{name}.patch.yaml"
    if UPDATE:
        header = f"# What the injector answers for {name}.yaml (regenerate: see README.md).\n"
        expected_file.write_text(header + yaml.safe_dump(answer, sort_keys=False, width=100))
    assert expected_file.exists(), f"{expected_file.name} missing: run with CARRIER_UPDATE_GOLDEN=1"
    assert answer == yaml.safe_load(expected_file.read_text())
    assert_valid_pod(patched(case["pod"], answer["patch"]), case["pod"]["metadata"]["namespace"])


def test_every_case_has_its_answer() -> None:
    """No orphaned answers and at least the main cases: a deleted input cannot pass silently."""
    answers = sorted(p.name.removesuffix(".patch.yaml") for p in GOLDEN.glob("*.patch.yaml"))
    assert answers == CASES
    assert len(CASES) >= 6
