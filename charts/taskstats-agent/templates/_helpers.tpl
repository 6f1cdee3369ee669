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
{{- $api := and $k8s.enabled $k8s.api.enabled }}
{{- $tls := $otlp.tls | default dict }}
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
    {{- if or ($tls.ca | default dict).secretName ($tls.client | default dict).secretName }}
    tls:
      {{- if ($tls.ca | default dict).secretName }}
      ca_file: {{ include "taskstats-agent.tlsDir" . }}/ca/ca.crt
      {{- end }}
      {{- if ($tls.client | default dict).secretName }}
      cert_file: {{ include "taskstats-agent.tlsDir" . }}/client/tls.crt
      key_file: {{ include "taskstats-agent.tlsDir" . }}/client/tls.key
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
    {{- if .Values.events.enabled }}
    # Process events (exec, exit) as log records.
    logs:
      receivers: [taskstats]
      processors: {{ toJson (.Values.events.processors | default list) }}
      exporters: {{ toJson .Values.events.exporters }}
    {{- end }}
{{- end }}


{{/* Where the Secret-backed TLS files of the otlp exporter are mounted. */}}
{{- define "taskstats-agent.tlsDir" -}}
/etc/taskstats-agent-tls
{{- end }}

{{/*
The agent configuration: the generated one with the `config` value merged over it
(mustMergeOverwrite: maps merge key by key, any other value of `config` replaces the generated
one, lists included; README "config" tells exactly what an empty list or null does). Rendered
as YAML without template evaluation: a "{{" in a value reaches the agent as written.
*/}}
{{- define "taskstats-agent.config" -}}
{{- $generated := include "taskstats-agent.generatedConfig" . | fromYaml }}
{{- $config := mustMergeOverwrite $generated (deepCopy (.Values.config | default dict)) }}
{{- toYaml $config }}
{{- end }}

{{/* Names of the components of `kind` (receivers, processors, exporters) used by any pipeline. */}}
{{- define "taskstats-agent.usedComponents" -}}
{{- $cfg := index . 0 }}
{{- $kind := index . 1 }}
{{- $used := list }}
{{- range $id, $p := (($cfg.service | default dict).pipelines | default dict) }}
{{- range (index ($p | default dict) $kind | default list) }}
{{- $used = append $used (toString .) }}
{{- end }}
{{- end }}
{{- toJson ($used | uniq | sortAlpha) }}
{{- end }}

{{/*
"true" when a pipeline uses a k8sattributes processor that talks to the Kubernetes API (auth_type
auto, the processor's default, or serviceAccount): that needs the RBAC objects and the token.
auth_type none reads cgroup paths only; kubeConfig brings its own credentials.
*/}}
{{- define "taskstats-agent.apiLookups" -}}
{{- $cfg := include "taskstats-agent.config" . | fromYaml }}
{{- $lookups := false }}
{{- range (include "taskstats-agent.usedComponents" (list $cfg "processors") | fromJsonArray) }}
{{- if regexMatch "^k8sattributes(/.*)?$" . }}
{{- $p := index ($cfg.processors | default dict) . | default dict }}
{{- if has (toString ($p.auth_type | default "auto")) (list "auto" "serviceAccount") }}
{{- $lookups = true }}
{{- end }}
{{- end }}
{{- end }}
{{- if $lookups }}true{{ end }}
{{- end }}

{{/*
The telemetry endpoint as the agent will listen: {"address", "host", "port", "probeHost",
"scrapable"} as JSON, or {} when service.telemetry.metrics.address is "" or null (disabled).
An absent address is the agent's default, 127.0.0.1:8888. probeHost is what the kubelet's probes
connect to: "" for the pod IP (= the node's IP with hostNetwork), else a literal address.
*/}}
{{- define "taskstats-agent.telemetryEndpoint" -}}
{{- $cfg := include "taskstats-agent.config" . | fromYaml }}
{{- $metrics := (($cfg.service | default dict).telemetry | default dict).metrics | default dict }}
{{- $address := "127.0.0.1:8888" }}
{{- if hasKey $metrics "address" }}{{ $address = $metrics.address | default "" | toString }}{{ end }}
{{- if $address }}
{{- include "taskstats-agent.listenAddress" (list $address "service.telemetry.metrics.address") }}
{{- else }}{}
{{- end }}
{{- end }}

{{/*
A host:port listen address (telemetry endpoint, prometheus exporter) parsed for the pod spec:
{"address", "host", "port", "probeHost", "scrapable"}. Fails, naming the config key, for what the
chart cannot turn into a port of the pod.
*/}}
{{- define "taskstats-agent.listenAddress" -}}
{{- $address := index . 0 }}
{{- $where := index . 1 }}
{{- $m := regexFind ":[0-9]+$" $address }}
{{- if not $m }}
{{- fail (printf "%s: %q has no numeric port: the chart declares the port in the pod spec (probes, host-port conflicts, PodMonitor), so write host:port with a literal port" $where $address) }}
{{- end }}
{{- $port := trimPrefix ":" $m | int }}
{{- $host := trimSuffix $m $address }}
{{- $bare := trimPrefix "[" (trimSuffix "]" $host) }}
{{- $probeHost := "" }}
{{- if has $bare (list "127.0.0.1" "localhost") }}{{ $probeHost = "127.0.0.1" }}
{{- else if eq $bare "::1" }}{{ $probeHost = "::1" }}
{{- else if has $bare (list "" "0.0.0.0" "::" "${env:K8S_POD_IP}" "${env:K8S_NODE_IP}") }}{{ $probeHost = "" }}
{{- else if regexMatch "^[0-9a-fA-F:.]+$" $bare }}{{ $probeHost = $bare }}
{{- else }}
{{- fail (printf "%s: the chart cannot tell which address %q is (the probes and the PodMonitor must reach it): use 127.0.0.1, ${env:K8S_POD_IP} (the node's IP), 0.0.0.0, or a literal IP" $where $host) }}
{{- end }}
{{- toJson (dict "address" $address "host" $host "port" $port "probeHost" $probeHost "scrapable" (not (has $probeHost (list "127.0.0.1" "::1")))) }}
{{- end }}

{{/*
The prometheus exporters used by a pipeline, each with its listen address and the name of its
container port: [{"id", "name", "address", "port", "scrapable"}] as JSON.
*/}}
{{- define "taskstats-agent.prometheusExporters" -}}
{{- $cfg := include "taskstats-agent.config" . | fromYaml }}
{{- $out := list }}
{{- range (include "taskstats-agent.usedComponents" (list $cfg "exporters") | fromJsonArray) }}
{{- if regexMatch "^prometheus(/.*)?$" . }}
{{- $e := index ($cfg.exporters | default dict) . | default dict }}
{{- $parsed := include "taskstats-agent.listenAddress" (list (toString ($e.endpoint | default "127.0.0.1:9464")) (printf "exporters.%s.endpoint" .)) | fromJson }}
{{- $name := ternary "prometheus" (printf "prometheus-%d" (add1 (len $out))) (eq (len $out) 0) }}
{{- $out = append $out (dict "id" . "name" $name "address" $parsed.address "port" $parsed.port "scrapable" $parsed.scrapable) }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The endpoints a PodMonitor / ServiceMonitor scrapes by default: every scrapable named port. */}}
{{- define "taskstats-agent.defaultScrapeEndpoints" -}}
{{- $telemetry := include "taskstats-agent.telemetryEndpoint" . | fromJson }}
{{- $out := list }}
{{- if and $telemetry.port $telemetry.scrapable }}
{{- $out = append $out (dict "port" "telemetry" "path" "/metrics") }}
{{- end }}
{{- range (include "taskstats-agent.prometheusExporters" . | fromJsonArray) }}
{{- if .scrapable }}
{{- $out = append $out (dict "port" .name "path" "/metrics") }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* The endpoints of a monitor: its metricsEndpoints, else the defaults with its interval and relabelings. */}}
{{- define "taskstats-agent.scrapeEndpoints" -}}
{{- $root := index . 0 }}
{{- $monitor := index . 1 }}
{{- $kind := index . 2 }}
{{- $endpoints := $monitor.metricsEndpoints | default list }}
{{- if not $endpoints }}
{{- range (include "taskstats-agent.defaultScrapeEndpoints" $root | fromJsonArray) }}
{{- $e := . }}
{{- with $monitor.interval }}{{ $_ := set $e "interval" . }}{{ end }}
{{- with $monitor.scrapeTimeout }}{{ $_ := set $e "scrapeTimeout" . }}{{ end }}
{{- with $monitor.relabelings }}{{ $_ := set $e "relabelings" . }}{{ end }}
{{- with $monitor.metricRelabelings }}{{ $_ := set $e "metricRelabelings" . }}{{ end }}
{{- $endpoints = append $endpoints $e }}
{{- end }}
{{- end }}
{{- if not $endpoints }}
{{- fail (printf "%s.enabled: nothing to scrape: the telemetry endpoint listens on loopback (set telemetry.host: \"${env:K8S_POD_IP}\") and no prometheus exporter listens on the pod IP; or list %s.metricsEndpoints" $kind $kind) }}
{{- end }}
{{- toJson $endpoints }}
{{- end }}

{{/*
A probe of the agent container: the probe value without `enabled`, with an httpGet on the
telemetry port (its path from `httpGet.path`, host from the telemetry address) unless the value
brings its own handler (exec, tcpSocket, grpc, or an httpGet with a port).
*/}}
{{- define "taskstats-agent.probe" -}}
{{- $root := index . 0 }}
{{- $name := index . 1 }}
{{- $probe := omit (deepCopy (index . 2)) "enabled" }}
{{- $telemetry := include "taskstats-agent.telemetryEndpoint" $root | fromJson }}
{{- $http := $probe.httpGet | default dict }}
{{- if or $probe.exec $probe.tcpSocket $probe.grpc }}
{{- $probe = omit $probe "httpGet" }}
{{- else if not $http.port }}
{{- if not $telemetry.port }}
{{- fail (printf "%s is on but the telemetry endpoint is disabled (service.telemetry.metrics.address is empty): the probe would fail and the kubelet would restart the pod. Keep the endpoint, or set %s.enabled: false" $name $name) }}
{{- end }}
{{- $_ := set $http "port" "telemetry" }}
{{- with $telemetry.probeHost }}{{ $_ := set $http "host" . }}{{ end }}
{{- $_ := set $probe "httpGet" $http }}
{{- end }}
{{- toYaml $probe }}
{{- end }}
