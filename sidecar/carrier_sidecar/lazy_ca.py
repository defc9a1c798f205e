"""Import the runtime without parsing the system CA bundle for contexts nobody uses.

aiohttp builds two default TLS contexts when it is imported (``aiohttp/connector.py``,
``_SSL_CONTEXT_VERIFIED`` and ``_UNVERIFIED``), and each one parses the whole CA file: ~36 ms of
CPU and ~1 MB apiece with OpenSSL 3.0, together an eighth of the sidecar's start-up. The
sidecar never uses them: the webhook connector brings its own context for https (``webhook_client``) and
aiobotocore builds its own for SQS and STS. So the import runs with ``SSL_CERT_FILE`` pointed
at nothing. Those two contexts then keep only OpenSSL's hashed CA directory, read one
certificate at a time if a handshake ever needs it, so they would still verify, never skip.
The caller's ``SSL_CERT_FILE`` (or its absence) is back before anything else runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

NO_FILE = "/nonexistent/carrier-sidecar/ca-file"


@contextmanager
def ca_file_hidden() -> Iterator[None]:
    """While the body runs, OpenSSL finds no default CA file; restored even on error."""
    before = os.environ.get("SSL_CERT_FILE")
    os.environ["SSL_CERT_FILE"] = NO_FILE
    try:
        yield
    finally:
        if before is None:
            del os.environ["SSL_CERT_FILE"]
        else:
            os.environ["SSL_CERT_FILE"] = before
