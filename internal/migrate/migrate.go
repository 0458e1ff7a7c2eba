// Package migrate turns a dnsdist configuration into a dnsfront one: a
// dnsdist 2.x YAML file, or the Lua directives that a dnsdist 1.x
// configuration uses for listeners, backends, the ACL, the policy, the
// packet cache and the web server.
//
// dnsfront's YAML uses dnsdist 2.x's key names wherever the concept matches,
// so a YAML file is mostly carried over as it is: every key is checked
// against dnsfront's schema (config.Config, by reflection, so the two never
// drift apart), what dnsfront has is kept, and what it has not is left out
// and named. Lua is first read into the same tree, then filtered the same
// way. The result is validated with config.Parse, and any problem is named.
//
// Nothing here touches the network or the files the configuration names.
package migrate

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"github.com/dnsfront/dnsfront/config"
	"github.com/goccy/go-yaml"
)

// Result is a converted configuration and what could not be carried over.
type Result struct {
	// YAML is the dnsfront configuration.
	YAML []byte
	// Notes name each setting left out or changed, with its location in the input.
	Notes []string
}

// Convert reads a dnsdist configuration named name (used in notes) and
// returns the dnsfront equivalent. A file whose name ends in .yml or .yaml,
// or whose content parses as a YAML mapping, is read as dnsdist 2.x YAML;
// anything else as Lua.
func Convert(name string, data []byte) (*Result, error) {
	if isYAML(name, data) {
		return FromYAML(name, data)
	}
	return FromLua(name, data)
}

func isYAML(name string, data []byte) bool {
	if strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".yaml") {
		return true
	}
	if strings.HasSuffix(name, ".lua") || strings.HasSuffix(name, ".conf") {
		return false
	}
	var m yaml.MapSlice
	return yaml.UnmarshalWithOptions(data, &m, yaml.UseOrderedMap()) == nil && len(m) > 0
}

// FromYAML converts a dnsdist 2.x YAML configuration.
func FromYAML(name string, data []byte) (*Result, error) {
	var tree yaml.MapSlice
	if err := yaml.UnmarshalWithOptions(data, &tree, yaml.UseOrderedMap()); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &converter{name: name}
	return c.finish(c.fromDnsdistYAML(tree))
}

type converter struct {
	name  string
	notes []string
}

func (c *converter) notef(format string, a ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, a...))
}

// fromDnsdistYAML applies the few renames between dnsdist 2.x's YAML and
// dnsfront's before the schema filter sees the tree.
func (c *converter) fromDnsdistYAML(tree yaml.MapSlice) yaml.MapSlice {
	for i, it := range tree {
		switch it.Key {
		case "binds":
			binds, _ := it.Value.([]any)
			for j, b := range binds {
				bm, ok := b.(yaml.MapSlice)
				if !ok {
					continue
				}
				binds[j] = c.bindFromYAML(fmt.Sprintf("binds[%d]", j), bm)
			}
		case "acl":
			// dnsdist 2.x accepts a single string too.
			if s, ok := it.Value.(string); ok {
				tree[i].Value = []any{s}
			}
		}
	}
	return tree
}

// bindFromYAML moves dnsdist's per-bind certificate password out (dnsfront
// reads unencrypted keys) and names it.
func (c *converter) bindFromYAML(path string, b yaml.MapSlice) yaml.MapSlice {
	tls, ok := get(b, "tls").(yaml.MapSlice)
	if !ok {
		return b
	}
	certs, _ := get(tls, "certificates").([]any)
	for i, ce := range certs {
		cm, ok := ce.(yaml.MapSlice)
		if !ok {
			continue
		}
		if get(cm, "password") != nil {
			c.notef("%s.tls.certificates[%d].password: dnsfront reads unencrypted private keys; decrypt the key (openssl pkey -in KEY -out KEY.plain) and name that file", path, i)
			certs[i] = del(cm, "password")
		}
	}
	return b
}

// finish filters the tree against dnsfront's schema, renders it and
// validates the result.
func (c *converter) finish(tree yaml.MapSlice) (*Result, error) {
	kept := c.filter(tree, reflect.TypeOf(config.Config{}), "")
	out, err := yaml.MarshalWithOptions(kept, yaml.Indent(2), yaml.IndentSequence(true))
	if err != nil {
		return nil, fmt.Errorf("%s: rendering the result: %w", c.name, err)
	}
	if _, err := config.Parse("(converted from "+c.name+")", out); err != nil {
		if es, ok := err.(config.Errors); ok {
			for _, e := range es {
				c.notef("the result needs attention: %s: %s", e.Path, e.Msg)
			}
		} else {
			c.notef("the result needs attention: %v", err)
		}
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "# dnsfront configuration converted from %s by `dnsfront migrate-dnsdist`.\n", c.name)
	if len(c.notes) > 0 {
		head.WriteString("# Not carried over, or changed (see also the command's output):\n")
		for _, n := range c.notes {
			fmt.Fprintf(&head, "#   - %s\n", n)
		}
	}
	return &Result{YAML: append(head.Bytes(), out...), Notes: c.notes}, nil
}

// filter keeps the parts of v that dnsfront's schema type t has, and notes
// the rest under path.
func (c *converter) filter(v any, t reflect.Type, path string) any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if implementsUnmarshaler(t) {
		return v
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(yaml.MapSlice)
		if !ok {
			c.notef("%s: dnsdist gives a %s here, dnsfront expects a mapping; left out", orRoot(path), kindOf(v))
			return nil
		}
		fields := yamlFields(t)
		var out yaml.MapSlice
		for _, it := range m {
			key := fmt.Sprint(it.Key)
			p := join(path, key)
			ft, ok := fields[key]
			if !ok {
				c.notef("%s: no dnsfront equivalent; left out", p)
				continue
			}
			if fv := c.filter(it.Value, ft, p); fv != nil {
				out = append(out, yaml.MapItem{Key: key, Value: fv})
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			// A scalar where a list is expected is the one-element list.
			list = []any{v}
		}
		out := make([]any, 0, len(list))
		for i, e := range list {
			if fe := c.filter(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); fe != nil {
				out = append(out, fe)
			}
		}
		return out
	default:
		if _, ok := v.(yaml.MapSlice); ok {
			c.notef("%s: dnsdist gives a mapping here, dnsfront expects a %s; left out", path, t.Kind())
			return nil
		}
		return v
	}
}

var unmarshalerType = reflect.TypeOf((*interface {
	UnmarshalYAML([]byte) error
})(nil)).Elem()

// implementsUnmarshaler reports whether t decodes itself (durations, memory
// limits): its YAML form is a scalar, whatever its Go kind.
func implementsUnmarshaler(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	for i := 0; i < pt.NumMethod(); i++ {
		if pt.Method(i).Name == "UnmarshalYAML" {
			return true
		}
	}
	return pt.Implements(unmarshalerType)
}

// yamlFields maps the YAML keys of struct type t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		m[tag] = t.Field(i).Type
	}
	return m
}

func get(m yaml.MapSlice, key string) any {
	for _, it := range m {
		if it.Key == key {
			return it.Value
		}
	}
	return nil
}

func del(m yaml.MapSlice, key string) yaml.MapSlice {
	out := m[:0]
	for _, it := range m {
		if it.Key != key {
			out = append(out, it)
		}
	}
	return out
}

func set(m yaml.MapSlice, key string, v any) yaml.MapSlice {
	for i, it := range m {
		if it.Key == key {
			m[i].Value = v
			return m
		}
	}
	return append(m, yaml.MapItem{Key: key, Value: v})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(top level)"
	}
	return path
}

func kindOf(v any) string {
	switch v.(type) {
	case []any:
		return "list"
	case yaml.MapSlice:
		return "mapping"
	case nil:
		return "null"
	}
	return "scalar"
}
