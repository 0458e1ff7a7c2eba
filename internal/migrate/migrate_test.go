package migrate

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

func convertFile(t *testing.T, name string) (*Result, *config.Config) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Convert(name, data)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("converted.yaml", r.YAML)
	if err != nil {
		t.Fatalf("the converted configuration does not load: %v\n%s", err, r.YAML)
	}
	return r, cfg
}

func hasNote(r *Result, parts ...string) bool {
	for _, n := range r.Notes {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(n, p)
		}
		if ok {
			return true
		}
	}
	return false
}

func TestFromLua(t *testing.T) {
	r, cfg := convertFile(t, "dnsdist.conf")
	if len(cfg.Binds) != 4 {
		t.Fatalf("%d binds, want 4 (setLocal replaces the default listener)\n%s", len(cfg.Binds), r.YAML)
	}
	b := cfg.Binds
	if b[0].ListenAddress != "192.0.2.1:53" || b[0].Protocol != "Do53" {
		t.Errorf("bind 0: %+v", b[0])
	}
	if b[1].ListenAddress != "[2001:db8::1]:53" || b[1].TCP == nil || b[1].TCP.MaxConcurrentConnections != 1000 {
		t.Errorf("bind 1: %+v", b[1])
	}
	dot := b[2]
	if dot.Protocol != "DoT" || dot.TLS == nil || len(dot.TLS.Certificates) != 1 ||
		dot.TLS.Certificates[0].Key != "/etc/dnsdist/server.key" ||
		len(dot.TLS.OCSPResponseFiles) != 1 || dot.TLS.MinimumVersion != "tls1.2" || dot.TLS.NumberOfTicketsKeys != 5 {
		t.Errorf("DoT bind: %+v", dot.TLS)
	}
	if dot.TLS.Ciphers != "" {
		t.Errorf("OpenSSL cipher names carried over as %q", dot.TLS.Ciphers)
	}
	doh := b[3]
	if doh.Protocol != "DoH" || len(doh.TLS.Certificates) != 2 || doh.TLS.Certificates[1].Key != "/etc/dnsdist/rsa.key" ||
		doh.DoH == nil || doh.DoH.IdleTimeout != 60 || len(doh.DoH.Paths) != 1 || doh.DoH.Paths[0] != "/dns-query" ||
		len(doh.DoH.CustomResponseHeaders) != 1 || doh.DoH.CustomResponseHeaders[0].Key != "x-served-by" {
		t.Errorf("DoH bind: tls %+v doh %+v", doh.TLS, doh.DoH)
	}
	if len(cfg.ACL) != 2 || cfg.ACL[1] != "2001:db8::/32" {
		t.Errorf("acl %v", cfg.ACL)
	}
	if len(cfg.Backends) != 2 || cfg.Backends[0].Name != "resolver1" || cfg.Backends[0].HealthChecks.QName != "example.org." ||
		cfg.Backends[0].HealthChecks.Interval != 2 || cfg.Backends[0].HealthChecks.MaxFailures != 3 || cfg.Backends[1].Address != "192.0.2.54" {
		t.Errorf("backends %+v", cfg.Backends)
	}
	if cfg.LoadBalancingPolicies.DefaultPolicy != "roundrobin" {
		t.Errorf("policy %q", cfg.LoadBalancingPolicies.DefaultPolicy)
	}
	if len(cfg.PacketCaches) != 1 || cfg.PacketCaches[0].Size != 100000 || len(cfg.Pools) != 1 || cfg.Pools[0].PacketCache != cfg.PacketCaches[0].Name {
		t.Errorf("caches %+v pools %+v", cfg.PacketCaches, cfg.Pools)
	}
	if len(cfg.Webserver.ListenAddresses) != 1 || cfg.Webserver.APIKey != "secret" || len(cfg.Webserver.ACL) != 1 {
		t.Errorf("webserver %+v", cfg.Webserver)
	}
	if cfg.General.TCPIdleTimeout.D().Seconds() != 5 {
		t.Errorf("tcp idle timeout %v", cfg.General.TCPIdleTimeout.D())
	}
	for _, want := range [][]string{
		{"dnsdist.conf:5:", "ciphers", "OpenSSL"},
		{"dnsdist.conf:5:", "provider", "crypto/tls"},
		{"dnsdist.conf:14:", "useClientSubnet"},
		{"dnsdist.conf:17:", "staleTTL"},
		{"dnsdist.conf:22:", "controlSocket", "not carried over"},
		{"dnsdist.conf:23:", "addAction"},
		{"dnsdist.conf:24:", "Lua code", "function"},
		{"dnsdist.conf:29:", "setKey"},
	} {
		if !hasNote(r, want...) {
			t.Errorf("no note with %q in:\n%s", want, strings.Join(r.Notes, "\n"))
		}
	}
	if hasNote(r, "print") {
		t.Errorf("the body of a function was read as statements:\n%s", strings.Join(r.Notes, "\n"))
	}
}

func TestFromYAML(t *testing.T) {
	r, cfg := convertFile(t, "dnsdist.yml")
	if len(cfg.ACL) != 1 || cfg.ACL[0] != "192.0.2.0/24" {
		t.Errorf("acl %v", cfg.ACL)
	}
	if len(cfg.Binds) != 2 || cfg.Binds[1].TLS == nil || len(cfg.Binds[1].TLS.OCSPResponseFiles) != 1 {
		t.Fatalf("binds %+v", cfg.Binds)
	}
	if cfg.Backends[0].HealthChecks.QName != "example.org." {
		t.Errorf("backend %+v", cfg.Backends[0])
	}
	for _, want := range [][]string{
		{"binds[1].tls.certificates[0].password", "unencrypted"},
		{"binds[1].tls.provider", "left out"},
		{"backends[0].protocol", "left out"},
		{"console", "left out"},
	} {
		if !hasNote(r, want...) {
			t.Errorf("no note with %q in:\n%s", want, strings.Join(r.Notes, "\n"))
		}
	}
	if strings.Contains(string(r.YAML), "hunter2") {
		t.Errorf("the key password was carried into the output:\n%s", r.YAML)
	}
	if !strings.Contains(string(r.YAML), "# Not carried over") {
		t.Errorf("the output does not list what was left out:\n%s", r.YAML)
	}
}

// Values a converter cannot read literally are named, never guessed.
func TestFromLuaComputedValues(t *testing.T) {
	r, err := FromLua("x.lua", []byte("local base = '192.0.2.'\nsetLocal(base .. '1:53')\nnewServer({address=backendAddr})\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !hasNote(r, "x.lua:2:") {
		t.Errorf("a computed listen address was not named:\n%s", strings.Join(r.Notes, "\n"))
	}
	if !hasNote(r, "x.lua:3:", "address", "computed") {
		t.Errorf("a computed backend address was not named:\n%s", strings.Join(r.Notes, "\n"))
	}
}

func TestLexErrors(t *testing.T) {
	for _, src := range []string{"setLocal('unterminated)", "--[[ never closed", "x = [[ never closed"} {
		if _, err := FromLua("bad.lua", []byte(src)); err == nil || !strings.Contains(err.Error(), "bad.lua") {
			t.Errorf("%q: err = %v, want an error naming the file", src, err)
		}
	}
}

func FuzzFromLua(f *testing.F) {
	data, _ := os.ReadFile(filepath.Join("testdata", "dnsdist.conf"))
	f.Add(data)
	f.Add([]byte("newServer{address='1.2.3.4'}"))
	f.Fuzz(func(t *testing.T, src []byte) {
		FromLua("fuzz.lua", src) // must not panic or hang
	})
}

// The Lua fixture is a configuration dnsdist itself accepts, so the
// conversion is tested on what operators really run.
func TestLuaFixtureIsValidDnsdist(t *testing.T) {
	dnsdist := testutil.Tool(t, "dnsdist")
	out, err := exec.Command(dnsdist, "--check-config", "-C", filepath.Join("testdata", "dnsdist.conf")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "OK") {
		t.Fatalf("dnsdist --check-config: %v\n%s", err, out)
	}
}
