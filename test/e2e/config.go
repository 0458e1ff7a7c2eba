package e2e

import (
	"bytes"
	"fmt"
	"text/template"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// ports hands out free loopback ports by name, so that a configuration template can
// say {{port "dns"}} and a test can later ask for the same port by that name.
type ports struct {
	byName map[string]int
}

// get returns the port named name, allocating it on first use. Names ending in "6" are
// free on ::1, the others on 127.0.0.1; every port is free for both TCP and UDP, since
// a Do53 bind listens on both.
func (p *ports) get(name string) (int, error) {
	if n, ok := p.byName[name]; ok {
		return n, nil
	}
	host := "127.0.0.1"
	if len(name) > 0 && name[len(name)-1] == '6' {
		host = "::1"
	}
	n, err := FreePort(host)
	if err != nil {
		return 0, err
	}
	p.byName[name] = n
	return n, nil
}

// FreePort returns a port that is free for TCP and UDP on host, reserved across the test
// processes of the machine (testutil.ReservePort): dnsfront and several peers listen with
// SO_REUSEPORT, and two of them on one port would share its traffic without an error.
// A program outside the tests may still take it before it is used: Start retries with new
// ports when dnsfront reports a bind conflict.
func FreePort(host string) (int, error) {
	p, err := testutil.ReservePort(host)
	return int(p), err
}

// render expands a configuration template. Besides the fields of data, it offers
// {{port "name"}}: a free port, the same for the same name.
func render(tmpl string, data any, p *ports) ([]byte, error) {
	t, err := template.New("config").Option("missingkey=error").Funcs(template.FuncMap{
		"port": p.get,
	}).Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("config template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("config template: %w", err)
	}
	return b.Bytes(), nil
}
