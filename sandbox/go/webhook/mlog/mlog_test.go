package mlog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// capture runs f with stderr redirected and returns the JSON lines written.
func capture(t *testing.T, f func()) []map[string]any {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stderr
	os.Stderr = w
	f()
	os.Stderr = saved
	w.Close()
	var buf bytes.Buffer
	buf.ReadFrom(r)
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q", line)
		}
		out = append(out, m)
	}
	return out
}

func TestLevels(t *testing.T) {
	if err := ValidateAndSetLogLevelAndFormatGlobally(context.Background(), LogSpec{Level: "bogus"}); err == nil {
		t.Fatal("bogus level accepted")
	}
	log := New().WithName("handler").WithValues("pod", "p")
	for _, tc := range []struct {
		level LogLevel
		want  []string
	}{
		{LevelWarning, []string{"error"}},
		{LevelInfo, []string{"info", "error"}},
		{LevelDebug, []string{"info", "debug", "error"}},
	} {
		if err := ValidateAndSetLogLevelAndFormatGlobally(context.Background(), LogSpec{Level: tc.level, Format: FormatJSON}); err != nil {
			t.Fatal(err)
		}
		lines := capture(t, func() {
			log.Info("i")
			log.Debug("d")
			log.Trace("t")
			log.Error("e", errors.New("boom"))
		})
		var got []string
		for _, l := range lines {
			got = append(got, l["level"].(string))
			if l["logger"] != "handler" || l["pod"] != "p" {
				t.Errorf("name/values lost: %v", l)
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("level %q: got %v, want %v", tc.level, got, tc.want)
		}
		if !Enabled(tc.level) || Enabled(LevelAll) {
			t.Errorf("Enabled wrong at %q", tc.level)
		}
	}
}
