package e2e

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// queryTimeout bounds every query a test sends; a missing answer fails fast.
const queryTimeout = 5 * time.Second

// NewQuery builds a recursive query for name and qtype, without EDNS.
func NewQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	return m
}

// Exchange sends m over network ("udp" or "tcp") to addr with the miekg/dns client and
// returns the answer. The client does not retry a truncated UDP answer over TCP.
func Exchange(network, addr string, m *dns.Msg) (*dns.Msg, error) {
	return ExchangeTimeout(network, addr, m, queryTimeout)
}

// ExchangeTimeout is Exchange with its own timeout, for queries that must not be answered.
func ExchangeTimeout(network, addr string, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// MustExchange is Exchange that fails the test on error.
func MustExchange(t testing.TB, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	r, err := Exchange(network, addr, m)
	if err != nil {
		t.Fatalf("%s query %s to %s: %v", network, m.Question[0].String(), addr, err)
	}
	return r
}

// AnswerStrings returns the rdata of the answer section's records ("192.0.2.1").
func AnswerStrings(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		s := rr.String()
		h := rr.Header().String()
		out = append(out, strings.TrimSpace(strings.TrimPrefix(s, h)))
	}
	return out
}

// RequireTool returns the path of an external program the test needs: testutil.Tool,
// which fails the test under CI and skips it elsewhere. The third argument, the Debian
// package, documents the call; testutil names the package in its message.
func RequireTool(t testing.TB, name, _ string) string {
	t.Helper()
	return testutil.Tool(t, name)
}

// Dig runs dig with args against addr ("127.0.0.1:port") and returns its output; the
// answer is required. Every run is bounded: +time=5 +tries=1 (far above a loaded
// machine's answer) and a 10 s deadline on the process.
func Dig(t testing.TB, addr string, args ...string) string {
	t.Helper()
	RequireTool(t, "dig", "bind9-dnsutils")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"@" + host, "-p", port, "+time=5", "+tries=1"}, args...)
	return runTool(t, "dig", all...)
}

// Kdig runs kdig (knot-dnsutils) with args against addr and returns its output; the
// answer is required, and waited for up to 5 s.
func Kdig(t testing.TB, addr string, args ...string) string {
	t.Helper()
	return runTool(t, "kdig", kdigArgs(t, addr, "+time=5", args)...)
}

// kdigNoFail runs kdig like Kdig but returns its output whatever its exit status, for
// queries that are expected to fail.
func kdigNoFail(t testing.TB, addr string, args ...string) string {
	t.Helper()
	out, _ := runToolErr("kdig", kdigArgs(t, addr, "+time=2", args)...)
	return out
}

// kdigArgs checks that kdig is installed and returns args after the server address and
// the bounds of the run: wait (+time=N) and +retry=0.
func kdigArgs(t testing.TB, addr, wait string, args []string) []string {
	t.Helper()
	RequireTool(t, "kdig", "knot-dnsutils")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"@" + host, "-p", port, wait, "+retry=0"}, args...)
}

// runTool runs an external tool bounded by 10 s and returns its combined output; an
// error or a non-zero exit fails the test.
func runTool(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := runToolErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runToolErr runs an external tool bounded by 10 s and returns its combined output and
// error, for tools whose failure a test inspects.
func runToolErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}
