package rules

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/dnsfront/dnsfront/config"
	"github.com/miekg/dns"
)

// compileYAML compiles rules written as in a configuration file.
func compileYAML(t testing.TB, doc string) *RuleSet {
	t.Helper()
	r, err := config.ParseRules("test.yml", []byte(doc))
	if err != nil {
		t.Fatalf("rules do not parse: %v", err)
	}
	rs, err := Compile(r, Options{Loops: 2})
	if err != nil {
		t.Fatalf("rules do not compile: %v", err)
	}
	return rs
}

// packQuery builds a query for name and type; edit adjusts the message before packing.
func packQuery(t testing.TB, name string, qtype uint16, edit func(*dns.Msg)) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = 0x1234
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newQuery parses msg into a Query from client.
func newQuery(t testing.TB, msg []byte, client string) *Query {
	t.Helper()
	q := &Query{Client: netip.MustParseAddr(client), Proto: DoUDP, Now: 1}
	if _, err := ParseQuery(q, msg); err != nil {
		t.Fatal(err)
	}
	return q
}

// compileRules parses rules written as in a configuration file.
func compileRules(t testing.TB, doc string) *config.Rules {
	t.Helper()
	r, err := config.ParseRules("test.yml", []byte(doc))
	if err != nil {
		t.Fatalf("rules do not parse: %v", err)
	}
	return r
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
