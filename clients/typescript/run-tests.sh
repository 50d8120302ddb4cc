#!/usr/bin/env bash
# The TypeScript client's tests, end to end and unattended: installs the package's
# dependencies (buf and protoc-gen-es are local devDependencies: no Buf registry), builds
# it (generating its code from proto/), packs it and installs the tarball into a scratch
# project as a user would, then runs its node:test suite, which starts a fresh
# `tenantry serve` and calls it over gRPC (Node) and gRPC-Web (the gateway's port).
#
#   bash clients/typescript/run-tests.sh
#
# Needs Node.js ≥ 20 and npm; TENANTRY_BIN (default target/debug/tenantry) must exist.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export TENANTRY_BIN=${TENANTRY_BIN:-$root/target/debug/tenantry}
[[ -x $TENANTRY_BIN ]] || { echo "run-tests.sh: no server binary at $TENANTRY_BIN (cargo build -p tenantry, or set TENANTRY_BIN)" >&2; exit 2; }

cd "$here"
npm install --no-audit --no-fund --loglevel=error
npm run --silent build

# What a user gets: the packed tarball, installed into a project of their own.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/tenantry-ts-user.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
tarball=$(npm pack --silent --ignore-scripts --pack-destination "$scratch" | tail -n1)
(
  cd "$scratch"
  npm init -y >/dev/null
  npm pkg set type=module >/dev/null
  npm install --no-audit --no-fund --loglevel=error "./$tarball"
  node --input-type=module -e '
    const { TenantryClient, webTransport, TenantryError, paginate } = await import("@tenantry/client");
    const { grpcTransport } = await import("@tenantry/client/node");
    const { OrganizationService } = await import("@tenantry/client/gen/tenantry/organization/v1/organization_service_pb");
    const client = new TenantryClient({ transport: grpcTransport("http://127.0.0.1:1") });
    if (!client.organizations || !OrganizationService || !TenantryError || !paginate || !webTransport) process.exit(1);
    console.log("run-tests.sh: the packed package imports in a user project");'
)

npm test
