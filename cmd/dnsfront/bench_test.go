package main

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/bench"
	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

func runBench(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCmd(newBenchCmd(), args...)
}

func answerA(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	w.WriteMsg(m)
}

func startUDP(t *testing.T) string {
	t.Helper()
	return testutil.StartDNS(t, dns.HandlerFunc(answerA), testutil.DNSOptions{Network: "udp"}).Addr
}

// startDoT serves DoT with a leaf for dns.test from the test PKI, whose root is
// written to a PEM file usable as --ca.
func startDoT(t *testing.T) (addr, caFile string) {
	t.Helper()
	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithNames("dns.test"))
	srv := testutil.StartDNS(t, dns.HandlerFunc(answerA), testutil.DNSOptions{
		TLS: &tls.Config{Certificates: []tls.Certificate{p.Leaf.TLSCertificate()}},
	})
	return srv.Addr, p.Root.CertFile
}

func TestBenchCommands(t *testing.T) {
	dir := t.TempDir()
	udp := startUDP(t)
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	for _, f := range []string{a, b} {
		out, err := runBench(t, "query", "--target", udp, "--proto", "udp", "--connections", "2", "--inflight", "4",
			"--duration", "200ms", "--json", f, "--chart", f+".svg", "--label", filepath.Base(f))
		if err != nil {
			t.Fatalf("query: %v\n%s", err, out)
		}
		if !strings.Contains(out, "rate") || !strings.Contains(out, "0 errors") {
			t.Errorf("query table:\n%s", out)
		}
		if _, err := os.Stat(f + ".svg"); err != nil {
			t.Error(err)
		}
	}
	r, err := bench.ReadReport(a)
	if err != nil || r.Results.OK == 0 || r.Params.Protocol != "udp" || r.Label != "a.json" {
		t.Fatalf("report %+v, %v", r, err)
	}

	out, err := runBench(t, "compare", "--markdown", a+","+a, b)
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	if !strings.Contains(out, "| metric | A: a.json | B: b.json | B/A |") || !strings.Contains(out, "| rate /s (higher is better) |") {
		t.Errorf("compare:\n%s", out)
	}
	if _, err := runBench(t, "compare", a); err == nil {
		t.Error("compare with one report accepted")
	}

	svg := filepath.Join(dir, "suite.svg")
	out, err = runBench(t, "summary", "--markdown", "--chart", svg, a, b)
	if err != nil || strings.Count(out, "| a.json |")+strings.Count(out, "| b.json |") != 2 {
		t.Errorf("summary: %v\n%s", err, out)
	}
	if _, err := os.Stat(svg); err != nil {
		t.Error(err)
	}

	dot, ca := startDoT(t)
	hs := filepath.Join(dir, "hs.json")
	out, err = runBench(t, "handshake", "--target", dot, "--sni", "dns.test", "--ca", ca, "--tls", "1.2",
		"--concurrency", "2", "--duration", "500ms", "--server-pid", "0", "--json", hs)
	if err != nil {
		t.Fatalf("handshake: %v\n%s", err, out)
	}
	h, err := bench.ReadReport(hs)
	if err != nil || h.Results.OK == 0 || h.Results.StapleFrac != 0 || h.Params.TLSVersion != "1.2" {
		t.Errorf("handshake report %+v, %v", h, err)
	}
	if _, err := runBench(t, "handshake", "--target", dot, "--sni", "other.test", "--ca", ca, "--duration", "100ms"); err == nil {
		t.Error("handshake with a name the certificate lacks succeeded")
	}
	if _, err := runBench(t, "query", "--target", udp, "--proto", "quic", "--duration", "100ms"); err == nil {
		t.Error("unknown protocol accepted")
	}
}
