{{/* Names and labels. */}}
{{- define "threatflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "threatflow.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "threatflow.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "threatflow.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The engine config with the pod's paths and port. */}}
{{- define "threatflow.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $storage := merge (get $config "storage" | default dict) (dict "state_dir" "/var/lib/threatflow/state" "model_dir" "/opt/threatflow/models") -}}
{{- $_ := set $config "storage" $storage -}}
{{- $http := get $config "http" | default dict -}}
{{- $_ := set $http "bind" (printf "0.0.0.0:%d" (int .Values.service.port)) -}}
{{- $_ := set $config "http" $http -}}
{{- toToml $config -}}
{{- end -}}

{{/* Checks that span several values; each fails the render with the reason. */}}
{{- define "threatflow.checks" -}}
{{- if and .Values.autoscaling.keda.enabled .Values.autoscaling.hpa.enabled -}}
{{- fail "autoscaling.keda and autoscaling.hpa are both enabled: choose one (two autoscalers would fight over replicas)" -}}
{{- end -}}
{{- if and .Values.autoscaling.keda.enabled (gt (int .Values.autoscaling.keda.maxReplicaCount) (int .Values.autoscaling.keda.partitionCount)) -}}
{{- fail "autoscaling.keda.maxReplicaCount exceeds autoscaling.keda.partitionCount: replicas beyond the partition count get no partition" -}}
{{- end -}}
{{- $pipeline := get .Values.config "pipeline" | default dict -}}
{{- $graceMs := get $pipeline "shutdown_grace_ms" | default 20000 -}}
{{- if le (mul (int .Values.terminationGracePeriodSeconds) 1000) (add (int $graceMs) 5000) -}}
{{- fail (printf "terminationGracePeriodSeconds (%d s) must exceed pipeline.shutdown_grace_ms (%d ms) + 5 s, or Kubernetes kills the engine mid-drain" (int .Values.terminationGracePeriodSeconds) (int $graceMs)) -}}
{{- end -}}
{{- $kafka := get .Values.config "kafka" | default dict -}}
{{- if not (get $kafka "group_id") -}}
{{- fail "config.kafka.group_id is required (the consumer group the pods share and KEDA watches)" -}}
{{- end -}}
{{- if not (get .Values.config "bindings") -}}
{{- fail "config.bindings needs at least one binding" -}}
{{- end -}}
{{- end -}}

{{/* Environment of both roles: extra variables, secrets, tokens. */}}
{{- define "threatflow.env" -}}
{{- range .Values.env }}
- name: {{ .name }}
  value: {{ .value | quote }}
{{- end }}
{{- range .Values.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- if .Values.adminTokenSecret.name }}
- name: THREATFLOW_HTTP__ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.adminTokenSecret.name }}
      key: {{ .Values.adminTokenSecret.key }}
{{- end }}
{{- if .Values.apiTokenSecret.name }}
- name: THREATFLOW_HTTP__API__TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .Values.apiTokenSecret.name }}
      key: {{ .Values.apiTokenSecret.key }}
{{- end }}
{{- end -}}

{{/* Volumes of both roles. */}}
{{- define "threatflow.volumes" -}}
- name: config
  configMap:
    name: {{ include "threatflow.fullname" . }}
- name: state
  emptyDir:
    sizeLimit: {{ .Values.state.sizeLimit }}
- name: tmp
  emptyDir: {}
{{- if .Values.kafkaTls.secretName }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafkaTls.secretName }}
{{- end }}
{{- end -}}

{{- define "threatflow.volumeMounts" -}}
- name: config
  mountPath: /etc/threatflow
  readOnly: true
- name: state
  mountPath: /var/lib/threatflow
- name: tmp
  mountPath: /tmp
{{- if .Values.kafkaTls.secretName }}
- name: kafka-tls
  mountPath: {{ .Values.kafkaTls.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "threatflow.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
