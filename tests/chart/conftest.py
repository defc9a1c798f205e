from __future__ import annotations

import pytest

from .helm import helm_binary


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"], scope="session")
def helm(request: pytest.FixtureRequest) -> str:
    """Each test runs under Helm 3 and Helm 4 (`make tools` fetches both)."""
    binary = helm_binary(request.param)
    if binary is None:
        pytest.skip(f"helm{request.param} not found: run `make tools` (.ci/tools.sh)")
    return binary
