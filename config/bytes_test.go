package config

import (
	"strings"
	"testing"
)

func TestGCMinHeadroom(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want ByteSize
		err  string
	}{
		{"", DefaultGCMinHeadroom, ""},
		{"general: {gc_min_headroom: 64MiB}\n", 64 << 20, ""},
		{"general: {gc_min_headroom: \"20MB\"}\n", 20e6, ""},
		{"general: {gc_min_headroom: 1048576}\n", 1 << 20, ""},
		{"general: {gc_min_headroom: 5 parsecs}\n", 0, `size "5 parsecs": unknown unit`},
		{"general: {gc_min_headroom: -3MiB}\n", 0, `size "-3MiB"`},
	} {
		cfg, err := Parse("t.yaml", []byte(c.yaml+"binds: [{listen_address: \"127.0.0.1:53\", protocol: Do53}]\n"))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "t.yaml:1:") {
				t.Errorf("%q: err = %v, want t.yaml:1: and %q", c.yaml, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.yaml, err)
			continue
		}
		if cfg.General.GCMinHeadroom != c.want {
			t.Errorf("%q: gc_min_headroom %d, want %d", c.yaml, cfg.General.GCMinHeadroom, c.want)
		}
		if c.yaml == "" && cfg.General.GCPercent != DefaultGCPercent {
			t.Errorf("default gc_percent %d, want %d", cfg.General.GCPercent, DefaultGCPercent)
		}
	}
}
