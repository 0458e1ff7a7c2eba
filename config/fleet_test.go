package config

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/parser"
)

// parseWithFleet does what Parse does once Config has its fleet field.
func parseWithFleet(t *testing.T, data string) (*Config, *Fleet, Errors) {
	t.Helper()
	file, err := parser.ParseBytes([]byte(data), 0)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Config `yaml:",inline"`
		Fleet  *Fleet `yaml:"fleet"`
	}
	if err := yaml.NewDecoder(bytes.NewReader([]byte(data)), yaml.DisallowUnknownField()).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	cfg := &doc.Config
	cfg.Path, cfg.file = "/etc/dnsfront/fleet.yaml", file
	cfg.applyDefaults()
	doc.Fleet.applyDefaults("/etc/dnsfront")
	v := &validator{name: cfg.Path, file: file}
	cfg.validate(v)
	cfg.validateFleet(v, doc.Fleet)
	return cfg, doc.Fleet, v.errs
}

func TestFleetValid(t *testing.T) {
	cfg, f, errs := parseWithFleet(t, `
binds:
  - listen_address: "127.0.0.1:853"
    protocol: DoT
    tls:
      certificates: [{certificate: a.pem, key: a.key}]
      tickets_keys_rotation_delay: 3600
fleet:
  name: fleet-a
  secret_file: fleet.secret
  etcd:
    endpoints: ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]
    tls: {ca: ca.pem, certificate: member.pem, key: member.key}
    username: dnsfront
    password: s3cret
`)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if f.Etcd.DialTimeout.D() != DefaultFleetDialTimeout {
		t.Errorf("dial_timeout default = %v", f.Etcd.DialTimeout.D())
	}
	if f.SecretFile != "/etc/dnsfront/fleet.secret" || f.Etcd.TLS.CA != "/etc/dnsfront/ca.pem" {
		t.Errorf("paths not made absolute: %q %q", f.SecretFile, f.Etcd.TLS.CA)
	}
	if d, n := cfg.FleetTicketSettings(); d != time.Hour || n != DefaultTicketKeys {
		t.Errorf("ticket settings = %v, %d", d, n)
	}
}

func TestFleetErrors(t *testing.T) {
	_, _, errs := parseWithFleet(t, `
binds:
  - listen_address: "127.0.0.1:853"
    protocol: DoT
    tls:
      certificates: [{certificate: a.pem, key: a.key}]
      ticket_key_file: keys.bin
  - listen_address: "127.0.0.1:443"
    protocol: DoH
    tls:
      certificates: [{certificate: a.pem, key: a.key}]
      number_of_tickets_keys: 3
fleet:
  name: "fleet/a"
  etcd:
    endpoints: ["10.0.0.1:2379", "http://10.0.0.2:2379"]
    tls: {certificate: member.pem}
    password: s3cret
    dial_timeout: -1s
`)
	want := []string{
		"fleet.name:",
		"fleet.etcd.endpoints[0]:",
		"fleet.etcd.endpoints[1]: \"http://10.0.0.2:2379\" is plain http",
		"fleet.etcd.tls: certificate and key go together",
		"fleet.etcd.username: a password needs a username",
		"fleet.etcd.dial_timeout: must be positive",
		"binds[0].tls.ticket_key_file: cannot be used with fleet",
		"binds[1].tls.number_of_tickets_keys: is 3, binds[0] has 5",
	}
	got := errs.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in:\n%s", w, got)
		}
	}
	// Errors name the file and line of the key.
	if !strings.Contains(got, "/etc/dnsfront/fleet.yaml:14:") {
		t.Errorf("fleet.name error not located at line 14:\n%s", got)
	}
}
