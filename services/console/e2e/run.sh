#!/usr/bin/env bash
# The console in a real Chromium, end to end and unattended: installs
# playwright-core (the browser is Debian's chromium, not a download),
# starts `tenantry serve --ephemeral`, runs the journey, stops the server.
#
#   bash services/console/e2e/run.sh
#
# Needs Node.js ≥ 20, npm and /usr/bin/chromium (or CHROMIUM); TENANTRY_BIN
# (default target/debug/tenantry) must exist. Screenshots land in
# target/console-screenshots/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=${TENANTRY_BIN:-$root/target/debug/tenantry}
[[ -x $bin ]] || { echo "run.sh: no server binary at $bin (cargo build -p tenantry, or set TENANTRY_BIN)" >&2; exit 2; }
[[ -x ${CHROMIUM:-/usr/bin/chromium} ]] || { echo "run.sh: no chromium (apt-get install -y chromium)" >&2; exit 2; }

cd "$here"
npm install --no-audit --no-fund --loglevel=error

# The server prints `grpc=… http=… mail=…` once it serves.
coproc SERVER { exec "$bin" serve --ephemeral 2>"${TMPDIR:-/tmp}/tenantry-console-e2e.log"; }
trap 'kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true' EXIT
read -r line <&"${SERVER[0]}"
http=$(sed -n 's/.*http=\([^ ]*\).*/\1/p' <<<"$line")
[[ -n $http ]] || { echo "run.sh: the server said: $line" >&2; exit 1; }
export MAIL_DIR=$(sed -n 's/.*mail=\([^ ]*\).*/\1/p' <<<"$line")

export CONSOLE_URL="http://$http"
export SCREENSHOT_DIR=${SCREENSHOT_DIR:-$root/target/console-screenshots}
npm test
