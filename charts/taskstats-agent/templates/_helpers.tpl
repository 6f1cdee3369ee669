{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "taskstats-agent.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "taskstats-agent.fullname" -}}
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

{{- define "taskstats-agent.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "taskstats-agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "taskstats-agent.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "taskstats-agent.labels" -}}
helm.sh/chart: {{ include "taskstats-agent.chart" . }}
{{ include "taskstats-agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "taskstats-agent.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "taskstats-agent.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "taskstats-agent.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Kubernetes API lookups of the k8sattributes processor are on. */}}
{{- define "taskstats-agent.apiLookups" -}}
{{- if and .Values.k8sAttributes.enabled .Values.k8sAttributes.api.enabled }}true{{ end }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES: k8s.cluster.name from clusterName, then resourceAttributes, sorted. */}}
{{- define "taskstats-agent.resourceAttributes" -}}
{{- $attrs := deepCopy (.Values.resourceAttributes | default dict) }}
{{- if .Values.clusterName }}
{{- $_ := set $attrs "k8s.cluster.name" .Values.clusterName }}
{{- end }}
{{- $pairs := list }}
{{- range $k := keys $attrs | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%v" $k (get $attrs $k)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/* The environment variable that carries a Secret-backed header: OTLP_HEADER_<NAME>. */}}
{{- define "taskstats-agent.headerEnvName" -}}
{{- printf "OTLP_HEADER_%s" (regexReplaceAll "[^A-Za-z0-9]" . "_" | upper) }}
{{- end }}

{{- define "taskstats-agent.priorityClassName" -}}
{{- if .Values.priorityClassName }}
{{- .Values.priorityClassName }}
{{- else if .Values.priorityClass.create }}
{{- include "taskstats-agent.fullname" . }}
{{- end }}
{{- end }}

{{/*
The agent configuration the chart generates from its first-class values. The free-form
`config` value is merged over it (see taskstats-agent.config).
*/}}
{{- define "taskstats-agent.generatedConfig" -}}
{{- $otlp := .Values.otlp }}
{{- $k8s := .Values.k8sAttributes }}
{{- $api := include "taskstats-agent.apiLookups" . }}
exporters:
  otlp:
    {{- if $otlp.endpoint }}
    endpoint: {{ $otlp.endpoint | quote }}
    {{- end }}
    {{- if $otlp.metricsEndpoint }}
    metrics_endpoint: {{ $otlp.metricsEndpoint | quote }}
    {{- end }}
    protocol: {{ $otlp.protocol | quote }}
    compression: {{ $otlp.compression | quote }}
    timeout: {{ $otlp.timeout | quote }}
    temporality: {{ $otlp.temporality | quote }}
    {{- if or $otlp.headers $otlp.headersFromSecrets }}
    headers:
      {{- range $name, $value := $otlp.headers }}
      {{ $name | quote }}: {{ $value | quote }}
      {{- end }}
      {{- range $otlp.headersFromSecrets }}
      {{ .name | quote }}: {{ printf "${env:%s}" (include "taskstats-agent.headerEnvName" .name) | quote }}
      {{- end }}
    {{- end }}
{{- if $k8s.enabled }}
processors:
  k8sattributes:
    {{- if $api }}
    auth_type: serviceAccount
    filter:
      node_from_env_var: K8S_NODE_NAME
    {{- else }}
    # No API lookups: only what the cgroup path tells.
    auth_type: none
    {{- end }}
    {{- if or $k8s.metadata (not $api) $k8s.labels $k8s.annotations }}
    extract:
      {{- if $k8s.metadata }}
      metadata: {{ toYaml $k8s.metadata | nindent 8 }}
      {{- else if not $api }}
      metadata: [container.id, k8s.pod.uid, k8s.pod.qos_class]
      {{- end }}
      {{- if $k8s.labels }}
      labels: {{ toYaml $k8s.labels | nindent 8 }}
      {{- end }}
      {{- if $k8s.annotations }}
      annotations: {{ toYaml $k8s.annotations | nindent 8 }}
      {{- end }}
    {{- end }}
{{- end }}
service:
  telemetry:
    logs:
      level: {{ .Values.telemetry.logLevel | quote }}
      encoding: {{ .Values.telemetry.logEncoding | quote }}
    metrics:
      address: {{ printf "%s:%v" .Values.telemetry.host .Values.telemetry.port | quote }}
  pipelines:
    metrics:
      receivers: [taskstats]
      processors: [{{ if $k8s.enabled }}k8sattributes{{ end }}]
      exporters: [otlp]
{{- end }}

{{/* The agent configuration: the generated one with the `config` value merged over it. */}}
{{- define "taskstats-agent.config" -}}
{{- $generated := include "taskstats-agent.generatedConfig" . | fromYaml }}
{{- $config := mustMergeOverwrite $generated (deepCopy (.Values.config | default dict)) }}
{{- tpl (toYaml $config) . }}
{{- end }}

{{/* The probes connect to 127.0.0.1 when the telemetry endpoint listens on loopback only. */}}
{{- define "taskstats-agent.probeHost" -}}
{{- if or (eq (toString .Values.telemetry.host) "127.0.0.1") (eq (toString .Values.telemetry.host) "localhost") (eq (toString .Values.telemetry.host) "[::1]") }}
{{- if eq (toString .Values.telemetry.host) "[::1]" }}::1{{ else }}127.0.0.1{{ end }}
{{- end }}
{{- end }}
