package e2e

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// Fault is how a faultBackend treats the queries it receives.
type Fault int32

const (
	// FaultNone answers from the records (or the synthesised address).
	FaultNone Fault = iota
	// FaultDrop receives and counts queries but never answers.
	FaultDrop
	// FaultServfail answers SERVFAIL to everything.
	FaultServfail
	// FaultFlapHealth answers SERVFAIL to every second health-check query (the first one
	// succeeds) and everything else normally.
	FaultFlapHealth
)

// FaultOptions configure a faultBackend.
type FaultOptions struct {
	// Records is the zone, one RR in text form per entry.
	Records []string
	// Synth, when set, answers every name without records with one A record of this
	// address and TTL 60 (instead of NXDOMAIN).
	Synth string
	// SOA, when set, goes into the authority section of NXDOMAIN and NODATA answers
	// (RFC 2308), so that they can be cached.
	SOA string
	// Servfail names are answered SERVFAIL.
	Servfail []string
	// TruncateUDP names are answered over UDP with TC=1 and no records.
	TruncateUDP []string
	// HealthName is the health-check qname of the dnsfront configuration: its queries
	// are counted apart, answered NOERROR without records unless a fault says otherwise.
	HealthName string
}

// faultBackend is a DNS server on UDP and TCP of one loopback port whose behaviour a test
// changes while dnsfront runs (answer, drop, SERVFAIL, delay, close its port). It counts
// the queries it receives by name, health checks apart, so that a test sees where dnsfront
// sent each query.
type faultBackend struct {
	Addr string

	opts   FaultOptions
	zone   zone
	soa    dns.RR
	health string
	fault  atomic.Int32
	delay  atomic.Int64

	mu      sync.Mutex
	byName  map[string]int
	queries int
	checks  int
	stop    func()
	closed  bool
}

// startFaultBackend starts a faultBackend on 127.0.0.1; it stops in t.Cleanup.
func startFaultBackend(t testing.TB, opts FaultOptions) *faultBackend {
	t.Helper()
	b := &faultBackend{opts: opts, byName: map[string]int{}}
	if opts.HealthName != "" {
		b.health = strings.ToLower(dns.Fqdn(opts.HealthName))
	}
	b.zone = newZone(parseRRs(t, "backend record", opts.Records))
	if opts.SOA != "" {
		b.soa = parseRRs(t, "backend SOA", []string{opts.SOA})[0]
	}
	srv := testutil.StartDNS(t, dns.HandlerFunc(b.serve), testutil.DNSOptions{})
	b.Addr, b.stop = srv.Addr, srv.Stop
	t.Cleanup(b.Close)
	return b
}

// SetFault changes the behaviour for the queries that arrive from now on.
func (b *faultBackend) SetFault(f Fault) { b.fault.Store(int32(f)) }

// SetDelay holds every answer (health checks included) this long.
func (b *faultBackend) SetDelay(d time.Duration) { b.delay.Store(int64(d)) }

// Close closes the backend's sockets: its port is closed from then on (UDP queries get
// ICMP port unreachable, TCP connections are refused).
func (b *faultBackend) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	b.stop()
}

// Queries is the number of queries received other than health checks.
func (b *faultBackend) Queries() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queries
}

// Checks is the number of health-check queries received.
func (b *faultBackend) Checks() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.checks
}

// NameCount is the number of queries received for name (any case, any type).
func (b *faultBackend) NameCount(name string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byName[strings.ToLower(dns.Fqdn(name))]
}

// Names returns the lower-cased names of the queries received, health checks excluded.
func (b *faultBackend) Names() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.byName))
	for n, c := range b.byName {
		if n != b.health {
			out[n] = c
		}
	}
	return out
}

func (b *faultBackend) serve(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	isCheck := b.health != "" && name == b.health
	b.mu.Lock()
	b.byName[name]++
	n := 0
	if isCheck {
		b.checks++
		n = b.checks
	} else {
		b.queries++
	}
	b.mu.Unlock()

	fault := Fault(b.fault.Load())
	if fault == FaultDrop {
		return
	}
	if d := time.Duration(b.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	switch {
	case fault == FaultServfail, fault == FaultFlapHealth && isCheck && n%2 == 0:
		m.Rcode = dns.RcodeServerFailure
	case isCheck:
	case hasName(b.opts.Servfail, name):
		m.Rcode = dns.RcodeServerFailure
	case hasName(b.opts.TruncateUDP, name) && w.RemoteAddr().Network() == "udp":
		m.Truncated = true
	default:
		m.Answer, m.Rcode = b.answer(q)
		if len(m.Answer) == 0 && b.soa != nil {
			m.Ns = []dns.RR{dns.Copy(b.soa)}
		}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(4096, opt.Do())
	}
	m.Compress = true
	_ = w.WriteMsg(m)
}

func (b *faultBackend) answer(q dns.Question) ([]dns.RR, int) {
	if rrs, ok := b.zone.lookup(q); ok {
		return rrs, dns.RcodeSuccess
	}
	if b.opts.Synth == "" {
		return nil, dns.RcodeNameError
	}
	rr, err := dns.NewRR(q.Name + " 60 IN A " + b.opts.Synth)
	if err != nil || q.Qtype != dns.TypeA {
		return nil, dns.RcodeSuccess
	}
	return []dns.RR{rr}, dns.RcodeSuccess
}

func hasName(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(dns.Fqdn(n), name) {
			return true
		}
	}
	return false
}
