package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// ByteSize is a size in bytes written with an optional unit: "16777216", "16MiB", "20MB".
type ByteSize uint64

// byteUnits are the units a size may carry: decimal (kB = 1000) and binary (KiB = 1024).
var byteUnits = map[string]float64{
	"": 1, "B": 1,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

// parseBytes reads a byte count with an optional unit.
func parseBytes(s string) (float64, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRightFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' })
	unit := strings.TrimSpace(s[len(num):])
	mult, ok := byteUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", unit)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, fmt.Errorf(`want bytes ("1.5GiB")`)
	}
	return v * mult, nil
}

// UnmarshalYAML implements yaml.NodeUnmarshaler, so that a bad value is reported at its position.
func (b *ByteSize) UnmarshalYAML(node ast.Node) error {
	s := strings.Trim(strings.TrimSpace(node.String()), `"'`)
	v, err := parseBytes(s)
	if err == nil && v > math.MaxInt64/2 {
		err = fmt.Errorf("too large")
	}
	if err != nil {
		return &yaml.SyntaxError{Message: fmt.Sprintf("size %q: %v", s, err), Token: node.GetToken()}
	}
	*b = ByteSize(v)
	return nil
}

// MarshalYAML writes the size in bytes.
func (b ByteSize) MarshalYAML() ([]byte, error) {
	return []byte(strconv.FormatUint(uint64(b), 10)), nil
}
