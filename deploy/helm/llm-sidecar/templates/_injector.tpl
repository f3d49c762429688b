{{/*
Named templates of the injector (injector.enabled): the admission webhook that adds the sidecar
to labelled pods. Internal to this chart.
*/}}

{{- define "llm-sidecar.injector.fullname" -}}
{{- printf "%s-injector" (include "llm-sidecar.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-sidecar.injector.selectorLabels" -}}
{{ include "llm-sidecar.selectorLabels" . }}
app.kubernetes.io/component: injector
{{- end -}}

{{- define "llm-sidecar.injector.image" -}}
{{- $image := .Values.injector.image -}}
{{- printf "%s:%s" (default .Values.image.repository $image.repository) (default (default .Chart.AppVersion .Values.image.tag) $image.tag) -}}
{{- end -}}

{{/* Where the API server reaches the webhook; the serving certificate names these. */}}
{{- define "llm-sidecar.injector.dnsNames" -}}
{{- $svc := include "llm-sidecar.injector.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{- define "llm-sidecar.injector.tlsSecretName" -}}
{{- printf "%s-tls" (include "llm-sidecar.injector.fullname" .) -}}
{{- end -}}

{{/*
"true" when cert-manager issues the serving certificate: certificate.source cert-manager, or
auto with cert-manager's API installed (helm template without a cluster and without
--api-versions cert-manager.io/v1 sees none: the Helm-generated certificate).
*/}}
{{- define "llm-sidecar.injector.useCertManager" -}}
{{- $source := .Values.injector.certificate.source -}}
{{- if or (eq $source "cert-manager") (and (eq $source "auto") (.Capabilities.APIVersions.Has "cert-manager.io/v1")) -}}
true
{{- end -}}
{{- end -}}

{{/*
The sidecar template file the injector reads (sidecar/inject/template.py): the chart's own
sidecar container and volumes, rendered from the same named templates and values as the example
Deployment, so an injected sidecar has the same probes, resources, securityContext and mounts.
For pods of any namespace, three things differ:
- env entries read from a Secret are left out (the release's Secret is not in the pod's
  namespace): injector.secretName and the llm-sidecar.io/secret annotation give the sidecar
  a Secret of the pod's namespace instead;
- the config volume is the ConfigMap injector.configMapName of the pod's namespace, and the
  state volume an emptyDir (a claim cannot be shared by every injected pod);
- the listeners and state directory are pinned by SIDECAR_* variables (they beat the config
  file), so the probes, OPENAI_BASE_URL and the mounts hold whatever that ConfigMap says.
*/}}
{{- define "llm-sidecar.injector.template" -}}
{{- $values := deepCopy .Values -}}
{{- $_ := set $values.sidecar "native" true -}}
{{- $_ := set $values.persistence "enabled" false -}}
{{- $_ := set $values.collector "enabled" false -}}
{{- $scope := dict "Values" $values "Chart" .Chart "Release" .Release "Capabilities" .Capabilities "Template" .Template "Files" .Files -}}
{{- $container := first (include "llm-sidecar.sidecarContainer" $scope | fromYamlArray) -}}
{{- $env := list -}}
{{- range $container.env -}}
{{- if not (dig "valueFrom" "secretKeyRef" "" .) -}}
{{- $env = append $env . -}}
{{- end -}}
{{- end -}}
{{- $pinned := dict "SIDECAR_HOST" "127.0.0.1" "SIDECAR_PORT" (toString .Values.proxy.port) "SIDECAR_ADMIN_HOST" .Values.admin.host "SIDECAR_ADMIN_PORT" (toString .Values.admin.port) "SIDECAR_STATE_DIR" (include "llm-sidecar.stateDir" .) -}}
{{- range $name := list "SIDECAR_HOST" "SIDECAR_PORT" "SIDECAR_ADMIN_HOST" "SIDECAR_ADMIN_PORT" "SIDECAR_STATE_DIR" -}}
{{- $env = append $env (dict "name" $name "value" (get $pinned $name)) -}}
{{- end -}}
{{- $_ := set $container "env" $env -}}
{{- $volumes := list -}}
{{- range (include "llm-sidecar._volumes" $scope | fromYamlArray) -}}
{{- if .configMap -}}
{{- $_ := set .configMap "name" $.Values.injector.configMapName -}}
{{- end -}}
{{- $volumes = append $volumes . -}}
{{- end -}}
# The sidecar `llm-sidecar inject --template` adds to pods, rendered by the llm-sidecar Helm
# chart from its values (sidecar, proxy, admin, image, injector). The package's copy,
# sidecar/inject/template.yaml, is this rendering with the chart's default values.
proxyPort: {{ .Values.proxy.port }}
container:
  {{- toYaml $container | nindent 2 }}
volumes:
  {{- toYaml $volumes | nindent 2 }}
{{- end -}}
