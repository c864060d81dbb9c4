{{- define "arc.labels" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: azure-arc-k8sagents
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
