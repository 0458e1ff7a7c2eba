package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/engine/lb"
)

func TestParseMinimal(t *testing.T) {
	cfg, err := Parse("min.yaml", []byte(`
binds:
  - listen_address: "127.0.0.1:10053"
    protocol: Do53
backends:
  - address: "127.0.0.1:53"
    name: "resolver1"
acl: ["127.0.0.0/8", "::1/128"]
general:
  event_loops: 0
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Binds[0].Protocol; got != "Do53" {
		t.Errorf("protocol = %q", got)
	}
	if cfg.Backends[0].UDPTimeout != DefaultUDPTimeout || cfg.Backends[0].HealthChecks.QName != DefaultHealthQName {
		t.Errorf("backend defaults not applied: %+v", cfg.Backends[0])
	}
	if cfg.General.DrainTimeout.D() != 5*time.Second {
		t.Errorf("drain timeout = %v", cfg.General.DrainTimeout.D())
	}
}

func TestDefaultACL(t *testing.T) {
	cfg, err := Parse("acl.yaml", []byte("binds: [{listen_address: \"127.0.0.1:53\"}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.ACL) != len(DefaultACL) {
		t.Errorf("acl = %v, want dnsdist's default", cfg.ACL)
	}
}

func TestErrorsCarryPositions(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string // substrings of the error, in order
	}{
		{"typo suggests key", "binds:\n  - listen_adress: \"127.0.0.1:53\"\n", []string{"typo.yaml:2:5", `unknown key "listen_adress"`, `did you mean "listen_address"`}},
		{"wrong type", "binds:\n  - listen_address: \"127.0.0.1:53\"\ngeneral:\n  event_loops: many\n", []string{"typo.yaml:4:16"}},
		{"bad protocol", "binds:\n  - listen_address: \"127.0.0.1:53\"\n    protocol: DNSCrypt\n", []string{"typo.yaml:3:15", "binds[0].protocol", `unknown protocol "DNSCrypt"`}},
		{"bad address", "binds:\n  - listen_address: \"localhost\"\n", []string{"typo.yaml:2:21", "binds[0].listen_address"}},
		{"dot without tls", "binds:\n  - listen_address: \"127.0.0.1:853\"\n    protocol: DoT\n", []string{"binds[0].tls", "needs a tls block"}},
		{"bad acl", "acl: [\"10.0.0.0/33\"]\nbinds: [{listen_address: \"127.0.0.1:53\"}]\n", []string{"typo.yaml:1:7", "acl[0]"}},
		{"bad backend", "binds: [{listen_address: \"127.0.0.1:53\"}]\nbackends:\n  - address: \"dns.google:53\"\n", []string{"typo.yaml:3:14", "backends[0].address", "not names"}},
		{"bad duration", "general:\n  drain_timeout: soon\nbinds: [{listen_address: \"127.0.0.1:53\"}]\n", []string{"typo.yaml:2", "invalid duration"}},
		{"bad policy", "binds: [{listen_address: \"127.0.0.1:53\"}]\nload_balancing_policies:\n  default_policy: fastest\n", []string{"typo.yaml:3:19", "unknown policy"}},
		{"bad tls version", "binds:\n  - listen_address: \"127.0.0.1:853\"\n    protocol: DoT\n    tls:\n      certificates: [{certificate: a.pem, key: a.key}]\n      minimum_version: ssl3\n", []string{"typo.yaml:6:24", "binds[0].tls.minimum_version"}},
		{"syntax", "binds: [\n", []string{"typo.yaml:"}},
		{"duplicate bind", "binds:\n  - listen_address: \"127.0.0.1:53\"\n  - listen_address: \"127.0.0.1:53\"\n", []string{"typo.yaml:3:21", "already used by binds[0]"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("typo.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not Errors", err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error %q lacks %q", msg, w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
}

func TestRelativePathsResolveAgainstConfigDir(t *testing.T) {
	cfg, err := Parse("/etc/dnsfront/dnsfront.yaml", []byte(`
binds:
  - listen_address: "127.0.0.1:853"
    protocol: DoT
    tls:
      certificates: [{certificate: "certs/a.pem", key: "/abs/a.key"}]
      ocsp_response_files: ["/dev/null"]
`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Binds[0].TLS
	if c.Certificates[0].Certificate != "/etc/dnsfront/certs/a.pem" || c.Certificates[0].Key != "/abs/a.key" || c.OCSPResponseFiles[0] != "/dev/null" {
		t.Errorf("paths = %+v %v", c.Certificates[0], c.OCSPResponseFiles)
	}
}

func TestPolicyNames(t *testing.T) {
	for in, want := range map[string]string{
		"least_outstanding": "least_outstanding", "leastOutstanding": "least_outstanding", "leastoutstanding": "least_outstanding",
		"LeastOutstanding": "least_outstanding", "RoundRobin": "round_robin", "roundrobin": "round_robin", "round_robin": "round_robin",
		"consistent_hash": "consistent_hash", "chashed": "consistent_hash", "weighted_random": "weighted_random", "wrandom": "weighted_random",
		"firstAvailable": "first_available", "FIRST_AVAILABLE": "first_available", "nope": "", "round robin": "",
	} {
		if got := CanonicalPolicy(in); got != want {
			t.Errorf("CanonicalPolicy(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every policy name the loader accepts is one the load balancer starts with, and a name
// it rejects is reported at its line.
func TestPolicyNamesAcceptedHereStart(t *testing.T) {
	for _, name := range []string{"RoundRobin", "leastoutstanding", "leastOutstanding", "least_outstanding", "chashed", "Consistent_Hash", "wrandom", "firstAvailable"} {
		src := "binds: [{listen_address: \"127.0.0.1:53\"}]\nbackends: [{address: \"127.0.0.1:5300\", pools: [p]}]\npools:\n  - name: p\n    policy: " + name + "\nload_balancing_policies:\n  default_policy: " + name + "\n"
		cfg, err := Parse("p.yaml", []byte(src))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		pol := map[string]string{"p": cfg.Pools[0].Policy, "": cfg.LoadBalancingPolicies.DefaultPolicy}
		if _, err := lb.NewSet([]lb.BackendConfig{{Address: cfg.Backends[0].Address, Pools: cfg.Backends[0].Pools}}, pol); err != nil {
			t.Errorf("%s: accepted by the loader, rejected by lb: %v", name, err)
		}
	}
	_, err := Parse("p.yaml", []byte("binds: [{listen_address: \"127.0.0.1:53\"}]\npools:\n  - name: p\n    policy: Fastest\n"))
	if err == nil || !strings.Contains(err.Error(), "p.yaml:4:") || !strings.Contains(err.Error(), "pools[0].policy") {
		t.Errorf("error %v, want p.yaml:4: and pools[0].policy", err)
	}
}

func TestDecoderErrorsNameTheKeyPath(t *testing.T) {
	for in, want := range map[string]string{
		"binds:\n  - listen_adress: \"127.0.0.1:53\"\n":                                "binds[0].listen_adress",
		"binds: [{listen_address: \"127.0.0.1:53\"}]\ngeneral:\n  event_loops: many\n": "general.event_loops",
	} {
		_, err := Parse("p.yaml", []byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}
