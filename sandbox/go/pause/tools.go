//go:build tools

// Package tools: the pause wrapper builds its own main package (main.go); nothing upstream.
package tools
