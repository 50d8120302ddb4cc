#!/usr/bin/env bash
# The Python client's tests, end to end and unattended: installs the `tenantry` package
# from clients/python exactly as a user would (pip builds it, generating its gRPC code from
# proto/ with grpcio-tools), then runs its pytest suite, which starts a fresh
# `tenantry serve` (free ports, a new data directory) and walks the main journey through
# the package, directly and through the gateway's port.
#
#   bash tests/python/run.sh [PYTEST ARGS…]
#
# Needs python3 (≥ 3.9, with venv) and PyPI; builds no Rust: TENANTRY_BIN (default
# target/debug/tenantry) must exist. The venv is kept in TENANTRY_PY_VENV (default
# target/python-venv) and reused. The exit status is pytest's.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export TENANTRY_BIN=${TENANTRY_BIN:-$root/target/debug/tenantry}
venv=$(realpath -m "${TENANTRY_PY_VENV:-target/python-venv}")
[[ -x $TENANTRY_BIN ]] || { echo "run.sh: no server binary at $TENANTRY_BIN (cargo build -p tenantry, or set TENANTRY_BIN)" >&2; exit 2; }

if [[ ! -x $venv/bin/python ]]; then
  echo "run.sh: creating the venv $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
py=$venv/bin/python
# A local directory is always rebuilt and reinstalled: the package under test is this tree's.
"$py" -m pip install -q --disable-pip-version-check "./clients/python[test]"

cd clients/python
# The tests are client code as users write it: it type-checks against the installed stubs.
"$py" -m mypy --strict tests/test_client.py tests/test_async.py tests/test_journey.py
"$py" -m pytest -q -p no:cacheprovider "$@"
