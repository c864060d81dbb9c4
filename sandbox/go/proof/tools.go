//go:build tools

// Package tools: the proof wrapper builds its own main package (main.go) on azidentity.
package tools
