package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// MemoryLimit is general.memory_limit, the Go runtime's soft memory limit: a byte count
// ("1610612736", "1.5GiB", "512MB"), a percentage of the memory the process may use
// ("70%": of its cgroup's memory.max, else of the machine's memory), or "off".
type MemoryLimit struct {
	Bytes   int64   // > 0: a fixed limit
	Percent float64 // > 0: a share of the memory available
	Off     bool    // no limit: gc_percent alone paces the collector
}

// minMemoryLimit: below a few tens of megabytes the collector would run continuously
// for a server whose baseline (runtime, loops, buffers) is already about that size.
const minMemoryLimit = 32 << 20

// ParseMemoryLimit reads the forms MemoryLimit describes.
func ParseMemoryLimit(s string) (MemoryLimit, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return MemoryLimit{}, fmt.Errorf("empty memory limit")
	case strings.EqualFold(s, "off"):
		return MemoryLimit{Off: true}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(s, "%")), 64)
		if err != nil || p <= 0 || p > 100 || math.IsNaN(p) {
			return MemoryLimit{}, fmt.Errorf("memory limit %q: a percentage must be above 0%% and at most 100%%", s)
		}
		return MemoryLimit{Percent: p}, nil
	}
	b, err := parseBytes(s)
	if err != nil {
		return MemoryLimit{}, fmt.Errorf("memory limit %q: %w; or a percentage (\"70%%\"), or \"off\"", s, err)
	}
	if b < minMemoryLimit || b > math.MaxInt64/2 {
		return MemoryLimit{}, fmt.Errorf("memory limit %q: want at least 32MiB", s)
	}
	return MemoryLimit{Bytes: int64(b)}, nil
}

// Resolve returns the limit in bytes for a process that may use available bytes (0:
// unknown), or 0 for no limit.
func (m MemoryLimit) Resolve(available int64) int64 {
	switch {
	case m.Off:
		return 0
	case m.Bytes > 0:
		return m.Bytes
	case m.Percent > 0 && available > 0:
		return max(int64(float64(available)*m.Percent/100), minMemoryLimit)
	}
	return 0
}

// String writes the limit as it is written in the configuration.
func (m MemoryLimit) String() string {
	switch {
	case m.Off:
		return "off"
	case m.Bytes > 0:
		return strconv.FormatInt(m.Bytes, 10)
	case m.Percent > 0:
		return strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
	}
	return ""
}

// UnmarshalYAML implements yaml.NodeUnmarshaler, so that a bad value is reported at its position.
func (m *MemoryLimit) UnmarshalYAML(node ast.Node) error {
	s := strings.Trim(strings.TrimSpace(node.String()), `"'`)
	v, err := ParseMemoryLimit(s)
	if err != nil {
		return &yaml.SyntaxError{Message: err.Error(), Token: node.GetToken()}
	}
	*m = v
	return nil
}

// MarshalYAML writes the limit as it is read.
func (m MemoryLimit) MarshalYAML() ([]byte, error) { return []byte(m.String()), nil }
