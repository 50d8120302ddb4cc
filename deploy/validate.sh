#!/usr/bin/env bash
# Validates everything under deploy/ without a cluster, Docker or network
# (once its venv exists): yamllint; every kustomize overlay rendered and
# checked with `kubernetes-validate --strict`; the Helm chart linted,
# rendered and checked the same way, compared object by object with the
# kustomize production overlay, rendered with every option on (each option
# looked for where it belongs), refusing misspelled or conflicting values,
# its README's values table checked against values.yaml; the alert rules and
# the dashboard checked against the metrics the code records (and with
# promtool when installed).
#
#   bash deploy/validate.sh            # no stdin needed; exits non-zero on any failure
#   bash deploy/validate.sh --smoke    # also run the rendered production overlay here
#
# --smoke (or DEPLOY_SMOKE=1) needs a built binary (TENANTRY_BIN, else
# target/release/tenantry or target/debug/tenantry; this script never builds),
# PostgreSQL (DEPLOY_SMOKE_ADMIN_URL, default postgres://postgres@127.0.0.1:5432/postgres;
# a scratch database is created and dropped), NATS (DEPLOY_SMOKE_NATS_URL,
# default nats://127.0.0.1:4222) and Redis (DEPLOY_SMOKE_REDIS_URL, default
# redis://127.0.0.1:6379).
#
# Tools: a venv at $DEPLOY_VENV (default target/deploy-venv, or under $TMPDIR
# when target/ is not writable) with the pins of deploy/requirements-*.txt;
# `kubectl` (for `kubectl kustomize`); `promtool` if present.
# Kubernetes versions checked: $K8S_VERSIONS (default "1.30.0 1.33.0").
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SMOKE=${DEPLOY_SMOKE:-0}
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

K8S_VERSIONS=${K8S_VERSIONS:-"1.30.0 1.33.0"}
if [ -z "${DEPLOY_VENV:-}" ]; then
  if mkdir -p target 2>/dev/null && [ -w target ]; then
    DEPLOY_VENV=$ROOT/target/deploy-venv
  else
    DEPLOY_VENV=${TMPDIR:-/tmp}/tenantry-deploy-venv
  fi
fi
if [ -w target ]; then OUT=$ROOT/target/deploy-check; else OUT=${TMPDIR:-/tmp}/tenantry-deploy-check; fi
rm -rf "$OUT" && mkdir -p "$OUT"

passed=0
failed=0
failures=()
step() { printf '\n==> %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf 'ok: %s\n' "$*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); printf 'FAILED: %s\n' "$*"; }
# check NAME COMMAND...: runs the command, counts the result.
check() {
  local name=$1
  shift
  if "$@"; then ok "$name"; else fail "$name"; fi
}

# --- tools ---------------------------------------------------------------
step "tools"
requirements=(deploy/requirements-validate.txt)
[ "$SMOKE" = 1 ] && requirements+=(deploy/requirements-smoke.txt)
wanted=$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)
if [ ! -x "$DEPLOY_VENV/bin/python" ] || [ "$(cat "$DEPLOY_VENV/.requirements" 2>/dev/null)" != "$wanted" ]; then
  # A venv with the same pins is reused as is: no network needed then.
  if [ ! -x "$DEPLOY_VENV/bin/python" ]; then python3 -m venv "$DEPLOY_VENV" || exit 1; fi
  for file in "${requirements[@]}"; do
    "$DEPLOY_VENV/bin/pip" install --disable-pip-version-check -q -r "$file" </dev/null || {
      echo "cannot install the pins of $file into $DEPLOY_VENV" >&2
      exit 1
    }
  done
  echo "$wanted" > "$DEPLOY_VENV/.requirements"
fi
PY=$DEPLOY_VENV/bin/python
if ! command -v kubectl >/dev/null; then
  echo "kubectl is needed for \`kubectl kustomize\`" >&2
  exit 1
fi
echo "venv: $DEPLOY_VENV ($("$DEPLOY_VENV/bin/kubernetes-validate" --version), yamllint $("$DEPLOY_VENV/bin/yamllint" --version | cut -d' ' -f2), helm SDK $("$PY" -c 'import helm_python as h; print(h.helm_sdk_version())'))"
echo "kubectl: $(kubectl version --client 2>/dev/null | head -n1); Kubernetes versions: $K8S_VERSIONS"
PROMTOOL=$(command -v promtool || true)

# kube_validate FILE: kubernetes-validate --strict for every version.
kube_validate() {
  local file=$1 version
  for version in $K8S_VERSIONS; do
    "$DEPLOY_VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$file" || return 1
  done
}

# --- YAML ----------------------------------------------------------------
step "yamllint"
check "yamllint deploy/" "$DEPLOY_VENV/bin/yamllint" --strict -c deploy/.yamllint deploy

# --- image -------------------------------------------------------------------
step "Dockerfile and .dockerignore"
dockerfile_check() {
  local ok=0 path
  grep -q '^FROM rust:1.95-bookworm AS builder' Dockerfile || { echo "Dockerfile: builder stage missing"; ok=1; }
  grep -q '^FROM gcr.io/distroless/cc-debian12:nonroot' Dockerfile || { echo "Dockerfile: runtime stage missing"; ok=1; }
  grep -q 'cargo build --release --locked -p tenantry' Dockerfile || { echo "Dockerfile: build command missing"; ok=1; }
  # Everything the workspace build reads must reach the build context.
  for path in Cargo.toml Cargo.lock proto shared services tests; do
    if grep -qxE "/?$path/?" .dockerignore; then echo ".dockerignore excludes $path"; ok=1; fi
  done
  return $ok
}
check "Dockerfile and .dockerignore" dockerfile_check

# --- kustomize -------------------------------------------------------------
step "kustomize overlays → kubernetes-validate --strict"
for overlay in dev production; do
  check "kubectl kustomize overlays/$overlay" \
    sh -c "kubectl kustomize deploy/kustomize/overlays/$overlay > '$OUT/kustomize-$overlay.yaml'"
  check "kubernetes-validate overlays/$overlay" kube_validate "$OUT/kustomize-$overlay.yaml"
done
# The ServiceMonitor component, on top of production (a CRD: only a warning).
mkdir -p "$OUT/with-servicemonitor"
rel=$(realpath --relative-to="$OUT/with-servicemonitor" "$ROOT/deploy/kustomize")
cat > "$OUT/with-servicemonitor/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $rel/overlays/production
components:
  - $rel/components/servicemonitor
YAML
check "kubectl kustomize production + components/servicemonitor" \
  sh -c "kubectl kustomize '$OUT/with-servicemonitor' > '$OUT/kustomize-production-servicemonitor.yaml'"
check "kubernetes-validate production + servicemonitor" kube_validate "$OUT/kustomize-production-servicemonitor.yaml"
check "kubectl kustomize observability/otel-collector" \
  sh -c "kubectl kustomize deploy/observability/otel-collector > '$OUT/otel-collector.yaml'"
check "kubernetes-validate otel-collector" kube_validate "$OUT/otel-collector.yaml"

# --- Helm ----------------------------------------------------------------
step "Helm chart: lint, render → kubernetes-validate --strict, compare with kustomize"
CHART=deploy/helm/tenantry
PRODUCTION=$CHART/ci/production-values.yaml
first_version=${K8S_VERSIONS%% *}
check "helm lint --strict (default values)" "$PY" deploy/validate.py lint-helm "$CHART" --kube-version "v$first_version"
check "helm lint --strict (production values)" "$PY" deploy/validate.py lint-helm "$CHART" "$PRODUCTION" --kube-version "v$first_version"
render() { # NAME [VALUES…] [--set-json JSON]
  local name=$1
  shift
  "$PY" deploy/validate.py render-helm "$CHART" "$@" --out "$OUT/helm-$name.yaml"
}
check "helm render (default values)" render default
check "kubernetes-validate helm (default values)" kube_validate "$OUT/helm-default.yaml"
check "helm render (production values)" render production "$PRODUCTION"
check "kubernetes-validate helm (production values)" kube_validate "$OUT/helm-production.yaml"
check "helm render (no autoscaling, no policies, no migration)" render minimal \
  --set-json '{"networkPolicy":{"enabled":false},"migration":{"enabled":false},"services":{"gateway":{"hpa":{"enabled":false},"pdb":{"enabled":false}},"rbac":{"hpa":{"enabled":false}}}}'
check "kubernetes-validate helm (minimal)" kube_validate "$OUT/helm-minimal.yaml"
check "helm render (production values + serviceMonitor)" render production-servicemonitor "$PRODUCTION" \
  --set-json '{"serviceMonitor":{"enabled":true}}'
check "kubernetes-validate helm (production + serviceMonitor)" kube_validate "$OUT/helm-production-servicemonitor.yaml"
# Every optional setting on (deploy/helm/tenantry/ci/all-options-values.yaml,
# on top of production): rendered, validated, and each setting found where
# it belongs. The HTTPRoute is a CRD kubernetes-validate only warns about:
# check-options checks it structurally.
ALL_OPTIONS=$CHART/ci/all-options-values.yaml
check "helm lint --strict (all options)" "$PY" deploy/validate.py lint-helm "$CHART" "$PRODUCTION" "$ALL_OPTIONS" --kube-version "v$first_version"
check "helm render (all options)" render all-options "$PRODUCTION" "$ALL_OPTIONS"
check "kubernetes-validate helm (all options)" kube_validate "$OUT/helm-all-options.yaml"
check "helm (all options): every option landed, HTTPRoute well-formed" \
  "$PY" deploy/validate.py check-options "$CHART" "$OUT/helm-all-options.yaml" "$PRODUCTION" "$ALL_OPTIONS"
# What must not render: a misspelled key (the schema is strict), an extraEnv
# entry that is not an EnvVar, a name the chart sets, an edge without a target.
reject() { # EXPECTED [--set EXPR | --set-json JSON]…
  local expected=$1
  shift
  "$PY" deploy/validate.py reject-helm "$CHART" "$@" --expect "$expected"
}
check "helm refuses --set nodeSelectr.x=y" reject "'nodeSelectr' not allowed" --set nodeSelectr.x=y
check "helm refuses --set ingress.hostz[0].host=x" reject "'hostz' not allowed" --set 'ingress.hostz[0].host=x'
check "helm refuses an extraEnv entry with a misspelled secretKeyRef" reject "'secretKeyRefs' not allowed" \
  --set-json '{"extraEnv":[{"name":"X","valueFrom":{"secretKeyRefs":{"name":"s","key":"k"}}}]}'
check "helm refuses extraEnv naming a variable the chart sets" reject "DATABASE_URL is set by the chart" \
  --set-json '{"services":{"rbac":{"extraEnv":[{"name":"DATABASE_URL","value":"postgres://x"}]}}}'
check "helm refuses an Ingress without hosts" reject "minItems" --set ingress.enabled=true
check "helm refuses an HTTPRoute without parentRefs" reject "minItems" --set httpRoute.enabled=true
check "chart README.md documents every value, with its default" "$PY" deploy/validate.py check-helm-readme "$CHART"
check "helm (production values) = kustomize overlays/production" \
  "$PY" deploy/validate.py compare "$OUT/kustomize-production.yaml" "$OUT/helm-production.yaml"
check "helm (+ serviceMonitor) = kustomize production + components/servicemonitor" \
  sh -c "'$PY' deploy/validate.py compare '$OUT/kustomize-production-servicemonitor.yaml' '$OUT/helm-production-servicemonitor.yaml' | tail -n 1"

# --- observability ---------------------------------------------------------
step "observability: metrics exist, rules and dashboard"
check "dashboard is JSON" "$PY" -m json.tool deploy/observability/grafana/tenantry-dashboard.json /dev/null
if [ -n "$PROMTOOL" ]; then
  check "rules and dashboard use real metrics (queries parsed by promtool)" \
    "$PY" deploy/validate.py check-observability . --promtool "$PROMTOOL"
  check "promtool check rules" "$PROMTOOL" check rules deploy/observability/prometheus/tenantry.rules.yaml
  check "promtool test rules" sh -c "cd deploy/observability/prometheus && '$PROMTOOL' test rules tenantry.rules.test.yaml"
else
  check "rules and dashboard use real metrics" "$PY" deploy/validate.py check-observability .
  echo "SKIP: promtool is not installed (apt-get install prometheus): rules not parsed or unit-tested"
fi

# --- smoke -----------------------------------------------------------------
if [ "$SMOKE" = 1 ]; then
  step "smoke: the production overlay's processes on this machine"
  BIN=${TENANTRY_BIN:-}
  if [ -z "$BIN" ]; then
    for candidate in target/release/tenantry target/debug/tenantry; do
      if [ -x "$candidate" ]; then BIN=$candidate; break; fi
    done
  fi
  if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
    fail "smoke: no tenantry binary (set TENANTRY_BIN or build target/release/tenantry)"
  else
    # A copy, so that a rebuild during the run does not swap it.
    cp "$BIN" "$OUT/tenantry"
    admin=${DEPLOY_SMOKE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    db="tenantry_deploy_smoke_$$"
    # As deploy/README.md asks: a role that owns the database and is neither
    # a superuser nor BYPASSRLS (production refuses one that is).
    role=tenantry_deploy_smoke
    server=${admin#*://}; server=${server#*@}; server=${server%%/*}
    psql "$admin" -qc "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role') THEN
          CREATE ROLE $role LOGIN NOSUPERUSER NOBYPASSRLS;
        END IF; END \$\$" >/dev/null 2>&1
    if psql "$admin" -qc "CREATE DATABASE $db OWNER $role" >/dev/null; then
      check "smoke: migrate, probes, sign-up through the gateway, SIGTERM" \
        "$PY" deploy/smoke.py "$OUT/kustomize-production.yaml" --bin "$OUT/tenantry" \
        --secret "database-url=${admin%%://*}://$role@$server/$db" \
        --secret "nats-url=${DEPLOY_SMOKE_NATS_URL:-nats://127.0.0.1:4222}" \
        --secret "redis-url=${DEPLOY_SMOKE_REDIS_URL:-redis://127.0.0.1:6379}" \
        --secret "page-token-key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
        --secret "internal-key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
        --secret "edge-key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
        --secret "sealing-key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
        --secret "audit-checkpoint-key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" \
        --secret "stripe-webhook-secret=whsec_smoke_0123456789"
      psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    else
      fail "smoke: cannot create a scratch database through $admin"
    fi
  fi
fi

printf '\n'
if [ "$failed" -gt 0 ]; then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "deploy validation: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
