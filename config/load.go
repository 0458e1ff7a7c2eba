package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Error is one problem in a configuration file, located by file, line, column and key path.
type Error struct {
	File   string
	Line   int
	Column int
	Path   string // YAML path such as binds[0].protocol; empty for syntax errors
	Msg    string
	Err    error // the cause, when the error came from outside the loader (see Config.At)
}

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads, decodes, completes with defaults and validates the file at path.
// Any error is an Errors value whose entries name path:line:column and the key.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for data already read; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, Errors{yamlError(name, err, nil)}
	}
	cfg := &Config{}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField())
		if err := dec.Decode(cfg); err != nil {
			return nil, Errors{yamlError(name, err, file)}
		}
	}
	cfg.Path = name
	cfg.file = file
	cfg.applyDefaults()
	v := &validator{name: name, file: file}
	cfg.validate(v)
	if len(v.errs) > 0 {
		sort.SliceStable(v.errs, func(i, j int) bool { return v.errs[i].Line < v.errs[j].Line })
		return nil, v.errs
	}
	return cfg, nil
}

// At locates err at a key path of this configuration ("binds[1].tls.ticket_key_file"):
// its message becomes file:line:column: path: err, as the loader's own errors read, so a
// problem found later (a certificate that does not load, a ticket key file of the wrong
// size) names the file and the key that led to it.
func (c *Config) At(path string, err error) error {
	e := &Error{File: c.Path, Path: path, Msg: err.Error(), Err: err}
	if c.file != nil {
		v := &validator{name: c.Path, file: c.file}
		e.Line, e.Column = v.position(path)
	}
	return e
}

// yamlError turns a decoder error into an Error with its position and key path, and
// suggests the closest known key for an unknown one.
func yamlError(name string, err error, file *ast.File) *Error {
	var ye yaml.Error
	if !errors.As(err, &ye) {
		return &Error{File: name, Msg: err.Error()}
	}
	e := &Error{File: name, Msg: ye.GetMessage()}
	if tk := ye.GetToken(); tk != nil && tk.Position != nil {
		e.Line, e.Column = tk.Position.Line, tk.Position.Column
		e.Path = pathAt(file, tk.Position.Line, tk.Position.Column)
	}
	var uf *yaml.UnknownFieldError
	if errors.As(err, &uf) && uf.Token != nil {
		key := uf.Token.Value
		e.Msg = fmt.Sprintf("unknown key %q", key)
		if s := closestKey(key); s != "" {
			e.Msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
	}
	return e
}

// pathAt returns the key path ("binds[0].listen_address") of the node at line:column.
func pathAt(file *ast.File, line, col int) string {
	if file == nil {
		return ""
	}
	var found string
	for _, doc := range file.Docs {
		ast.Walk(visitFunc(func(n ast.Node) {
			if tk := n.GetToken(); found == "" && tk != nil && tk.Position != nil && tk.Position.Line == line && tk.Position.Column == col {
				found = n.GetPath()
			}
		}), doc)
	}
	return strings.TrimPrefix(strings.TrimPrefix(found, "$"), ".")
}

type visitFunc func(ast.Node)

func (f visitFunc) Visit(n ast.Node) ast.Visitor {
	f(n)
	return f
}

// knownKeys lists every key of the schema, for suggestions.
func knownKeys() []string {
	seen := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			parts := strings.Split(t.Field(i).Tag.Get("yaml"), ",")
			tag := parts[0]
			if slices.Contains(parts[1:], "inline") {
				// An embedded section (Rules): its keys sit at this level.
				walk(t.Field(i).Type)
				continue
			}
			if tag == "" || tag == "-" || seen[tag] {
				continue
			}
			seen[tag] = true
			walk(t.Field(i).Type)
		}
	}
	walk(reflect.TypeOf(Config{}))
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// closestKey returns the known key nearest to key by edit distance, if it is close enough
// to be a typo.
func closestKey(key string) string {
	best, bestDist := "", len(key)/2+2
	for _, k := range knownKeys() {
		if d := editDistance(key, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// validator collects errors and locates key paths in the parsed file.
type validator struct {
	name string
	file *ast.File
	errs Errors
}

// errorf records an error at the YAML path (e.g. "binds[0].protocol").
func (v *validator) errorf(path, format string, args ...any) {
	e := &Error{File: v.name, Path: path, Msg: fmt.Sprintf(format, args...)}
	e.Line, e.Column = v.position(path)
	v.errs = append(v.errs, e)
}

// position finds the line and column of path, falling back to its nearest parent
// that is in the file (a missing key is reported where its parent is).
func (v *validator) position(path string) (int, int) {
	for p := path; p != ""; p = parentPath(p) {
		yp, err := yaml.PathString("$." + p)
		if err != nil {
			continue
		}
		node, err := yp.FilterFile(v.file)
		if err != nil || node == nil {
			continue
		}
		if tk := node.GetToken(); tk != nil && tk.Position != nil {
			return tk.Position.Line, tk.Position.Column
		}
	}
	return 0, 0
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

// Duration is a time.Duration written as a Go duration string ("30s", "24h"); a bare
// integer means seconds.
type Duration time.Duration

// UnmarshalYAML implements yaml.NodeUnmarshaler, so that a bad value is reported at its position.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	s := strings.Trim(strings.TrimSpace(node.String()), `"'`)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*d = Duration(time.Duration(n) * time.Second)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &yaml.SyntaxError{Message: fmt.Sprintf("invalid duration %q (want e.g. \"30s\", \"24h\")", s), Token: node.GetToken()}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in Go's notation.
func (d Duration) MarshalYAML() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
