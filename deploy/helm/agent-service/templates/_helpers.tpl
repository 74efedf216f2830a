{{/* Names ------------------------------------------------------------------------------ */}}

{{- define "agent-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-service.fullname" -}}
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

{{- define "agent-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels ----------------------------------------------------------------------------- */}}

{{- define "agent-service.labels" -}}
helm.sh/chart: {{ include "agent-service.chart" . }}
{{ include "agent-service.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "agent-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector of one component: api, worker or redis. Call with (dict "ctx" $ "component" "api"). */}}
{{- define "agent-service.componentSelectorLabels" -}}
{{ include "agent-service.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "agent-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agent-service.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "agent-service.secretName" -}}
{{- .Values.existingSecret | default (include "agent-service.fullname" .) }}
{{- end }}

{{- define "agent-service.configMapName" -}}
{{- printf "%s-config" (include "agent-service.fullname" .) }}
{{- end }}

{{- define "agent-service.redisName" -}}
{{- printf "%s-redis" (include "agent-service.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agent-service.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Shutdown ---------------------------------------------------------------------------
Kubernetes runs preStop, then sends SIGTERM; the grace period counts from the start of
preStop. gunicorn needs graceful_timeout after SIGTERM, and uvicorn's own drain is shorter
still (graceful_timeout - 3, set by app/entrypoints/gunicorn_worker.py), so:
  terminationGracePeriodSeconds = preStop sleep + graceful_timeout + margin. */}}
{{- define "agent-service.terminationGracePeriodSeconds" -}}
{{- $s := .Values.shutdown }}
{{- add (int $s.preStopSleepSeconds) (int $s.gracefulTimeoutSeconds) (int $s.marginSeconds) }}
{{- end }}

{{/* Worker pods have no preStop (no load balancer in front): SIGTERM comes at once, running
tasks get WORKER_SHUTDOWN_GRACE_SECONDS, then the worker cancels the rest, waits up to 5 s
for them to be handed back (app/tasks/worker.py) and exits. So:
  WORKER_SHUTDOWN_GRACE_SECONDS = worker.terminationGracePeriodSeconds - worker.shutdownMarginSeconds */}}
{{- define "agent-service.workerShutdownGraceSeconds" -}}
{{- sub (int .Values.worker.terminationGracePeriodSeconds) (int .Values.worker.shutdownMarginSeconds) }}
{{- end }}

{{- define "agent-service.workerName" -}}
{{- printf "%s-worker" (include "agent-service.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* True when the prometheus-operator objects render (serviceMonitor.enabled: true, or auto
and the cluster serves the CRD). */}}
{{- define "agent-service.serviceMonitorEnabled" -}}
{{- $mode := toString .Values.serviceMonitor.enabled }}
{{- if or (eq $mode "true") (and (eq $mode "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor")) }}true{{- end }}
{{- end }}

{{/* Redis -------------------------------------------------------------------------------
True when some Redis is configured. With existingSecret the chart cannot see whether the
Secret holds REDIS_URL; it trusts that it does (documented in values.yaml). */}}
{{- define "agent-service.hasRedis" -}}
{{- if or .Values.redis.enabled .Values.externalRedis.url .Values.existingSecret }}true{{- end }}
{{- end }}

{{/* Ports the pods open to an external Redis, one per line, for the NetworkPolicy egress rule:
externalRedis.egress.ports, else read from externalRedis.url (app/core/redis_url.py's forms):
each node's port (6379 when left out, 26379 for a sentinel) and, for Sentinel, 6379 for the
data nodes the sentinels name. Empty for the in-chart Redis or when nothing is known. */}}
{{- define "agent-service.externalRedisPorts" -}}
{{- $ports := list }}
{{- if .Values.redis.enabled }}
{{- /* None: networkpolicy.yaml reaches the in-chart Redis by its pods. */}}
{{- else if .Values.externalRedis.egress.ports }}
{{- range .Values.externalRedis.egress.ports }}
{{- $ports = append $ports (int .) }}
{{- end }}
{{- else if .Values.externalRedis.url }}
{{- $url := .Values.externalRedis.url }}
{{- $sentinel := hasSuffix "+sentinel" (lower (first (splitList "://" $url))) }}
{{- /* After the scheme, drop the credentials (up to the last @), then the path. */}}
{{- $rest := regexReplaceAll "^.*@" (regexReplaceAll "^[^:]*://" $url "") "" }}
{{- range splitList "," (first (splitList "/" $rest)) }}
{{- $port := regexFind ":[0-9]+$" (trim .) | trimPrefix ":" }}
{{- $ports = append $ports (int (default (ternary "26379" "6379" $sentinel) $port)) }}
{{- end }}
{{- if $sentinel }}
{{- $ports = append $ports 6379 }}
{{- end }}
{{- end }}
{{- range uniq $ports }}
{{ . }}
{{- end }}
{{- end }}

{{/* Config value as a string. Helm reads numbers as float64, so 1048576 would print as
1.048576e+06, which pydantic refuses for an int field: whole numbers print as integers. */}}
{{- define "agent-service.envValue" -}}
{{- if kindIs "float64" . }}
{{- if eq (floor .) . }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else }}
{{- . | toString }}
{{- end }}
{{- end }}

{{/* Proxies ------------------------------------------------------------------------------
FORWARDED_ALLOW_IPS from trustedProxies; with no proxy in front, loopback only. */}}
{{- define "agent-service.forwardedAllowIps" -}}
{{- .Values.trustedProxies | default (list "127.0.0.1") | join "," }}
{{- end }}

{{/* Checks that a schema cannot express ---------------------------------------------- */}}
{{- define "agent-service.validate" -}}
{{- range .Values.trustedProxies }}
{{- if has (trim (toString .)) (list "*" "0.0.0.0/0" "::/0") }}
{{- fail (printf "trustedProxies must not hold %q: every pod that can reach the service could then set its own client IP (X-Forwarded-For) and pick its rate-limit bucket. List the ingress controller's pod range instead, e.g. 10.244.0.0/16" (toString .)) }}
{{- end }}
{{- end }}
{{- if and (or .Values.ingress.enabled .Values.gatewayAPI.enabled) (not .Values.trustedProxies) }}
{{- fail "ingress.enabled and gatewayAPI.enabled need trustedProxies: the ingress controller's (or gateway's) pod range, e.g. [10.244.0.0/16]. Without it every client shares the controller's IP, so one login rate-limit bucket, and one attacker can lock everyone out" }}
{{- end }}
{{- /* Tasks run in the worker pods (worker.enabled) or in every API pod (WORKER_ENABLED=true);
either way the queue must be shared by more than one process, as sessions and limits are. */}}
{{- $multi := or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled .Values.worker.enabled }}
{{- if and $multi (not (include "agent-service.hasRedis" .)) }}
{{- fail "several API replicas (replicaCount > 1 or autoscaling) or worker pods need Redis (shared state and the task queue): set externalRedis.url, REDIS_URL in existingSecret, or redis.enabled=true (development only)" }}
{{- end }}
{{- $taskGrace := get .Values.config "WORKER_SHUTDOWN_GRACE_SECONDS" }}
{{- $taskGraceSet := and (not (kindIs "invalid" $taskGrace)) (ne (toString $taskGrace) "") }}
{{- if .Values.worker.enabled }}
{{- if $taskGraceSet }}
{{- fail "config.WORKER_SHUTDOWN_GRACE_SECONDS is computed for the worker pods (worker.terminationGracePeriodSeconds - worker.shutdownMarginSeconds): set those instead" }}
{{- end }}
{{- if lt (int (include "agent-service.workerShutdownGraceSeconds" .)) 1 }}
{{- fail "worker.terminationGracePeriodSeconds must exceed worker.shutdownMarginSeconds: running tasks need time to finish on shutdown" }}
{{- end }}
{{- else if $taskGraceSet }}
{{- /* In-process tasks stop in the API's lifespan shutdown, inside gunicorn's graceful_timeout,
and may take 5 s more to be handed back. */}}
{{- if ge (float64 $taskGrace) (float64 (sub (int .Values.shutdown.gracefulTimeoutSeconds) 5)) }}
{{- fail "config.WORKER_SHUTDOWN_GRACE_SECONDS must stay below shutdown.gracefulTimeoutSeconds - 5: the API pods run tasks in-process (worker.enabled=false) and gunicorn stops them after its graceful timeout" }}
{{- end }}
{{- end }}
{{- if and .Values.tracing.enabled (not .Values.tracing.otlpEndpoint) }}
{{- fail "tracing.enabled needs tracing.otlpEndpoint: the OTLP/HTTP endpoint of a collector (e.g. http://otel-collector.monitoring:4318)" }}
{{- end }}
{{- if .Values.existingSecret }}
{{- range $key, $value := .Values.secrets }}
{{- if $value }}
{{- fail (printf "secrets.%s is set but existingSecret is too: put %s in the existing Secret" $key $key) }}
{{- end }}
{{- end }}
{{- if .Values.externalRedis.url }}
{{- fail "externalRedis.url is set but existingSecret is too: put REDIS_URL in the existing Secret" }}
{{- end }}
{{- end }}
{{- $streamGrace := get .Values.config "SHUTDOWN_STREAM_GRACE_SECONDS" }}
{{- if and (not (kindIs "invalid" $streamGrace)) (ne (toString $streamGrace) "") }}
{{- if ge (int $streamGrace) (sub (int .Values.shutdown.gracefulTimeoutSeconds) 3) }}
{{- fail "config.SHUTDOWN_STREAM_GRACE_SECONDS must stay below shutdown.gracefulTimeoutSeconds - 3 (uvicorn's drain time): open streams need time for their final event" }}
{{- end }}
{{- end }}
{{- if and .Values.redis.enabled .Values.externalRedis.url }}
{{- fail "set either redis.enabled (development) or externalRedis.url, not both" }}
{{- end }}
{{- end }}

{{/* Pod pieces shared by the API and worker Deployments ------------------------------- */}}

{{- define "agent-service.podAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Environment: Settings from the ConfigMap (envFrom), secrets one key at a time so a key
missing from an existing Secret is a clear error (SECRET_KEY) or simply unset (the rest). */}}
{{- define "agent-service.env" -}}
# Not a Settings field: gunicorn 27 puts its control socket under $HOME/.gunicorn, and the
# image's user has no writable home with a read-only root filesystem.
- name: HOME
  value: /tmp
- name: SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "agent-service.secretName" . }}
      key: SECRET_KEY
{{- range $key := list "ADMIN_PASSWORD" "API_KEY_PEPPER" "OPENAI_API_KEY" }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "agent-service.secretName" $ }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- if .Values.redis.enabled }}
- name: REDIS_URL
  value: {{ printf "redis://%s:6379/0" (include "agent-service.redisName" .) | quote }}
{{- else }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "agent-service.secretName" . }}
      key: REDIS_URL
      optional: true
{{- end }}
{{- with .Values.tracing }}{{ if .enabled }}
# OpenTelemetry (app/observability/tracing.py); the SDK reads the OTEL_* variables itself.
- name: TRACING_ENABLED
  value: "true"
- name: TRACING_TRUST_INCOMING
  value: {{ .trustIncoming | quote }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .otlpEndpoint | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ compact (list (printf "k8s.namespace.name=%s" $.Release.Namespace) .resourceAttributes) | join "," | quote }}
{{- end }}{{ end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "agent-service.envFrom" -}}
- configMapRef:
    name: {{ include "agent-service.configMapName" . }}
{{- end }}

{{- define "agent-service.volumes" -}}
# Writable scratch space: the root filesystem is read-only.
- name: tmp
  emptyDir: {}
# Prometheus multiprocess files: one set per worker process, merged on scrape.
- name: metrics
  emptyDir: {}
{{- end }}

{{- define "agent-service.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: metrics
  mountPath: {{ .Values.metrics.multiprocDir }}
{{- end }}
