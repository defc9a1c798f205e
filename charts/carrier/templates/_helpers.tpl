{{/* Chart name, overridable. */}}
{{- define "carrier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped base name: "<release>-<chart>", or the release name when it holds the chart name. */}}
{{- define "carrier.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator's Deployment, Service and default ServiceAccount name. */}}
{{- define "carrier.operator" -}}
{{- printf "%s-operator" (include "carrier.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "carrier.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "carrier.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: carrier
{{- end }}

{{- define "carrier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "carrier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "carrier.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "carrier.operator" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "carrier.certSecret" -}}
{{- default (printf "%s-webhook-tls" (include "carrier.operator" .)) .Values.tls.secretName }}
{{- end }}

{{- define "carrier.image" -}}
{{- printf "%s:%s" .repository (default .appVersion .tag) }}
{{- end }}

{{/* Leader election (a Lease) is on with several replicas unless forced. */}}
{{- define "carrier.leaderElection" -}}
{{- if eq (toString .Values.operator.leaderElection) "auto" }}{{ gt (int .Values.replicaCount) 1 }}{{ else }}{{ .Values.operator.leaderElection }}{{ end }}
{{- end }}

{{/* The chart's own CA Certificate (and its Secret) in cert-manager mode without an issuerRef. */}}
{{- define "carrier.caCertificate" -}}
{{- printf "%s-ca" (include "carrier.operator" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
"namespace/name" of the Certificate whose CA cert-manager injects (cert-manager.io/inject-ca-from):
the chart's CA Certificate, which leaf renewals never change; with an issuerRef, the serving
Certificate (its ca.crt is that issuer's CA).
*/}}
{{- define "carrier.certificateRef" -}}
{{- if .Values.certManager.issuerRef }}
{{- printf "%s/%s" .Release.Namespace (include "carrier.operator" .) }}
{{- else }}
{{- printf "%s/%s" .Release.Namespace (include "carrier.caCertificate" .) }}
{{- end }}
{{- end }}

{{/* Namespaces the webhooks see: the watched ones (if any), never the excluded ones. */}}
{{- define "carrier.namespaceSelector" -}}
{{- $excluded := concat (list .Release.Namespace) .Values.webhook.excludeNamespaces | uniq -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ toJson $excluded }}
{{- with .Values.operator.namespaces }}
  - key: kubernetes.io/metadata.name
    operator: In
    values: {{ toJson . }}
{{- end }}
{{- end }}
