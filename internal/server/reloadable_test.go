package server

import (
	"strings"
	"testing"

	"github.com/dnsfront/dnsfront/config"
)

const baseConfig = `
binds:
  - listen_address: "127.0.0.1:53"
  - listen_address: "127.0.0.1:853"
    protocol: DoT
    tls:
      certificates: [{certificate: a.pem, key: a.key}]
backends: [{address: "127.0.0.1:5353"}]
`

func TestStartOnlyUnchanged(t *testing.T) {
	old, err := config.Parse("/etc/dnsfront.yaml", []byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, extra string
		want        []string // "" : reloadable
	}{
		{"backends and acl are reloadable", "acl: [\"10.0.0.0/8\"]\ngeneral: {gc_percent: 200}\n", nil},
		{"event loops", "general: {event_loops: 7}\n", []string{"general.event_loops"}},
		{"webserver", "webserver: {listen_addresses: [\"127.0.0.1:8080\"]}\n", []string{"webserver"}},
		{"fleet", "fleet: {name: f, etcd: {endpoints: [\"http://127.0.0.1:2379\"]}}\n", []string{"fleet"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cur, err := config.Parse("/etc/dnsfront.yaml", []byte(baseConfig+tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			err = startOnlyUnchanged(old, cur)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) || !strings.Contains(err.Error(), "restart") {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	edits := map[string]struct{ from, to, want string }{
		// The loops' listeners follow the configuration (listeners.go).
		"listener":        {`"127.0.0.1:853"`, `"127.0.0.1:8853"`, ""},
		"bind pool":       {`    protocol: DoT`, "    protocol: DoT\n    pool: other", ""},
		"handshake limit": {`      certificates:`, "      max_concurrent_handshakes: 5\n      certificates:", ""},
		"bind added":      {`backends:`, "  - listen_address: \"127.0.0.1:54\"\nbackends:", ""},
		"certificate":     {`a.pem`, `b.pem`, ""},
	}
	for name, e := range edits {
		t.Run(name, func(t *testing.T) {
			text := strings.Replace(baseConfig, e.from, e.to, 1)
			if strings.Contains(e.to, "pool: other") {
				text += "  - {address: \"127.0.0.1:5354\", pools: [other]}\n"
				text = strings.Replace(text, "backends: [{address: \"127.0.0.1:5353\"}]\n", "backends:\n  - {address: \"127.0.0.1:5353\"}\n", 1)
			}
			cur, err := config.Parse("/etc/dnsfront.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			err = startOnlyUnchanged(old, cur)
			switch {
			case e.want == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case e.want != "" && (err == nil || !strings.Contains(err.Error(), e.want)):
				t.Fatalf("error %v, want one naming %s", err, e.want)
			}
		})
	}
}
