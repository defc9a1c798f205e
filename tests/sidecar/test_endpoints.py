"""The lean endpoint resolver: the same answers as botocore's own, for the clients we create."""

from __future__ import annotations

import json

import pytest
from aiobotocore.session import get_session
from botocore.loaders import create_loader

from carrier_sidecar._endpoints_data import ENDPOINTS_JSON
from carrier_sidecar.endpoints import install_lean_resolver, render


def test_the_copy_matches_the_installed_botocore() -> None:
    """Fails after a botocore bump: regenerate with `python -m carrier_sidecar.endpoints`."""
    assert json.loads(ENDPOINTS_JSON) == json.loads(render(create_loader().load_data("endpoints")))


@pytest.mark.parametrize(
    ("service", "region"),
    [
        ("sqs", "us-east-1"),
        ("sqs", "eu-west-1"),
        ("sqs", "cn-north-1"),
        ("sqs", "us-gov-west-1"),
        ("sts", "us-east-1"),
        ("sts", "ap-southeast-2"),
    ],
)
async def test_resolves_like_botocore(service: str, region: str) -> None:
    async def endpoint(lean: bool) -> str:
        session = get_session()
        session.set_credentials("x", "y")
        if lean:
            install_lean_resolver(session)
        async with session.create_client(service, region_name=region) as client:
            return str(client.meta.endpoint_url)

    assert await endpoint(lean=True) == await endpoint(lean=False)


def test_the_session_really_uses_the_lean_data() -> None:
    session = get_session()
    install_lean_resolver(session)
    resolver = session._get_internal_component("endpoint_resolver")
    services = {name for p in resolver._endpoint_data["partitions"] for name in p["services"]}
    assert {"sqs", "sts"} <= services <= {"sqs", "sts", "sso", "sso-oidc"}
