// Package mlog is the sandbox's stand-in for monis.app/mlog v0.0.4.
//
// The azure-workload-identity webhook logs through monis.app/mlog, and the Go module proxy the
// sandbox can reach does not serve that module's host. This package provides the part of its API
// that the webhook binary (cmd/webhook and pkg/webhook) calls, with the same level names
// ("" = warnings and errors only, info, debug, trace, all), written for the sandbox on log/slog:
// JSON lines on stderr, klog (client-go, controller-runtime) routed through the same handler.
// Only the webhook's log output differs from an upstream build; its admission logic is upstream's.
package mlog

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
)

// LogLevel is a verbosity name as accepted by --log-level.
type LogLevel string

const (
	LevelWarning LogLevel = "" // errors and warnings only (the default)
	LevelInfo    LogLevel = "info"
	LevelDebug   LogLevel = "debug"
	LevelTrace   LogLevel = "trace"
	LevelAll     LogLevel = "all"
)

// LogFormat selects the output encoding.
type LogFormat string

const (
	FormatJSON LogFormat = "json"
	FormatText LogFormat = "text"
)

// LogSpec is what ValidateAndSetLogLevelAndFormatGlobally applies.
type LogSpec struct {
	Level  LogLevel  `json:"level,omitempty"`
	Format LogFormat `json:"format,omitempty"`
}

// verbosity thresholds (logr V levels) per level name
var levels = map[LogLevel]int{LevelWarning: 0, LevelInfo: 2, LevelDebug: 4, LevelTrace: 6, LevelAll: 108}

var (
	verbosity atomic.Int64
	textOut   atomic.Bool
	klogOnce  sync.Once
	klogFlags *flag.FlagSet
)

// Logger is a structured logger; messages below the global level are dropped.
type Logger interface {
	Error(msg string, err error, keysAndValues ...any)
	Warning(msg string, keysAndValues ...any)
	Info(msg string, keysAndValues ...any)
	Debug(msg string, keysAndValues ...any)
	Trace(msg string, keysAndValues ...any)
	All(msg string, keysAndValues ...any)
	Always(msg string, keysAndValues ...any)
	WithValues(keysAndValues ...any) Logger
	WithName(name string) Logger
}

type logger struct{ l logr.Logger }

// New returns a logger that follows later changes of the global level and format.
func New() Logger { return logger{l: Logr()} }

// Logr returns the underlying logr.Logger (controller-runtime's log.SetLogger takes one).
func Logr() logr.Logger { return logr.FromSlogHandler(&handler{}) }

func (g logger) Error(msg string, err error, kv ...any) { g.l.Error(err, msg, kv...) }
func (g logger) Warning(msg string, kv ...any) {
	g.l.V(levels[LevelWarning]).Info(msg, append([]any{"warning", true}, kv...)...)
}
func (g logger) Info(msg string, kv ...any)   { g.l.V(levels[LevelInfo]).Info(msg, kv...) }
func (g logger) Debug(msg string, kv ...any)  { g.l.V(levels[LevelDebug]).Info(msg, kv...) }
func (g logger) Trace(msg string, kv ...any)  { g.l.V(levels[LevelTrace]).Info(msg, kv...) }
func (g logger) All(msg string, kv ...any)    { g.l.V(levels[LevelAll]).Info(msg, kv...) }
func (g logger) Always(msg string, kv ...any) { g.l.Info(msg, kv...) } // V(0): always written
func (g logger) WithValues(kv ...any) Logger  { return logger{l: g.l.WithValues(kv...)} }
func (g logger) WithName(name string) Logger  { return logger{l: g.l.WithName(name)} }

// Enabled reports whether messages of the given level are written.
func Enabled(level LogLevel) bool {
	v, ok := levels[level]
	return ok && int64(v) <= verbosity.Load()
}

// ValidateAndSetLogLevelAndFormatGlobally checks spec, applies it to this package and to klog.
func ValidateAndSetLogLevelAndFormatGlobally(_ context.Context, spec LogSpec) error {
	v, ok := levels[spec.Level]
	if !ok {
		return fmt.Errorf("invalid log level %q: valid choices are the empty string, info, debug, trace and all", spec.Level)
	}
	switch spec.Format {
	case "", FormatJSON:
		textOut.Store(false)
	case FormatText:
		textOut.Store(true)
	default:
		return fmt.Errorf("invalid log format %q: valid choices are the empty string, json and text", spec.Format)
	}
	verbosity.Store(int64(v))
	klogOnce.Do(func() {
		klogFlags = flag.NewFlagSet("klog", flag.ContinueOnError)
		klog.InitFlags(klogFlags)
		klog.SetLogger(Logr())
	})
	return klogFlags.Set("v", strconv.Itoa(v)) // klog checks its own -v before calling the logger
}

// Setup returns the function to defer in main: it flushes buffered log output.
func Setup() func() { return klog.Flush }

// Fatal logs err and exits with status 1.
func Fatal(err error, keysAndValues ...any) {
	New().Error("terminating due to fatal error", err, keysAndValues...)
	klog.Flush()
	os.Exit(1)
}

// handler is a slog.Handler that applies the global level and format at the time of each record,
// replaying the attributes and groups it was derived with onto the current base handler.
type handler struct {
	ops []func(slog.Handler) slog.Handler
}

func (h *handler) base() slog.Handler {
	opts := &slog.HandlerOptions{
		Level: slog.Level(-1 << 20), // filtering happens in Enabled
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.LevelKey {
				a.Value = slog.StringValue(levelName(a.Value.Any().(slog.Level)))
			}
			return a
		},
	}
	var b slog.Handler
	if textOut.Load() {
		b = slog.NewTextHandler(os.Stderr, opts)
	} else {
		b = slog.NewJSONHandler(os.Stderr, opts)
	}
	for _, op := range h.ops {
		b = op(b)
	}
	return b
}

// levelName names a record's level after the verbosity that lets it through.
func levelName(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warning"
	case l >= -slog.Level(levels[LevelInfo]):
		return "info"
	case l >= -slog.Level(levels[LevelDebug]):
		return "debug"
	case l >= -slog.Level(levels[LevelTrace]):
		return "trace"
	}
	return "all"
}

func (h *handler) Enabled(_ context.Context, level slog.Level) bool {
	// logr maps V(n).Info to slog level -n and Error to slog.LevelError
	return level >= slog.LevelWarn || int64(-level) <= verbosity.Load()
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error { return h.base().Handle(ctx, r) }

func (h *handler) derive(op func(slog.Handler) slog.Handler) *handler {
	ops := make([]func(slog.Handler) slog.Handler, len(h.ops), len(h.ops)+1)
	copy(ops, h.ops)
	return &handler{ops: append(ops, op)}
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.derive(func(b slog.Handler) slog.Handler { return b.WithAttrs(attrs) })
}

func (h *handler) WithGroup(name string) slog.Handler {
	return h.derive(func(b slog.Handler) slog.Handler { return b.WithGroup(name) })
}
