package e2e

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// TestACLDropsOutsiders: with an ACL that excludes 127.0.0.1, a UDP query gets no answer
// at all (dropped silently, like dnsdist) and a TCP connection is closed; both are counted.
func TestACLDropsOutsiders(t *testing.T) {
	t.Parallel()
	be := StartBackend(t, BackendOptions{Records: exampleRecords})
	cfg := do53FE(be.Addr)
	cfg.ACL = `["10.0.0.0/8"]`
	d := startFE(t, cfg)
	addr := d.Addr("dns")
	before := d.Metric(`dnsfront_dropped_queries_total{reason="acl"}`)

	r, err := ExchangeTimeout("udp", addr, NewQuery("www.example.test", dns.TypeA), 500*time.Millisecond)
	if !isTimeout(err) {
		t.Errorf("UDP query from outside the ACL: answer %v, err %v; want no answer (timeout)", r, err)
	}

	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	wire, _ := NewQuery("www.example.test", dns.TypeA).Pack()
	_, _ = conn.Write(binary.BigEndian.AppendUint16(nil, uint16(len(wire))))
	_, _ = conn.Write(wire)
	n, err := conn.Read(make([]byte, 512))
	if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)) {
		t.Errorf("TCP connection from outside the ACL: read %d bytes, err %v; want it closed", n, err)
	}
	if got := be.Count(""); got != 0 {
		t.Errorf("the backend saw %d queries from a client outside the ACL", got)
	}
	after := d.WaitMetric(`dnsfront_dropped_queries_total{reason="acl"}`, 10*time.Second, func(v float64) bool { return v >= before+2 })
	if after < before+2 {
		t.Errorf(`dnsfront_dropped_queries_total{reason="acl"} went %v → %v, want at least +2 (one UDP query, one TCP connection)`, before, after)
	}
}

// TestACLIPv6Loopback: acl ["::1/128"] lets ::1 query and drops 127.0.0.1.
func TestACLIPv6Loopback(t *testing.T) {
	t.Parallel()
	testutil.RequireIPv6Loopback(t)
	be := StartBackend(t, BackendOptions{Records: exampleRecords})
	d := Start(t, `
general:
  event_loops: 2
acl: ["::1/128"]
binds:
  - listen_address: "[::1]:{{port "dns6"}}"
  - listen_address: "127.0.0.1:{{port "dns"}}"
backends:
  - address: "{{.}}"
    health_checks: {mode: up}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`, be.Addr)
	for _, proto := range []string{"udp", "tcp"} {
		r := MustExchange(t, proto, d.Addr("dns6"), NewQuery("www.example.test", dns.TypeA))
		got := AnswerStrings(r)
		slices.Sort(got)
		if !slices.Equal(got, []string{"198.51.100.7", "198.51.100.8"}) {
			t.Errorf("%s over ::1: answer %q", proto, got)
		}
	}
	out := Dig(t, d.Addr("dns6"), "+short", "www.example.test", "AAAA")
	if got := shortLines(out); !slices.Equal(got, []string{"2001:db8::7"}) {
		t.Errorf("dig over ::1: %q", got)
	}
	if _, err := ExchangeTimeout("udp", d.Addr("dns"), NewQuery("www.example.test", dns.TypeA), 500*time.Millisecond); !isTimeout(err) {
		t.Errorf("127.0.0.1 is outside acl [::1/128] but got an answer (err %v)", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}
