//go:build tools

// Package tools records the upstream main packages this wrapper module builds, so that
// `go mod tidy` keeps their dependencies in go.mod/go.sum. build.py runs `go build <package>`
// here; this file itself is never compiled.
package tools

import (
	_ "github.com/coredns/coredns"
)
