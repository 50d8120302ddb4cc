#!/usr/bin/env bash
# The polyglot proof (issue #8), end to end and unattended: a Python client generated
# from proto/ walks the main journey against a fresh `tenantry serve`.
#
#   bash tests/python/run.sh
#
# Needs python3 (≥ 3.9, with venv) and PyPI; builds nothing: TENANTRY_BIN (default
# target/debug/tenantry) must exist. The venv is kept in TENANTRY_PY_VENV (default
# target/python-venv) and reused. The server gets a new data directory and free ports, and
# is stopped whatever happens. The exit status is the journey's.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bin=${TENANTRY_BIN:-target/debug/tenantry}
venv=${TENANTRY_PY_VENV:-target/python-venv}
[[ -x $bin ]] || { echo "run.sh: no server binary at $bin (cargo build -p tenantry, or set TENANTRY_BIN)" >&2; exit 2; }

if [[ ! -x $venv/bin/python ]]; then
  echo "run.sh: creating the venv $venv"
  "${PYTHON:-python3}" -m venv "$venv"
fi
py=$venv/bin/python
"$py" -m pip install -q --disable-pip-version-check -r tests/python/requirements.txt

work=$(mktemp -d "${TMPDIR:-/tmp}/tenantry-python.XXXXXX")
server=
stop() {
  status=$?
  if [[ -n $server ]] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [[ $status -ne 0 && -f $work/server.log ]]; then
    echo "run.sh: failed ($status); the server log's tail ($work/server.log):" >&2
    tail -n 40 "$work/server.log" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap stop EXIT
trap 'exit 130' INT TERM

PYTHON=$py bash tests/python/generate.sh "$work/gen"

# Two free ports, asked of the kernel (port 0); released just before the server binds them.
read -r grpc_port http_port < <("$py" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
[[ -n ${http_port:-} ]] || { echo "run.sh: found no free ports" >&2; exit 2; }
grpc_addr=127.0.0.1:$grpc_port
http_addr=127.0.0.1:$http_port
data=$work/data

echo "run.sh: $bin serve --grpc-addr $grpc_addr --http-addr $http_addr --data-dir $data"
# Embedded storage and the in-process bus, whatever the caller's environment says.
env -u DATABASE_URL -u NATS_URL -u TENANTRY_CONFIG \
  "$bin" serve --grpc-addr "$grpc_addr" --http-addr "$http_addr" --data-dir "$data" \
  </dev/null >"$work/server.log" 2>&1 &
server=$!

"$py" - "$http_addr" "$server" <<'EOF'
import os, sys, time, urllib.request
addr, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("run.sh: the server exited during start-up")
    try:
        with urllib.request.urlopen(f"http://{addr}/readyz", timeout=2) as response:
            if response.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit("run.sh: the server was not ready within 120 s")
EOF
echo "run.sh: server ready"

echo "run.sh: the journey against the gRPC port"
"$py" tests/python/journey.py --addr "$grpc_addr" --data-dir "$data" --gen "$work/gen"
# The same client through the gateway's HTTP port: plain gRPC (HTTP/2)
# passes the edge (token checks, rate limits) to the same services.
echo "run.sh: the journey through the gateway's port"
"$py" tests/python/journey.py --addr "$http_addr" --data-dir "$data" --gen "$work/gen"
