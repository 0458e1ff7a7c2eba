package e2e

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// BackendOptions is how a test backend behaves.
type BackendOptions struct {
	// Records is the zone, one RR in text form per entry. A name with records but none of
	// the asked type gets NOERROR and no answer; any other name NXDOMAIN.
	Records []string
	// Delay holds every answer this long; Jitter adds a random [0, Jitter) on top, so that
	// answers leave in another order than their queries came.
	Delay, Jitter time.Duration
	// NeverAnswer drops every query.
	NeverAnswer bool
	// Rcode, when non-zero, answers every query with it and no records (e.g.
	// dns.RcodeServerFailure).
	Rcode int
	// TruncateUDP answers over UDP with TC=1 and no records; TCP gets the full answer.
	TruncateUDP bool
	// Additional records go into every answer's additional section, compressed.
	Additional []string
	// OPTFirst puts the answer's OPT record first in the additional section, which RFC
	// 6891 §6.1.1 allows, instead of last.
	OPTFirst bool
	// Host is the address to listen on (default 127.0.0.1).
	Host string
}

// Received is one query as the backend saw it.
type Received struct {
	Proto string // "udp" or "tcp"
	Msg   *dns.Msg
}

// Backend is an in-process DNS server on UDP and TCP of one loopback port, with the
// behaviour of its BackendOptions; it records every query it receives.
type Backend struct {
	Addr string // host:port, the same for UDP and TCP

	opts  BackendOptions
	zone  zone
	extra []dns.RR

	mu       sync.Mutex
	received []Received
	rnd      *rand.Rand
}

// StartBackend starts a backend; it stops in t.Cleanup.
func StartBackend(t testing.TB, opts BackendOptions) *Backend {
	t.Helper()
	b := &Backend{opts: opts, rnd: rand.New(rand.NewPCG(1, 2))}
	b.extra = parseRRs(t, "backend additional record", opts.Additional)
	b.zone = newZone(parseRRs(t, "backend record", opts.Records))
	b.Addr = testutil.StartDNS(t, dns.HandlerFunc(b.serve), testutil.DNSOptions{Host: opts.Host}).Addr
	return b
}

// txtRecords returns n distinct TXT records for name, each with size bytes of text (in
// strings of at most 250 bytes): the answer's size is what tests of truncation and
// flow control need. Records of 63 bytes make an answer of 30 larger than 1232 bytes.
func txtRecords(name string, n, size int) []string {
	out := make([]string, n)
	for i := range out {
		text := fmt.Sprintf("%02d", i) + strings.Repeat(string(rune('a'+i%26)), size-2)
		var parts []string
		for len(text) > 250 {
			parts = append(parts, `"`+text[:250]+`"`)
			text = text[250:]
		}
		parts = append(parts, `"`+text+`"`)
		out[i] = fmt.Sprintf("%s 300 IN TXT %s", name, strings.Join(parts, " "))
	}
	return out
}

// parseRRs parses records in text form; what names them in the error.
func parseRRs(t testing.TB, what string, texts []string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, r := range texts {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("%s %q: %v", what, r, err)
		}
		out = append(out, rr)
	}
	return out
}

// zone holds a backend's records by lower-cased owner name.
type zone map[string][]dns.RR

func newZone(rrs []dns.RR) zone {
	z := zone{}
	for _, rr := range rrs {
		name := strings.ToLower(rr.Header().Name)
		z[name] = append(z[name], rr)
	}
	return z
}

// lookup returns copies of the records of q's name, type and class, and whether the
// name has any record at all.
func (z zone) lookup(q dns.Question) ([]dns.RR, bool) {
	rrs, ok := z[strings.ToLower(q.Name)]
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype && rr.Header().Class == q.Qclass {
			out = append(out, dns.Copy(rr))
		}
	}
	return out, ok
}

// Received returns a copy of the queries received so far, in arrival order.
func (b *Backend) Received() []Received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Received(nil), b.received...)
}

// Count returns how many queries arrived over proto ("udp", "tcp" or "" for both).
func (b *Backend) Count(proto string) int {
	n := 0
	for _, r := range b.Received() {
		if proto == "" || r.Proto == proto {
			n++
		}
	}
	return n
}

func (b *Backend) serve(w dns.ResponseWriter, r *dns.Msg) {
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	b.mu.Lock()
	b.received = append(b.received, Received{Proto: proto, Msg: r.Copy()})
	var jitter time.Duration
	if b.opts.Jitter > 0 {
		jitter = time.Duration(b.rnd.Int64N(int64(b.opts.Jitter)))
	}
	b.mu.Unlock()
	if b.opts.NeverAnswer {
		return
	}
	if d := b.opts.Delay + jitter; d > 0 {
		time.Sleep(d)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	switch {
	case b.opts.Rcode != 0:
		m.Rcode = b.opts.Rcode
	case b.opts.TruncateUDP && proto == "udp":
		m.Truncated = true
	case len(r.Question) == 1:
		var exists bool
		if m.Answer, exists = b.zone.lookup(r.Question[0]); !exists {
			m.Rcode = dns.RcodeNameError
		}
	}
	// Mirror EDNS: an answer carries OPT only when its query did (RFC 6891 §7).
	for _, rr := range b.extra {
		m.Extra = append(m.Extra, dns.Copy(rr))
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(4096, opt.Do())
		if b.opts.OPTFirst {
			last := len(m.Extra) - 1
			m.Extra = append([]dns.RR{m.Extra[last]}, m.Extra[:last]...)
		}
	}
	m.Compress = true
	_ = w.WriteMsg(m)
}
