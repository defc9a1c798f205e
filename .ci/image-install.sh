#!/bin/sh
# The install step of both Dockerfiles, also run by tests/chart/test_images.py into a fresh venv:
#   image-install.sh EXTRA PREFIX [SOURCE]
# Installs carrier-k8s[EXTRA] from SOURCE into a pip-less venv at PREFIX, drops what is never
# imported (botocore service models other than sqs and sts -- sts serves IRSA web-identity
# credentials --, and the kubernetes client's unused asyncio copy, 68 MB), and precompiles every
# module (unchecked-hash: a read-only root never needs to write or re-validate bytecode).
set -eu
extra="$1"
prefix="$2"
src="${3:-.}"
python="${PYTHON:-python3}"

"$python" -m venv --without-pip "$prefix"
"$python" -m pip --python "$prefix/bin/python" install --no-compile --quiet "$src[$extra]"
"$prefix/bin/python" - <<'PY'
import pathlib, shutil
import botocore

keep = {"sqs", "sts"}
data = pathlib.Path(botocore.__file__).parent / "data"
for service in data.iterdir():
    if service.is_dir() and service.name not in keep:
        shutil.rmtree(service)
# kubernetes (operator extra, for kubeconfig only) ships an unused asyncio client twin.
shutil.rmtree(data.parent.parent / "kubernetes" / "aio", ignore_errors=True)
PY
find "$prefix" -depth -type d -name __pycache__ -exec rm -rf {} +
"$prefix/bin/python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$prefix/lib"
