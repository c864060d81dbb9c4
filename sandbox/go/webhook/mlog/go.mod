// Sandbox stand-in for monis.app/mlog v0.0.4 (see mlog.go). Requires only modules already in the
// webhook's build list, at the versions it pins, so the webhook's module graph is unchanged.
module monis.app/mlog

go 1.22

require (
	github.com/go-logr/logr v1.4.3
	k8s.io/klog/v2 v2.130.1
)
