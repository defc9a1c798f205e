from __future__ import annotations

import pytest

from .helm import require_helm


@pytest.fixture(params=[3, 4], ids=["helm3", "helm4"], scope="session")
def helm(request: pytest.FixtureRequest) -> str:
    """Each test runs under Helm 3 and Helm 4 (`make tools` fetches both)."""
    return require_helm(request.param)
