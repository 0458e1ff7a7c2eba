package packetcache

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

type qopt struct {
	edns, do, cd bool
	noRD         bool
}

func newQuery(name string, qtype uint16, o qopt) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = dns.Id()
	m.RecursionDesired = !o.noRD
	m.CheckingDisabled = o.cd
	if o.edns || o.do {
		m.SetEdns0(1232, o.do)
	}
	return m
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rr(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// answer builds a compressed response to q with the given rcode and records.
func answer(t testing.TB, q *dns.Msg, rcode int, an, ns []string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetRcode(q, rcode)
	m.Compress = true
	for _, s := range an {
		m.Answer = append(m.Answer, rr(t, s))
	}
	for _, s := range ns {
		m.Ns = append(m.Ns, rr(t, s))
	}
	if o := q.IsEdns0(); o != nil {
		m.SetEdns0(4096, o.Do())
	}
	return m
}

func unpack(t testing.TB, b []byte) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		t.Fatalf("cached answer does not parse: %v", err)
	}
	return m
}

const soa = "example.com. 3600 IN SOA ns.example.com. host.example.com. 1 7200 900 1209600 300"

func TestLifetimeRules(t *testing.T) {
	base := DefaultOptions(100)
	tests := []struct {
		name   string
		opts   func(*Options)
		rcode  int
		tc     bool
		an, ns []string
		life   time.Duration // 0: not cached
	}{
		{name: "positive uses lowest TTL", rcode: dns.RcodeSuccess,
			an: []string{"www.example.com. 300 IN CNAME web.example.com.", "web.example.com. 120 IN A 192.0.2.1"}, life: 120 * time.Second},
		{name: "max_ttl caps", opts: func(o *Options) { o.MaxTTL = 100 }, rcode: dns.RcodeSuccess,
			an: []string{"www.example.com. 100000 IN A 192.0.2.1"}, life: 100 * time.Second},
		{name: "under min_ttl not cached", opts: func(o *Options) { o.MinTTL = 10 }, rcode: dns.RcodeSuccess,
			an: []string{"www.example.com. 5 IN A 192.0.2.1"}},
		{name: "zero TTL not cached", rcode: dns.RcodeSuccess,
			an: []string{"www.example.com. 0 IN A 192.0.2.1"}},
		{name: "NXDOMAIN uses SOA minimum", rcode: dns.RcodeNameError, ns: []string{soa}, life: 300 * time.Second},
		{name: "NXDOMAIN capped by max_negative_ttl", opts: func(o *Options) { o.MaxNegativeTTL = 60 },
			rcode: dns.RcodeNameError, ns: []string{soa}, life: 60 * time.Second},
		{name: "NXDOMAIN uses SOA TTL when lower", rcode: dns.RcodeNameError,
			ns: []string{"example.com. 30 IN SOA ns.example.com. host.example.com. 1 7200 900 1209600 300"}, life: 30 * time.Second},
		{name: "NODATA uses SOA minimum", rcode: dns.RcodeSuccess, ns: []string{soa}, life: 300 * time.Second},
		{name: "NXDOMAIN without SOA not cached", rcode: dns.RcodeNameError},
		{name: "empty NOERROR not cached", rcode: dns.RcodeSuccess},
		{name: "SERVFAIL for temporary_failure_ttl", rcode: dns.RcodeServerFailure, life: 60 * time.Second},
		{name: "REFUSED for temporary_failure_ttl", opts: func(o *Options) { o.TemporaryFailureTTL = 5 },
			rcode: dns.RcodeRefused, life: 5 * time.Second},
		{name: "SERVFAIL not cached with temporary_failure_ttl 0", opts: func(o *Options) { o.TemporaryFailureTTL = 0 },
			rcode: dns.RcodeServerFailure},
		{name: "FORMERR not cached", rcode: dns.RcodeFormatError},
		{name: "TC not cached", rcode: dns.RcodeSuccess, tc: true,
			an: []string{"www.example.com. 300 IN A 192.0.2.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			if tt.opts != nil {
				tt.opts(&o)
			}
			c := New(o)
			q := newQuery("www.example.com.", dns.TypeA, qopt{})
			r := answer(t, q, tt.rcode, tt.an, tt.ns)
			r.Truncated = tt.tc
			c.Insert(pack(t, q), pack(t, r), t0)
			qb := pack(t, q)
			if tt.life == 0 {
				if _, ok := c.Get(qb, nil, t0); ok {
					t.Fatal("answer was cached")
				}
				if st := c.Stats(); st.Uncacheable != 1 || st.Entries != 0 {
					t.Fatalf("stats %+v: want 1 uncacheable, 0 entries", st)
				}
				return
			}
			if _, ok := c.Get(qb, nil, t0.Add(tt.life-time.Second)); !ok {
				t.Fatalf("miss %v after insertion, want hit until %v", tt.life-time.Second, tt.life)
			}
			if _, ok := c.Get(qb, nil, t0.Add(tt.life)); ok {
				t.Fatalf("hit %v after insertion, want expiry", tt.life)
			}
		})
	}
}

func TestHitRewritesIDCaseAndAgesTTLs(t *testing.T) {
	for _, dontAge := range []bool{false, true} {
		t.Run(fmt.Sprintf("dont_age=%v", dontAge), func(t *testing.T) {
			o := DefaultOptions(10)
			o.DontAge = dontAge
			c := New(o)
			q := newQuery("WWW.Example.COM.", dns.TypeA, qopt{do: true})
			// Backends echo the query's case; the owner then compresses to the question.
			r := answer(t, q, dns.RcodeSuccess, []string{
				"WWW.Example.COM. 300 IN CNAME web.example.com.",
				"web.example.com. 200 IN A 192.0.2.1",
			}, []string{"example.com. 1000 IN NS ns.example.com."})
			r.Extra = append([]dns.RR{rr(t, "ns.example.com. 900 IN A 192.0.2.53")}, r.Extra...)
			rb := pack(t, r)
			c.Insert(pack(t, q), rb, t0)

			q2 := newQuery("www.EXAMPLE.com.", dns.TypeA, qopt{do: true})
			q2.Id = 0xbeef
			dst := make([]byte, 3, 512) // Get appends after existing bytes
			out, ok := c.Get(pack(t, q2), dst, t0.Add(10*time.Second+500*time.Millisecond))
			if !ok {
				t.Fatal("miss")
			}
			if len(out) != 3+len(rb) {
				t.Fatalf("len %d, want %d", len(out), 3+len(rb))
			}
			m := unpack(t, out[3:])
			if m.Id != 0xbeef {
				t.Errorf("id %#x, want 0xbeef", m.Id)
			}
			if got := m.Question[0].Name; got != "www.EXAMPLE.com." {
				t.Errorf("question %q, want the query's case", got)
			}
			// The CNAME owner is a pointer to the question: it follows the case.
			if got := m.Answer[0].Header().Name; got != "www.EXAMPLE.com." {
				t.Errorf("answer owner %q, want the query's case", got)
			}
			want := []uint32{290, 190, 990, 890}
			if dontAge {
				want = []uint32{300, 200, 1000, 900}
			}
			got := []uint32{m.Answer[0].Header().Ttl, m.Answer[1].Header().Ttl, m.Ns[0].Header().Ttl, m.Extra[0].Header().Ttl}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("TTLs %v, want %v", got, want)
			}
			opt := m.IsEdns0()
			if opt == nil || !opt.Do() || opt.UDPSize() != 4096 {
				t.Errorf("OPT record altered: %v", opt)
			}
		})
	}
}

func TestKeySeparatesFlags(t *testing.T) {
	c := New(DefaultOptions(100))
	variants := []qopt{{}, {edns: true}, {do: true}, {cd: true}, {do: true, cd: true}, {noRD: true}}
	for i, v := range variants {
		q := newQuery("example.com.", dns.TypeA, v)
		r := answer(t, q, dns.RcodeSuccess, []string{fmt.Sprintf("example.com. 300 IN A 192.0.2.%d", i+1)}, nil)
		c.Insert(pack(t, q), pack(t, r), t0)
	}
	if n := c.Stats().Entries; n != uint64(len(variants)) {
		t.Fatalf("%d entries, want %d", n, len(variants))
	}
	for i, v := range variants {
		out, ok := c.Get(pack(t, newQuery("EXAMPLE.com.", dns.TypeA, v)), nil, t0)
		if !ok {
			t.Fatalf("variant %+v: miss", v)
		}
		a := unpack(t, out).Answer[0].(*dns.A).A.String()
		if want := fmt.Sprintf("192.0.2.%d", i+1); a != want {
			t.Errorf("variant %+v: answer %s, want %s", v, a, want)
		}
	}
	// qtype and qclass are part of the key too.
	if _, ok := c.Get(pack(t, newQuery("example.com.", dns.TypeAAAA, qopt{})), nil, t0); ok {
		t.Error("AAAA query hit the A entry")
	}
	qc := newQuery("example.com.", dns.TypeA, qopt{})
	qc.Question[0].Qclass = dns.ClassCHAOS
	if _, ok := c.Get(pack(t, qc), nil, t0); ok {
		t.Error("CH query hit the IN entry")
	}
}

func TestUncacheableQueriesAndMismatches(t *testing.T) {
	c := New(DefaultOptions(100))
	q := newQuery("example.com.", dns.TypeA, qopt{})
	good := answer(t, q, dns.RcodeSuccess, []string{"example.com. 300 IN A 192.0.2.1"}, nil)

	other := newQuery("example.net.", dns.TypeA, qopt{})
	c.Insert(pack(t, other), pack(t, good), t0) // answer to another question
	tsig := newQuery("example.com.", dns.TypeA, qopt{})
	tsig.SetTsig("key.", dns.HmacSHA256, 300, t0.Unix())
	tsig.Extra = append(tsig.Extra, &dns.TSIG{Hdr: dns.RR_Header{Name: "key.", Rrtype: dns.TypeTSIG, Class: dns.ClassANY}, Algorithm: dns.HmacSHA256, TimeSigned: uint64(t0.Unix()), Fudge: 300})
	notify := newQuery("example.com.", dns.TypeSOA, qopt{})
	notify.Opcode = dns.OpcodeNotify
	for _, m := range []*dns.Msg{tsig, notify} {
		c.Insert(pack(t, m), pack(t, good), t0)
	}
	big := DefaultOptions(10)
	big.MaximumEntrySize = 20
	small := New(big)
	small.Insert(pack(t, q), pack(t, good), t0)
	if st := c.Stats(); st.Entries != 0 || st.Uncacheable != 3 {
		t.Fatalf("stats %+v: want nothing cached, 3 uncacheable", st)
	}
	if st := small.Stats(); st.Entries != 0 {
		t.Fatalf("entry above maximum_entry_size cached: %+v", st)
	}
	if _, ok := c.Get([]byte{1, 2, 3}, nil, t0); ok {
		t.Fatal("short query hit")
	}
}

func TestEvictionAtSizeKeepsReferenced(t *testing.T) {
	o := DefaultOptions(4)
	o.Shards = 1
	c := New(o)
	names := []string{"a.test.", "b.test.", "c.test.", "d.test.", "e.test."}
	ins := func(n string) {
		q := newQuery(n, dns.TypeA, qopt{})
		c.Insert(pack(t, q), pack(t, answer(t, q, 0, []string{n + " 300 IN A 192.0.2.1"}, nil)), t0)
	}
	hit := func(n string) bool {
		_, ok := c.Get(pack(t, newQuery(n, dns.TypeA, qopt{})), nil, t0)
		return ok
	}
	for _, n := range names[:4] {
		ins(n)
	}
	// CLOCK: every slot has its ref bit set by these hits except b's.
	for _, n := range []string{"a.test.", "c.test.", "d.test."} {
		if !hit(n) {
			t.Fatalf("%s: miss before eviction", n)
		}
	}
	ins("e.test.")
	st := c.Stats()
	if st.Entries != 4 || st.Evictions != 1 {
		t.Fatalf("stats %+v: want 4 entries, 1 eviction", st)
	}
	if hit("b.test.") {
		t.Error("b.test (never read) survived, want it evicted")
	}
	for _, n := range []string{"a.test.", "c.test.", "d.test.", "e.test."} {
		if !hit(n) {
			t.Errorf("%s evicted", n)
		}
	}
	// Size is a hard bound whatever the shard count.
	for _, shards := range []int{1, 3, 20} {
		o := DefaultOptions(50)
		o.Shards = shards
		c := New(o)
		for i := range 500 {
			q := newQuery(fmt.Sprintf("n%d.test.", i), dns.TypeA, qopt{})
			c.Insert(pack(t, q), pack(t, answer(t, q, 0, []string{q.Question[0].Name + " 300 IN A 192.0.2.1"}, nil)), t0)
		}
		if st := c.Stats(); st.Entries != 50 || st.Evictions != 450 || st.Insertions != 500 {
			t.Errorf("shards %d: stats %+v, want 50 entries, 450 evictions", shards, st)
		}
	}
}

func TestReplaceInPlace(t *testing.T) {
	c := New(DefaultOptions(10))
	q := newQuery("x.test.", dns.TypeA, qopt{})
	for i := 1; i <= 3; i++ {
		c.Insert(pack(t, q), pack(t, answer(t, q, 0, []string{fmt.Sprintf("x.test. 300 IN A 192.0.2.%d", i)}, nil)), t0)
	}
	out, ok := c.Get(pack(t, q), nil, t0)
	if !ok || unpack(t, out).Answer[0].(*dns.A).A.String() != "192.0.2.3" {
		t.Fatal("latest insertion not served")
	}
	if st := c.Stats(); st.Entries != 1 || st.Insertions != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConcurrentGetInsert(t *testing.T) {
	o := DefaultOptions(64)
	o.Shards = 4
	c := New(o)
	const names = 200
	qs := make([][]byte, names)
	rs := make([][]byte, names)
	for i := range names {
		q := newQuery(fmt.Sprintf("n%d.test.", i), dns.TypeA, qopt{})
		qs[i] = pack(t, q)
		rs[i] = pack(t, answer(t, q, 0, []string{fmt.Sprintf("%s 300 IN A 192.0.2.%d", q.Question[0].Name, i%250)}, nil))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 512)
			for i := range 5000 {
				k := (i*7 + g) % names
				if out, ok := c.Get(qs[k], buf[:0], t0); ok {
					if binary.BigEndian.Uint16(out) != binary.BigEndian.Uint16(qs[k]) || len(out) != len(rs[k]) {
						t.Errorf("entry %d: corrupt hit", k)
						return
					}
				} else {
					c.Insert(qs[k], rs[k], t0)
				}
				if i%1000 == 0 {
					_ = c.Stats()
				}
			}
		}()
	}
	wg.Wait()
	if st := c.Stats(); st.Entries > 64 || st.Hits == 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := DefaultOptions(1000).Validate(); err != nil {
		t.Fatal(err)
	}
	bad := DefaultOptions(0)
	if err := bad.Validate(); err == nil {
		t.Fatal("size 0 accepted")
	}
	c := New(Options{Size: 3, Shards: 20})
	if got := c.Options(); got.Shards != 3 || got.MaximumEntrySize != headerLen {
		t.Fatalf("New did not correct options: %+v", got)
	}
}
