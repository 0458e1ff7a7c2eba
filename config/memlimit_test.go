package config

import (
	"strings"
	"testing"
)

func TestParseMemoryLimit(t *testing.T) {
	for in, want := range map[string]MemoryLimit{
		"off": {Off: true}, "OFF": {Off: true}, "70%": {Percent: 70}, "12.5 %": {Percent: 12.5}, "100%": {Percent: 100},
		"1073741824": {Bytes: 1 << 30}, "1GiB": {Bytes: 1 << 30}, "1.5GiB": {Bytes: 3 << 29}, "512MB": {Bytes: 512e6}, "64 MiB": {Bytes: 64 << 20},
	} {
		if got, err := ParseMemoryLimit(in); err != nil || got != want {
			t.Errorf("ParseMemoryLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{"0%": "percentage", "101%": "percentage", "1k": "unit", "1MiB": "32MiB", "lots": "unknown unit", "1.2.3GB": "want bytes", "": "empty"} {
		if _, err := ParseMemoryLimit(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMemoryLimit(%q): %v, want an error mentioning %q", in, err, want)
		}
	}
	if got := (MemoryLimit{Percent: 50}).Resolve(1 << 30); got != 1<<29 {
		t.Errorf("50%% of 1GiB = %d", got)
	}
	if got := (MemoryLimit{Percent: 50}).Resolve(0); got != 0 {
		t.Errorf("50%% of unknown = %d, want no limit", got)
	}
}

func TestMemoryLimitDefault(t *testing.T) {
	cfg, err := Parse("m.yaml", []byte("binds: [{listen_address: \"127.0.0.1:53\"}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.General.MemoryLimit != (MemoryLimit{Percent: DefaultMemoryLimitPercent}) {
		t.Errorf("default %+v", cfg.General.MemoryLimit)
	}
	_, err = Parse("m.yaml", []byte("binds: [{listen_address: \"127.0.0.1:53\"}]\ngeneral:\n  memory_limit: 2 bananas\n"))
	if err == nil || !strings.Contains(err.Error(), "m.yaml:3:") || !strings.Contains(err.Error(), "unknown unit") {
		t.Errorf("err = %v", err)
	}
}
