{{/* The chart's name. */}}
{{- define "tenantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object's name: the release name when it contains
the chart's name (release `tenantry` gives tenantry-gateway, …). */}}
{{- define "tenantry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels; pass (dict "ctx" $ "component" "rbac") or omit the component. */}}
{{- define "tenantry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantry.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{/* Pod labels: the selector plus part-of. */}}
{{- define "tenantry.podLabels" -}}
{{ include "tenantry.selectorLabels" . }}
app.kubernetes.io/part-of: tenantry
{{- end -}}

{{/* Object labels. */}}
{{- define "tenantry.labels" -}}
{{ include "tenantry.podLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{- define "tenantry.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tenantry.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tenantry.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* What the code fixes, not a setting: the services in order, the gRPC
health name each readiness probe asks about, and who calls whom (from the
peers each service dials; everyone dials identity for token keys). */}}
{{- define "tenantry.topology" -}}
order: [gateway, identity, organization, rbac, billing, audit]
health:
  identity: tenantry.identity.v1.IdentityService
  organization: tenantry.organization.v1.OrganizationService
  rbac: tenantry.authz.v1.AuthorizationService
  billing: tenantry.billing.v1.EntitlementService
  audit: tenantry.audit.v1.AuditService
calls:
  gateway: [identity, organization, rbac, billing, audit]
  identity: [organization, rbac, billing]
  organization: [identity, rbac, billing]
  rbac: [identity, organization, billing]
  billing: [identity, organization, rbac]
  audit: [identity, rbac]
callers:
  gateway: []
  identity: [gateway, organization, rbac, billing, audit]
  organization: [gateway, identity, rbac, billing]
  rbac: [gateway, identity, organization, billing, audit]
  billing: [gateway, identity, organization, rbac]
  audit: [gateway]
mailers: [identity, organization, rbac]
{{- end -}}

{{/* A secretKeyRef env entry: (dict "name" "DATABASE_URL" "key" "database-url" "secret" $secret) */}}
{{- define "tenantry.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{/* The chart's own env entries of one service's container:
(dict "ctx" $ "name" "rbac" "fullname" $fullname "secret" $secret). */}}
{{- define "tenantry.env" -}}
- name: OTEL_SERVICE_NAME
  value: {{ $.fullname }}-{{ $.name }}
{{- /* The edge holds no storage credentials: the gateway alone opens no database and no bus. */}}
{{- if ne $.name "gateway" }}
{{ include "tenantry.secretEnv" (dict "name" "DATABASE_URL" "key" "database-url" "secret" $.secret) }}
{{ include "tenantry.secretEnv" (dict "name" "NATS_URL" "key" "nats-url" "secret" $.secret) }}
{{ include "tenantry.secretEnv" (dict "name" "TENANTRY_PAGE_TOKEN_KEY" "key" "page-token-key" "secret" $.secret) }}
{{ include "tenantry.secretEnv" (dict "name" "TENANTRY_INTERNAL_KEY" "key" "internal-key" "secret" $.secret) }}
{{- end }}
{{- if eq $.name "identity" }}
{{ include "tenantry.secretEnv" (dict "name" "TENANTRY_SEALING_KEYS__PRIMARY" "key" "sealing-key" "secret" $.secret) }}
{{- end }}
{{- if eq $.name "audit" }}
{{ include "tenantry.secretEnv" (dict "name" "TENANTRY_AUDIT__CHECKPOINT_KEY" "key" "audit-checkpoint-key" "secret" $.secret) }}
{{- end }}
{{- /* The gateway reports what it refused at the edge to audit with a key of its own. */}}
{{- if or (eq $.name "gateway") (eq $.name "audit") }}
{{ include "tenantry.secretEnv" (dict "name" "TENANTRY_EDGE_KEY" "key" "edge-key" "secret" $.secret) }}
{{- end }}
{{- if and (eq $.name "gateway") $.ctx.Values.gateway.redis.enabled }}
{{ include "tenantry.secretEnv" (dict "name" "TENANTRY_GATEWAY__REDIS_URL" "key" "redis-url" "secret" $.secret) }}
{{- end }}
{{- if and (eq $.name "billing") $.ctx.Values.billing.stripe.enabled }}
- name: TENANTRY_BILLING__PROVIDERS__STRIPE__KIND
  value: stripe
{{ include "tenantry.secretEnv" (dict "name" "TENANTRY_BILLING__PROVIDERS__STRIPE__WEBHOOK_SECRET" "key" "stripe-webhook-secret" "secret" $.secret) }}
{{- end }}
{{- end -}}

{{/* The user's env entries of one service's container, top-level extraEnv
then services.<name>.extraEnv, a service's entry replacing a top-level one
of the same name: (dict "ctx" $ "name" "rbac" "env" <the chart's entries>).
Fails on a name the chart sets: Kubernetes would keep the later one of two
silently, and server-side apply refuses the pair. */}}
{{- define "tenantry.extraEnv" -}}
{{- $own := (index .ctx.Values.services .name).extraEnv | default list -}}
{{- $ownNames := list -}}
{{- range $own }}{{ $ownNames = append $ownNames .name }}{{ end -}}
{{- $extra := list -}}
{{- range .ctx.Values.extraEnv }}{{ if not (has .name $ownNames) }}{{ $extra = append $extra . }}{{ end }}{{ end -}}
{{- $extra = concat $extra $own -}}
{{- $taken := list -}}
{{- range (.env | fromYamlArray) }}{{ $taken = append $taken .name }}{{ end -}}
{{- $seen := list -}}
{{- range $extra -}}
{{- if has .name $taken -}}
{{- fail (printf "extraEnv: %s is set by the chart for %s (from existingSecret or the values); set it there instead" .name $.name) -}}
{{- end -}}
{{- if has .name $seen -}}
{{- fail (printf "extraEnv: %s is listed twice for %s" .name $.name) -}}
{{- end -}}
{{- $seen = append $seen .name -}}
{{- end -}}
{{- with $extra }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/* Where the pods run: nodeSelector, tolerations, affinity, priorityClassName. */}}
{{- define "tenantry.scheduling" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "tenantry.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tenantry.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}
