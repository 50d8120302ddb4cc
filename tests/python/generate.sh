#!/usr/bin/env bash
# Generates the Python client of every tenantry.* package (messages, .pyi stubs, gRPC
# stubs) from proto/ into OUT_DIR, with grpcio-tools (no network, no buf):
#
#   tests/python/generate.sh OUT_DIR        # PYTHON=... picks the interpreter
#
# proto/google (vendored googleapis) is on the include path for resolution only: the
# generated code imports google.api / google.rpc from googleapis-common-protos, whose
# copies are the same files.
set -euo pipefail

out=${1:?usage: generate.sh OUT_DIR}
python=${PYTHON:-python3}
root=$(cd "$(dirname "$0")/../.." && pwd)

mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
mapfile -t protos < <(find proto/tenantry -name '*.proto' | sort)
# grpc_tools.protoc adds its bundled google/protobuf/*.proto to the include path itself.
"$python" -m grpc_tools.protoc -I proto \
    --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" "${protos[@]}"

# Regular packages, so that `import tenantry.identity.v1.identity_service_pb2` works
# whatever else on sys.path has a `tenantry` directory.
(cd "$out" && find tenantry -type d -exec touch {}/__init__.py \;)
echo "generated the client of ${#protos[@]} proto files into $out"
