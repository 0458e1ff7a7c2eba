package e2e

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// TestGracefulStop: SIGTERM while 20 queries wait on a slow backend. Every one of them is
// answered, queries sent after the signal are not, and the process exits with 0 once the
// queries in flight are done, well before the drain timeout.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	const inFlight = 20
	be := StartBackend(t, BackendOptions{Records: exampleRecords, Delay: 300 * time.Millisecond})
	// Bounds far above the work: on a loaded machine the 20 queries may take seconds to
	// reach the backend, and the test is about the drain, not about speed.
	const drain = 30 * time.Second
	fe := do53FE(be.Addr)
	fe.DrainTimeout = drain.String()
	fe.Backends[0].UDPTimeout = 20
	d := startFE(t, fe)
	addr := d.Addr("dns")

	type result struct {
		proto string
		r     *dns.Msg
		err   error
	}
	results := make(chan result, inFlight)
	for i := range inFlight {
		proto := "udp"
		if i%2 == 1 {
			proto = "tcp"
		}
		go func() {
			r, err := ExchangeTimeout(proto, addr, NewQuery("www.example.test", dns.TypeA), drain)
			results <- result{proto, r, err}
		}()
	}
	// The queries must be at the backend, not merely sent, for the drain to be tested.
	testutil.Poll(15*time.Second, func() bool { return be.Count("") >= inFlight })
	if n := be.Count(""); n != inFlight {
		t.Fatalf("backend saw %d queries before SIGTERM, want %d", n, inFlight)
	}
	logLen := len(d.Log())
	sigAt := time.Now()
	d.Signal(syscall.SIGTERM)
	if !d.WaitLog("stopping", logLen, 10*time.Second) {
		t.Fatal("dnsfront did not log that it is stopping after SIGTERM")
	}

	// Sent after the signal, during the drain: dropped. The drain may be over already (the
	// answers come 300 ms after the queries): then the port is closed and the query
	// refused, unanswered too.
	if r, err := ExchangeTimeout("udp", addr, NewQuery("www.example.test", dns.TypeA), 150*time.Millisecond); !isTimeout(err) && !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("UDP query sent while draining: answer %v, err %v; want none", r, err)
	}
	if conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
		dc := &dns.Conn{Conn: conn}
		_ = conn.SetDeadline(time.Now().Add(150 * time.Millisecond))
		_ = dc.WriteMsg(NewQuery("www.example.test", dns.TypeA))
		if r, err := dc.ReadMsg(); err == nil {
			t.Errorf("TCP query sent while draining was answered: %v", r)
		}
		conn.Close()
	}

	for range inFlight {
		res := <-results
		if res.err != nil {
			t.Errorf("%s query in flight at SIGTERM: %v", res.proto, res.err)
			continue
		}
		if res.r.Rcode != dns.RcodeSuccess || len(res.r.Answer) != 2 {
			t.Errorf("%s query in flight at SIGTERM: rcode %s, %d answers", res.proto, dns.RcodeToString[res.r.Rcode], len(res.r.Answer))
		}
	}
	if code := d.Wait(stopTimeout); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0", code)
	}
	// Exiting well before the drain timeout shows the drain ended when the last query
	// was answered.
	if took := time.Since(sigAt); took > drain*2/3 {
		t.Errorf("dnsfront took %v to exit after SIGTERM with 300 ms of work in flight (drain_timeout %v)", took, drain)
	}
	if n := be.Count(""); n != inFlight {
		t.Errorf("backend saw %d queries, want only the %d sent before SIGTERM", n, inFlight)
	}
}
