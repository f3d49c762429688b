{{/*
Named templates of the llm-sidecar chart.

PUBLIC: include these in your own pod spec (see the README's "Deploy on Kubernetes"). Each takes the root
context `.`; from a parent chart that lists llm-sidecar as a dependency they read the
dependency's values (`.Values.llm-sidecar`) through `.Subcharts`, so do not alias it.

  llm-sidecar.initContainers  under `initContainers:` - the sidecar (and collector) as native
                              sidecars; renders nothing when sidecar.native is false
  llm-sidecar.containers      under `containers:` - the same containers when sidecar.native
                              is false; renders nothing otherwise
  llm-sidecar.volumes         under `volumes:` - config, /tmp, state (PVC or emptyDir), collector
  llm-sidecar.appEnv          under your app container's `env:` - OPENAI_BASE_URL
  llm-sidecar.podLabels       under the pod template's `labels:` - selected by the monitors
  llm-sidecar.podAnnotations  under the pod template's `annotations:` - config checksums, so a
                              config change rolls the pods

Everything else here is internal.
*/}}

{{- define "llm-sidecar.initContainers" -}}
{{- include "llm-sidecar._inScope" (list "llm-sidecar._initContainers" .) -}}
{{- end -}}

{{- define "llm-sidecar.containers" -}}
{{- include "llm-sidecar._inScope" (list "llm-sidecar._containers" .) -}}
{{- end -}}

{{- define "llm-sidecar.volumes" -}}
{{- include "llm-sidecar._inScope" (list "llm-sidecar._volumes" .) -}}
{{- end -}}

{{- define "llm-sidecar.appEnv" -}}
{{- include "llm-sidecar._inScope" (list "llm-sidecar._appEnv" .) -}}
{{- end -}}

{{- define "llm-sidecar.podLabels" -}}
{{- include "llm-sidecar._inScope" (list "llm-sidecar._podLabels" .) -}}
{{- end -}}

{{- define "llm-sidecar.podAnnotations" -}}
{{- include "llm-sidecar._inScope" (list "llm-sidecar._podAnnotations" .) -}}
{{- end -}}

{{/*
Runs template (index . 0) in this chart's scope: the root context itself when called from
this chart, the dependency's scope (its values, Chart, Files) when called from a parent chart.
*/}}
{{- define "llm-sidecar._inScope" -}}
{{- $name := index . 0 -}}
{{- $scope := index . 1 -}}
{{- if and $scope.Subcharts (hasKey $scope.Subcharts "llm-sidecar") -}}
{{- $scope = index $scope.Subcharts "llm-sidecar" -}}
{{- end -}}
{{- include $name $scope -}}
{{- end -}}

{{/* ---- names and labels ---- */}}

{{- define "llm-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-sidecar.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "llm-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "llm-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "llm-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The label every pod carrying this release's sidecar has; the monitors select on it. */}}
{{- define "llm-sidecar._podLabels" -}}
llm-sidecar/instance: {{ include "llm-sidecar.fullname" . }}
{{- end -}}

{{- define "llm-sidecar._podAnnotations" -}}
checksum/llm-sidecar-config: {{ include "llm-sidecar.configYaml" . | sha256sum }}
{{- if .Values.collector.enabled }}
checksum/llm-sidecar-collector: {{ include "llm-sidecar.collectorConfig" . | sha256sum }}
{{- end }}
{{- if include "llm-sidecar.createSecret" . }}
checksum/llm-sidecar-secret: {{ include "llm-sidecar.secretData" . | sha256sum }}
{{- end }}
{{- end -}}

{{- define "llm-sidecar.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* ---- fixed paths inside the sidecar container ---- */}}

{{- define "llm-sidecar.configDir" -}}/etc/llm-sidecar{{- end -}}
{{- define "llm-sidecar.stateDir" -}}/var/lib/llm-sidecar{{- end -}}

{{/* ---- secrets ---- */}}

{{- define "llm-sidecar.secretName" -}}
{{- default (include "llm-sidecar.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{- define "llm-sidecar.wantsUpstreamKey" -}}
{{- if or .Values.upstream.apiKey .Values.existingSecret }}true{{ end -}}
{{- end -}}

{{/* The sidecar gets an admin token: always with tokenRequired, else when one is given. */}}
{{- define "llm-sidecar.wantsAdminToken" -}}
{{- if or .Values.admin.tokenRequired .Values.admin.token }}true{{ end -}}
{{- end -}}

{{/*
The admin token for the chart's Secret: admin.token when given; else the one the release's
Secret already holds (`lookup`: kept across upgrades, so the scrapers and bookmarked pages keep
working); else a new random one. Made once per render and kept on the values, so the Secret and
the pods' checksum annotation agree. `helm template` and client-side dry runs cannot read the
cluster: they show a new token each time.
*/}}
{{- define "llm-sidecar.adminToken" -}}
{{- if .Values.admin.token -}}
{{- .Values.admin.token -}}
{{- else -}}
{{- if not (hasKey .Values.admin "_generatedToken") -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "llm-sidecar.fullname" .) -}}
{{- $kept := index (default dict (and $secret $secret.data)) .Values.secretKeys.adminToken | default "" | b64dec -}}
{{- $_ := set .Values.admin "_generatedToken" (default (randAlphaNum 40) $kept) -}}
{{- end -}}
{{- index .Values.admin "_generatedToken" -}}
{{- end -}}
{{- end -}}

{{/*
Admin settings that cannot work together, and an existingSecret without the token's key (only
seen where `lookup` reaches the cluster: at install and upgrade).
*/}}
{{- define "llm-sidecar.checkAdminToken" -}}
{{- if and .Values.admin.insecureNoTokenOnNetwork (include "llm-sidecar.wantsAdminToken" .) -}}
{{- fail "admin.insecureNoTokenOnNetwork serves the admin routes without a token: set admin.tokenRequired=false and leave admin.token empty, or turn it off" -}}
{{- end -}}
{{- if and .Values.existingSecret (include "llm-sidecar.wantsAdminToken" .) -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace .Values.existingSecret -}}
{{- if and $secret (not (hasKey (default dict $secret.data) .Values.secretKeys.adminToken)) -}}
{{- fail (printf "admin.tokenRequired is true (the default) but the Secret %s has no key %s: add one (kubectl -n %s patch secret %s --type merge -p '{\"stringData\":{\"%s\":\"'$(openssl rand -hex 24)'\"}}'), or set admin.tokenRequired=false (the pod IP then serves the probes and /metrics only)" .Values.existingSecret .Values.secretKeys.adminToken .Release.Namespace .Values.existingSecret .Values.secretKeys.adminToken) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "llm-sidecar.wantsRedisPassword" -}}
{{- if and .Values.redis.enabled .Values.redis.passwordRequired }}true{{ end -}}
{{- end -}}

{{/* The chart's Secret data (base64), one key per secret the values ask for. */}}
{{- define "llm-sidecar.secretData" -}}
{{- if .Values.upstream.apiKey }}
{{ .Values.secretKeys.upstreamApiKey }}: {{ .Values.upstream.apiKey | b64enc | quote }}
{{- end }}
{{- if include "llm-sidecar.wantsAdminToken" . }}
{{ .Values.secretKeys.adminToken }}: {{ include "llm-sidecar.adminToken" . | b64enc | quote }}
{{- end }}
{{- if include "llm-sidecar.wantsRedisPassword" . }}
{{ .Values.secretKeys.redisPassword }}: {{ required "redis.passwordRequired is true: set redis.password, or existingSecret with the key secretKeys.redisPassword" .Values.redis.password | b64enc | quote }}
{{- end }}
{{- end -}}

{{- define "llm-sidecar.createSecret" -}}
{{- if and (not .Values.existingSecret) (trim (include "llm-sidecar.secretData" .)) }}true{{ end -}}
{{- end -}}

{{/* ---- the sidecar's config file ---- */}}

{{/*
redis.url as given (the schema refuses credentials in it). The cache takes the password apart
from the URL (cache.redis_password: ${LLM_SIDECAR_REDIS_PASSWORD}, expanded by the sidecar at
start after the YAML is parsed), so any character is safe in it and the ConfigMap never holds it.
*/}}
{{- define "llm-sidecar.redisUrl" -}}
{{- required "redis.enabled is true: set redis.url, e.g. redis://redis-master.redis:6379/0" .Values.redis.url -}}
{{- end -}}

{{/*
The spend ledger's Redis URL. The ledger has no separate password setting yet, so the password
is still spliced into its URL: a password with "@", ":" or "/" breaks the ledger's URL (not the
cache's) until spend reads a password of its own.
*/}}
{{- define "llm-sidecar.ledgerRedisUrl" -}}
{{- $url := include "llm-sidecar.redisUrl" . -}}
{{- if include "llm-sidecar.wantsRedisPassword" . -}}
{{- $parts := splitn "://" 2 $url -}}
{{- printf "%s://:${LLM_SIDECAR_REDIS_PASSWORD}@%s" $parts._0 $parts._1 -}}
{{- else -}}
{{- $url -}}
{{- end -}}
{{- end -}}

{{/*
The sidecar's YAML: `config` from values, with the sections the chart owns set on top
(listeners, state_dir, Redis, the collector exporter). Secrets are ${VAR} references to env
vars that come from the Secret.
*/}}
{{- define "llm-sidecar.configYaml" -}}
{{- $cfg := deepCopy (default dict .Values.config) -}}
{{- $_ := set $cfg "listen" (dict "host" "127.0.0.1" "port" (int .Values.proxy.port) "shutdown_grace_s" .Values.proxy.shutdownGraceSeconds "max_body_bytes" (int64 .Values.proxy.maxBodyBytes)) -}}
{{- $admin := dict "host" .Values.admin.host "port" (int .Values.admin.port) -}}
{{- include "llm-sidecar.checkAdminToken" . -}}
{{- if include "llm-sidecar.wantsAdminToken" . -}}
{{- $_ := set $admin "token" "${LLM_SIDECAR_ADMIN_TOKEN}" -}}
{{- $_ := set $admin "metrics_require_token" .Values.admin.tokenRequired -}}
{{- end -}}
{{- if .Values.admin.insecureNoTokenOnNetwork -}}
{{- $_ := set $admin "insecure_no_token_on_network" true -}}
{{- end -}}
{{- $_ := set $cfg "admin" $admin -}}
{{- $_ := set $cfg "state_dir" (include "llm-sidecar.stateDir" .) -}}
{{- if and .Values.redis.enabled .Values.redis.cache -}}
{{- $cache := deepCopy (default dict $cfg.cache) -}}
{{- $_ := set $cache "backend" "redis" -}}
{{- $_ := set $cache "redis_url" (include "llm-sidecar.redisUrl" .) -}}
{{- if include "llm-sidecar.wantsRedisPassword" . -}}
{{- $_ := set $cache "redis_password" "${LLM_SIDECAR_REDIS_PASSWORD}" -}}
{{- end -}}
{{- $_ := set $cfg "cache" $cache -}}
{{- end -}}
{{- /* Without Redis the ledger defaults to sqlite:///<state_dir>/ledger.db: the state volume. */ -}}
{{- if and .Values.redis.enabled .Values.redis.ledger -}}
{{- $spend := deepCopy (default dict $cfg.spend) -}}
{{- $_ := set $spend "ledger" (include "llm-sidecar.ledgerRedisUrl" .) -}}
{{- $_ := set $cfg "spend" $spend -}}
{{- end -}}
{{- if .Values.collector.enabled -}}
{{- $telemetry := deepCopy (default dict $cfg.telemetry) -}}
{{- $exporter := dict "protocol" "grpc" "endpoint" "http://127.0.0.1:4317" "signals" (list "traces" "metrics" "logs") -}}
{{- $_ := set $telemetry "exporters" (append (default list $telemetry.exporters) $exporter) -}}
{{- $_ := set $cfg "telemetry" $telemetry -}}
{{- end -}}
# Rendered by the llm-sidecar Helm chart from its values: change the values, not this file.
{{ toYaml $cfg }}
{{- end -}}

{{- define "llm-sidecar.collectorConfig" -}}
{{- if .Values.collector.config -}}
{{ toYaml .Values.collector.config }}
{{- else -}}
{{ .Files.Get "files/otel-collector.yaml" }}
{{- end -}}
{{- end -}}

{{/* ---- containers ---- */}}

{{- define "llm-sidecar.sidecarContainer" -}}
- name: {{ .Values.sidecar.name }}
  image: {{ include "llm-sidecar.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: ["serve"]
  env:
    - name: SIDECAR_CONFIG
      value: {{ include "llm-sidecar.configDir" . }}/config.yaml
    {{- if include "llm-sidecar.wantsUpstreamKey" . }}
    - name: SIDECAR_UPSTREAM_API_KEY
      valueFrom:
        secretKeyRef:
          name: {{ include "llm-sidecar.secretName" . }}
          key: {{ .Values.secretKeys.upstreamApiKey }}
    {{- end }}
    {{- if include "llm-sidecar.wantsAdminToken" . }}
    - name: LLM_SIDECAR_ADMIN_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "llm-sidecar.secretName" . }}
          key: {{ .Values.secretKeys.adminToken }}
    {{- end }}
    {{- if include "llm-sidecar.wantsRedisPassword" . }}
    - name: LLM_SIDECAR_REDIS_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ include "llm-sidecar.secretName" . }}
          key: {{ .Values.secretKeys.redisPassword }}
    {{- end }}
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    - name: OTEL_RESOURCE_ATTRIBUTES
      value: k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),k8s.container.name={{ .Values.sidecar.name }}
    {{- with .Values.sidecar.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: sidecar-admin
      containerPort: {{ .Values.admin.port }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: sidecar-admin
    {{- toYaml .Values.sidecar.startupProbe | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: sidecar-admin
    {{- toYaml .Values.sidecar.livenessProbe | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: sidecar-admin
    {{- toYaml .Values.sidecar.readinessProbe | nindent 4 }}
  {{- if not .Values.sidecar.native }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", {{ .Values.sidecar.preStopSleepSeconds | toString | quote }}]
  {{- end }}
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.sidecar.securityContext | nindent 4 }}
  volumeMounts:
    - name: llm-sidecar-config
      mountPath: {{ include "llm-sidecar.configDir" . }}
      readOnly: true
    - name: llm-sidecar-state
      mountPath: {{ include "llm-sidecar.stateDir" . }}
    - name: llm-sidecar-tmp
      mountPath: /tmp
{{- end -}}

{{- define "llm-sidecar.collectorContainer" -}}
- name: {{ .Values.collector.name }}
  image: {{ printf "%s:%s" .Values.collector.image.repository .Values.collector.image.tag }}
  imagePullPolicy: {{ .Values.collector.image.pullPolicy }}
  {{- if .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args: ["--config=/etc/otel-collector/otel-collector.yaml"]
  env:
    - name: OTLP_EXPORT_ENDPOINT
      value: {{ required "collector.enabled is true: set collector.exportEndpoint, e.g. http://otel-gateway.observability:4318" .Values.collector.exportEndpoint | quote }}
    - name: COLLECTOR_HEALTH_ENDPOINT
      value: {{ printf "0.0.0.0:%d" (int .Values.collector.healthPort) | quote }}
    - name: COLLECTOR_DEBUG_VERBOSITY
      value: {{ .Values.collector.debugVerbosity | quote }}
    {{- with .Values.collector.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: otel-health
      containerPort: {{ .Values.collector.healthPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /
      port: otel-health
    periodSeconds: 1
    failureThreshold: 30
  livenessProbe:
    httpGet:
      path: /
      port: otel-health
    periodSeconds: 10
  readinessProbe:
    httpGet:
      path: /
      port: otel-health
    periodSeconds: 5
  resources:
    {{- toYaml .Values.collector.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.collector.securityContext | nindent 4 }}
  volumeMounts:
    - name: llm-sidecar-collector-config
      mountPath: /etc/otel-collector
      readOnly: true
{{- end -}}

{{/*
Kubelet stops native sidecars in the reverse of their order, after the app containers: the
collector comes first so it starts before the sidecar and outlives it, flushing its telemetry.
*/}}
{{- define "llm-sidecar._sidecarContainers" -}}
{{- if and .Values.sidecar.native (semverCompare "<1.29.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "sidecar.native needs Kubernetes >= 1.29 (native sidecar containers); this cluster is %s: set sidecar.native=false" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- if .Values.collector.enabled }}
{{ include "llm-sidecar.collectorContainer" . }}
{{- end }}
{{ include "llm-sidecar.sidecarContainer" . }}
{{- end -}}

{{- define "llm-sidecar._initContainers" -}}
{{- if .Values.sidecar.native -}}
{{- include "llm-sidecar._sidecarContainers" . | trim -}}
{{- end -}}
{{- end -}}

{{- define "llm-sidecar._containers" -}}
{{- if not .Values.sidecar.native -}}
{{- include "llm-sidecar._sidecarContainers" . | trim -}}
{{- end -}}
{{- end -}}

{{- define "llm-sidecar._volumes" -}}
- name: llm-sidecar-config
  configMap:
    name: {{ include "llm-sidecar.fullname" . }}
- name: llm-sidecar-tmp
  emptyDir:
    sizeLimit: {{ .Values.sidecar.tmpSizeLimit }}
- name: llm-sidecar-state
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-state" (include "llm-sidecar.fullname" .)) .Values.persistence.existingClaim }}
  {{- else }}
  emptyDir:
    sizeLimit: {{ .Values.persistence.size }}
  {{- end }}
{{- if .Values.collector.enabled }}
- name: llm-sidecar-collector-config
  configMap:
    name: {{ include "llm-sidecar.fullname" . }}-collector
{{- end }}
{{- end -}}

{{- define "llm-sidecar._appEnv" -}}
- name: OPENAI_BASE_URL
  value: {{ printf "http://127.0.0.1:%d/v1" (int .Values.proxy.port) | quote }}
{{- with .Values.appEnv.openaiApiKey }}
- name: OPENAI_API_KEY
  value: {{ . | quote }}
{{- end }}
{{- end -}}
