"""When AWS credentials cannot be had: bounded, and blamed on the right thing.

With web identity (IRSA: ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``) botocore reads the
token file and exchanges it at STS before the first SQS call. Its failures used to surface as
SQS's ("cannot reach SQS ... FileNotFoundError", "SQS refused queue ...: InvalidIdentityToken"),
and an unreachable STS took 26 s (60 s botocore timeouts, its own retries) to give up. Here:

* :data:`PROVIDER_CLIENT_CONFIG` becomes the session's default client config, which botocore
  merges into the clients its credential providers create (STS, SSO): short connect and read
  timeouts and one attempt per call, so the sidecar's own retry schedule and give-up time hold
  for STS too. The SQS client's explicit config still wins for SQS.
* :func:`describe` turns a credential failure into the one start-up line: the token file and
  its path, STS and the endpoint it used, or the provider.
"""

from __future__ import annotations

import os
from typing import Any, Final

from .aws import error_class, error_code, error_message, short_error

STS_CONNECT_TIMEOUT: Final = 2.0
STS_READ_TIMEOUT: Final = 3.0


def provider_client_config() -> Any:
    """The session-wide default config (lazy import: keep ``--help`` light)."""
    from aiobotocore.config import AioConfig

    return AioConfig(
        connect_timeout=STS_CONNECT_TIMEOUT,
        read_timeout=STS_READ_TIMEOUT,
        retries={"mode": "standard", "total_max_attempts": 1},
    )


def provider_name(environ: dict[str, str] | None = None) -> str:
    """Which credential provider botocore's chain will use, as far as the environment tells."""
    env = os.environ if environ is None else environ
    if env.get("AWS_ACCESS_KEY_ID"):
        return "environment variables (AWS_ACCESS_KEY_ID)"
    if env.get("AWS_WEB_IDENTITY_TOKEN_FILE") and env.get("AWS_ROLE_ARN"):
        return f"web identity (AWS_ROLE_ARN {env['AWS_ROLE_ARN']})"
    if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") or env.get(
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
    ):
        return "the container credentials endpoint (EKS Pod Identity / ECS)"
    if env.get("AWS_PROFILE"):
        return f"profile {env['AWS_PROFILE']!r}"
    return "the default chain (shared files, instance metadata)"


def _file_error(exc: BaseException) -> OSError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.filename is not None:
            return current
        current = current.__cause__ or current.__context__
    return None


def describe(exc: BaseException, sts_endpoint: str | None) -> str:
    """One line naming what failed while getting credentials, and where."""
    provider = provider_name()
    token_file = os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
    role = os.environ.get("AWS_ROLE_ARN", "?")
    sts = sts_endpoint or "STS"
    missing = _file_error(exc)
    if missing is not None:
        variable = "AWS_WEB_IDENTITY_TOKEN_FILE: " if missing.filename == token_file else ""
        return (
            f"{variable}cannot read the web identity token file {missing.filename!r}: "
            f"{missing.strerror} (credential provider: {provider})"
        )
    code = error_code(exc)
    if code is not None and token_file:
        return (
            f"STS at {sts} refused the web identity token from {token_file!r} for role "
            f"{role} ({code}): {error_message(exc)}"
        )
    if type(exc).__name__ in {"NoCredentialsError", "PartialCredentialsError"}:
        return "no AWS credentials found (env, shared files, web identity, instance metadata)"
    if error_class(exc) == "credentials" and token_file:
        return (
            f"cannot reach STS at {sts} to exchange the web identity token for role {role}: "
            f"{short_error(exc)}"
        )
    return f"AWS credentials could not be obtained from {provider}: {short_error(exc)}"


def worth_retrying(exc: BaseException) -> bool:
    """A credential failure that may pass by itself: STS unreachable or timing out. A missing
    token file, a refused token or no credentials at all will not."""
    if _file_error(exc) is not None or error_code(exc) is not None:
        return False
    return type(exc).__name__ not in {"NoCredentialsError", "PartialCredentialsError"}


async def sts_endpoint(session: Any, region: str | None) -> str | None:
    """The STS endpoint botocore resolves for this session (AWS_ENDPOINT_URL_STS,
    AWS_STS_REGIONAL_ENDPOINTS, the region): the one the web identity provider called."""
    try:
        async with session.create_client("sts", region_name=region) as client:
            return str(client.meta.endpoint_url)
    except Exception:
        return None
