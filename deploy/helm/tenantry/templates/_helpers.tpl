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
