package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// cacheSOA is the zone's SOA: TTL 3600, MINIMUM 2, so negative answers live 2 s
// (min(SOA TTL, MINIMUM), RFC 2308).
const cacheSOA = "cache.test. 3600 IN SOA ns.cache.test. host.cache.test. 1 3600 600 86400 2"

var cacheRecords = []string{
	"www.cache.test. 300 IN A 192.0.2.20",
	"www.cache.test. 200 IN A 192.0.2.21",
}

// cacheFrontConfig is a dnsfront with a packet cache: pool "" (Do53 "dns", cleartext DoH
// "dohc") uses cache main (temporary_failure_ttl 1, max_negative_ttl 3600); pool "short"
// (Do53 "dns2") uses cache short (max_negative_ttl 1, temporary_failure_ttl 0). One
// backend serves both pools.
func cacheFrontConfig(be *faultBackend) feConfig {
	return feConfig{
		Binds: []feBind{
			{Port: "dns", Protocol: "Do53"},
			{Port: "dohc", Protocol: "DoH", DoH: `{paths: ["/dns-query"]}`},
			{Port: "dns2", Protocol: "Do53", Pool: "short"},
		},
		Backends: []feBackend{{Name: "b", Addr: be.Addr, Pools: []string{"", "short"}}},
		Pools:    []fePool{{Name: "", Cache: "main"}, {Name: "short", Cache: "short"}},
		Caches: []string{
			"{name: main, size: 1000, shards: 4, temporary_failure_ttl: 1, max_negative_ttl: 3600}",
			"{name: short, size: 1000, shards: 4, temporary_failure_ttl: 0, max_negative_ttl: 1}",
		},
	}
}

func startCacheFront(t *testing.T) (*Dnsfront, *faultBackend, feConfig) {
	t.Helper()
	be := startFaultBackend(t, FaultOptions{
		Records:     cacheRecords,
		SOA:         cacheSOA,
		Servfail:    []string{"sf.cache.test", "sf2.cache.test"},
		TruncateUDP: []string{"tc.cache.test"},
	})
	cfg := cacheFrontConfig(be)
	return startFE(t, cfg), be, cfg
}

func cacheMetric(t *testing.T, d *Dnsfront, name, cache string) float64 {
	t.Helper()
	return metricOf(t, d, "dnsfront_cache_"+name, fmt.Sprintf("cache=%q", cache))
}

func ttls(rrs []dns.RR) []uint32 {
	var out []uint32
	for _, rr := range rrs {
		out = append(out, rr.Header().Ttl)
	}
	slices.Sort(out)
	return out
}

// TestCacheHitMiss: a name asked again (any case, any ID, over UDP or TCP, from any
// event loop) is answered from the cache; the backend sees it once.
func TestCacheHitMiss(t *testing.T) {
	t.Parallel()
	d, be, _ := startCacheFront(t)
	addr := d.Addr("dns")
	hits0, miss0 := cacheMetric(t, d, "hits_total", "main"), cacheMetric(t, d, "misses_total", "main")
	spellings := []string{"www.cache.test", "WWW.cache.test", "www.CACHE.test", "Www.Cache.Test", "www.cache.test"}
	for i, name := range spellings {
		proto := "udp"
		if i%2 == 1 {
			proto = "tcp"
		}
		q := NewQuery(name, dns.TypeA)
		r := MustExchange(t, proto, addr, q)
		got := AnswerStrings(r)
		slices.Sort(got)
		if !slices.Equal(got, []string{"192.0.2.20", "192.0.2.21"}) || r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s over %s: rcode %s answers %q", name, proto, dns.RcodeToString[r.Rcode], got)
		}
		if r.Id != q.Id {
			t.Errorf("%s over %s: ID %d, query's %d", name, proto, r.Id, q.Id)
		}
		if r.Question[0].Name != dns.Fqdn(name) {
			t.Errorf("%s over %s: question spelled %q, want the query's spelling", name, proto, r.Question[0].Name)
		}
		if r.IsEdns0() != nil {
			t.Errorf("%s over %s: answer with OPT to a client without EDNS", name, proto)
		}
	}
	if n := be.NameCount("www.cache.test"); n != 1 {
		t.Errorf("the backend saw www.cache.test %d times for 5 queries, want 1", n)
	}
	// Another type is another entry.
	r := MustExchange(t, "udp", addr, NewQuery("www.cache.test", dns.TypeAAAA))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Errorf("AAAA: %v", r)
	}
	if n := be.NameCount("www.cache.test"); n != 2 {
		t.Errorf("after an AAAA query the backend saw www.cache.test %d times, want 2", n)
	}
	hits, _ := waitMetricOf(t, d, 10*time.Second, func(v float64) bool { return v >= hits0+4 }, "dnsfront_cache_hits_total", `cache="main"`)
	if hits != hits0+4 {
		t.Errorf("dnsfront_cache_hits_total went %v → %v, want +4", hits0, hits)
	}
	if miss := cacheMetric(t, d, "misses_total", "main"); miss != miss0+2 {
		t.Errorf("dnsfront_cache_misses_total went %v → %v, want +2", miss0, miss)
	}
	if e := cacheMetric(t, d, "entries", "main"); e != 2 {
		t.Errorf("dnsfront_cache_entries = %v, want 2", e)
	}
}

// cacheFresh reports whether an entry whose inserting query left at inserted, and whose
// TTL is ttl, must still be in the cache now: it was stored no earlier than inserted. A
// test that ran too slowly to tell says so in its log instead of failing.
func cacheFresh(t *testing.T, what string, inserted time.Time, ttl time.Duration) bool {
	t.Helper()
	if age := time.Since(inserted); age >= ttl {
		t.Logf("%s: not checked, %v passed (TTL %v) on a slow machine", what, age.Round(time.Millisecond), ttl)
		return false
	}
	return true
}

// expectExpiry asks until the backend sees the name again, and checks that this did not
// happen before ttl had passed since inserted (the departure of the query that stored
// the entry): the refetch came before the last answer returned, so if that answer
// returned earlier than inserted+ttl the entry lived less than its TTL.
func expectExpiry(t *testing.T, what string, inserted time.Time, ttl time.Duration, ask func(), count func() int) {
	t.Helper()
	n0 := count()
	testutil.Eventually(t, ttl+15*time.Second, what+" expires", func() bool {
		ask()
		return count() > n0
	})
	if age := time.Since(inserted); age < ttl {
		t.Errorf("%s: fetched again %v after it was stored, before its TTL %v", what, age.Round(time.Millisecond), ttl)
	}
}

// TestCacheTTLDecay: a hit a second or more after the insertion shows the TTLs decreased
// by the entry's age in whole seconds, and so does the DoH cache-control max-age.
func TestCacheTTLDecay(t *testing.T) {
	t.Parallel()
	d, be, _ := startCacheFront(t)
	addr := d.Addr("dns")
	inserted := time.Now()
	r := MustExchange(t, "udp", addr, NewQuery("www.cache.test", dns.TypeA))
	if got := ttls(r.Answer); !slices.Equal(got, []uint32{200, 300}) {
		t.Fatalf("first answer TTLs %v, want [200 300]", got)
	}
	var got []uint32
	testutil.Eventually(t, 15*time.Second, "a hit with decayed TTLs", func() bool {
		got = ttls(MustExchange(t, "udp", addr, NewQuery("www.cache.test", dns.TypeA)).Answer)
		return len(got) != 2 || got[0] < 200
	})
	// The entry is no older than the time since the inserting query left.
	maxAge := uint32(time.Since(inserted) / time.Second)
	if len(got) != 2 || got[0] < 200-maxAge || got[1] != got[0]+100 {
		t.Errorf("hit at most %ds after the insertion: TTLs %v, want [%d..199 %d..299] (decreased by the age)", maxAge, got, 200-maxAge, 300-maxAge)
	}
	// The DoH view of the same entry: max-age is the smallest decayed TTL.
	res := dohQuery(t, newDoHClient(t, nil, "h1c"), dohURL(d, "http", "dohc", "/dns-query"), NewQuery("www.cache.test", dns.TypeA), true)
	m := res.Msg(t)
	want := fmt.Sprintf("max-age=%d", ttls(m.Answer)[0])
	if cc := res.Header.Get("cache-control"); cc != want || ttls(m.Answer)[0] >= 200 {
		t.Errorf("DoH hit: cache-control %q, TTLs %v; want %s below 200", cc, ttls(m.Answer), want)
	}
	if n := be.NameCount("www.cache.test"); n != 1 {
		t.Errorf("the backend saw www.cache.test %d times, want 1", n)
	}
}

// TestCacheNegative: NXDOMAIN and NODATA with an SOA are cached for min(SOA TTL,
// MINIMUM) = 2 s under max_negative_ttl 3600, and for 1 s under max_negative_ttl 1.
func TestCacheNegative(t *testing.T) {
	t.Parallel()
	d, be, _ := startCacheFront(t)
	type probe struct {
		bind, name string
		qtype      uint16
		rcode      int
		ttl        time.Duration
	}
	nx := probe{"dns", "nx.cache.test", dns.TypeA, dns.RcodeNameError, 2 * time.Second}
	nodata := probe{"dns", "www.cache.test", dns.TypeMX, dns.RcodeSuccess, 2 * time.Second}
	short := probe{"dns2", "nx2.cache.test", dns.TypeA, dns.RcodeNameError, time.Second}
	ask := func(p probe) {
		t.Helper()
		r := MustExchange(t, "udp", d.Addr(p.bind), NewQuery(p.name, p.qtype))
		if r.Rcode != p.rcode || len(r.Answer) != 0 || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Errorf("%s %s: rcode %s, %d answers, authority %v", p.name, dns.TypeToString[p.qtype], dns.RcodeToString[r.Rcode], len(r.Answer), r.Ns)
		}
	}
	// expectCached checks, when the machine was quick enough to tell, that the backend
	// saw p once since start.
	expectCached := func(when string, p probe, start time.Time) {
		t.Helper()
		if !cacheFresh(t, when+" "+p.name, start, p.ttl) {
			return
		}
		if n := be.NameCount(p.name); n != 1 {
			t.Errorf("%s: the backend saw %s %d times, want 1", when, p.name, n)
		}
	}
	start := time.Now()
	for range 2 {
		for _, p := range []probe{nx, short, nodata} {
			ask(p)
		}
	}
	expectCached("at once", nx, start)
	expectCached("at once", short, start)
	expectCached("at once (NODATA; www A not asked)", nodata, start)

	expectExpiry(t, "max_negative_ttl 1", start, short.ttl, func() { ask(short) }, func() int { return be.NameCount(short.name) })
	ask(nx)
	ask(nodata)
	expectCached("after the 1 s entry expired (cached 2 s by the SOA MINIMUM)", nx, start)
	expectCached("after the 1 s entry expired (NODATA cached 2 s)", nodata, start)

	expectExpiry(t, "SOA MINIMUM 2 (NXDOMAIN)", start, nx.ttl, func() { ask(nx) }, func() int { return be.NameCount(nx.name) })
	expectExpiry(t, "SOA MINIMUM 2 (NODATA)", start, nodata.ttl, func() { ask(nodata) }, func() int { return be.NameCount(nodata.name) })
}

// TestCacheServfail: SERVFAIL is cached for temporary_failure_ttl (1 s), and not at all
// when it is 0.
func TestCacheServfail(t *testing.T) {
	t.Parallel()
	d, be, _ := startCacheFront(t)
	ask := func(bind, name string) {
		t.Helper()
		if r := MustExchange(t, "udp", d.Addr(bind), NewQuery(name, dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
			t.Errorf("%s: rcode %s, want SERVFAIL", name, dns.RcodeToString[r.Rcode])
		}
	}
	start := time.Now()
	ask("dns", "sf.cache.test")
	ask("dns", "sf.cache.test")
	ask("dns2", "sf2.cache.test")
	ask("dns2", "sf2.cache.test")
	if cacheFresh(t, "temporary_failure_ttl 1 at once", start, time.Second) {
		if n := be.NameCount("sf.cache.test"); n != 1 {
			t.Errorf("temporary_failure_ttl 1: the backend saw sf %d times at once, want 1", n)
		}
	}
	if n := be.NameCount("sf2.cache.test"); n != 2 {
		t.Errorf("temporary_failure_ttl 0: the backend saw sf2 %d times, want 2 (not cached)", n)
	}
	expectExpiry(t, "temporary_failure_ttl 1", start, time.Second, func() { ask("dns", "sf.cache.test") },
		func() int { return be.NameCount("sf.cache.test") })
}

// TestCacheTCNotCached: a truncated answer is passed to the UDP client but never stored.
func TestCacheTCNotCached(t *testing.T) {
	t.Parallel()
	d, be, _ := startCacheFront(t)
	unc0 := cacheMetric(t, d, "uncacheable_total", "main")
	for range 3 {
		r := MustExchange(t, "udp", d.Addr("dns"), NewQuery("tc.cache.test", dns.TypeA))
		if !r.Truncated {
			t.Errorf("tc.cache.test over UDP: TC=0, want the backend's TC=1")
		}
	}
	if n := be.NameCount("tc.cache.test"); n != 3 {
		t.Errorf("the backend saw tc.cache.test %d times for 3 queries, want 3 (TC answers are not cached)", n)
	}
	unc, _ := waitMetricOf(t, d, 10*time.Second, func(v float64) bool { return v >= unc0+3 }, "dnsfront_cache_uncacheable_total", `cache="main"`)
	if unc != unc0+3 {
		t.Errorf("dnsfront_cache_uncacheable_total went %v → %v, want +3", unc0, unc)
	}
}

// TestCacheDOBit: queries without EDNS, with EDNS and DO=0, and with DO=1 are three
// entries; each is then answered from its own.
func TestCacheDOBit(t *testing.T) {
	t.Parallel()
	d, be, _ := startCacheFront(t)
	addr := d.Addr("dns")
	variants := []struct {
		name     string
		edns, do bool
	}{{"no EDNS", false, false}, {"EDNS DO=0", true, false}, {"EDNS DO=1", true, true}}
	for round := range 2 {
		for _, v := range variants {
			q := NewQuery("www.cache.test", dns.TypeA)
			if v.edns {
				q.SetEdns0(1232, v.do)
			}
			r := MustExchange(t, "udp", addr, q)
			opt := r.IsEdns0()
			switch {
			case !v.edns && opt != nil:
				t.Errorf("round %d, %s: answer carries an OPT record", round, v.name)
			case v.edns && opt == nil:
				t.Errorf("round %d, %s: answer without OPT", round, v.name)
			case v.edns && opt.Do() != v.do:
				t.Errorf("round %d, %s: answer DO=%v", round, v.name, opt.Do())
			}
			if len(r.Answer) != 2 {
				t.Errorf("round %d, %s: %d answers", round, v.name, len(r.Answer))
			}
		}
		if n := be.NameCount("www.cache.test"); n != 3 {
			t.Errorf("after round %d the backend saw %d queries, want 3 (one per entry)", round, n)
		}
	}
}

// TestCacheSurvivesReload: a SIGHUP that leaves the cache settings as they are keeps its
// entries; one that changes them starts an empty cache.
func TestCacheSurvivesReload(t *testing.T) {
	t.Parallel()
	d, be, cfg := startCacheFront(t)
	addr := d.Addr("dns")
	MustExchange(t, "udp", addr, NewQuery("www.cache.test", dns.TypeA))
	// Same cache settings, other backend settings.
	same := cfg
	same.Backends = []feBackend{{Name: "b", Addr: be.Addr, Pools: []string{"", "short"}, UDPTimeout: 3}}
	d.Rewrite(same.YAML(), nil)
	reload(t, d)
	MustExchange(t, "udp", addr, NewQuery("www.cache.test", dns.TypeA))
	if n := be.NameCount("www.cache.test"); n != 1 {
		t.Errorf("after a reload with the same cache settings the backend saw %d queries, want 1 (cache kept)", n)
	}
	changed := same
	changed.Caches = []string{
		"{name: main, size: 2000, shards: 4, temporary_failure_ttl: 1, max_negative_ttl: 3600}",
		cfg.Caches[1],
	}
	d.Rewrite(changed.YAML(), nil)
	reload(t, d)
	MustExchange(t, "udp", addr, NewQuery("www.cache.test", dns.TypeA))
	if n := be.NameCount("www.cache.test"); n != 2 {
		t.Errorf("after a reload with another cache size the backend saw %d queries, want 2 (new cache)", n)
	}
}

// TestDnsperfCache runs dnsperf for 3 s (-Q 100000) on 20 hot names against dnsfront with
// the packet cache and without it, and reports the queries per second of each. It checks
// that nearly every query was answered and that the cache answered the hot names.
func TestDnsperfCache(t *testing.T) {
	RequireTool(t, "dnsperf", "dnsperf")
	be := startFaultBackend(t, FaultOptions{Synth: "192.0.2.1"})
	var lines strings.Builder
	for i := range 20 {
		fmt.Fprintf(&lines, "hot%d.perf.test A\n", i)
	}
	qfile := filepath.Join(t.TempDir(), "queries.txt")
	WriteFile(t, qfile, []byte(lines.String()))
	qps := map[bool]float64{}
	for _, cached := range []bool{true, false} {
		cfg := feConfig{
			Binds:    []feBind{{Port: "dns", Protocol: "Do53"}},
			Backends: []feBackend{{Name: "b", Addr: be.Addr}},
		}
		if cached {
			cfg.Pools = []fePool{{Name: "", Cache: "main"}}
			cfg.Caches = []string{"{name: main, size: 10000}"}
		}
		d := startFE(t, cfg)
		before := be.Queries()
		out := runTool(t, "dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(d.Port("dns")),
			"-d", qfile, "-l", "3", "-Q", "100000", "-c", "4", "-t", "2")
		sent, lost := dnsperfStat(out, "Queries sent"), dnsperfStat(out, "Queries lost")
		qps[cached] = dnsperfStat(out, "Queries per second")
		if sent <= 0 || lost > sent/100 {
			t.Errorf("cache %v: dnsperf sent %v, lost %v:\n%s", cached, sent, lost, out)
		}
		backend := be.Queries() - before
		// Queries that arrive while a name's first miss is at the backend miss too.
		if cached && float64(backend) > sent/100 {
			t.Errorf("with the cache the backend saw %d of %v queries for 20 hot names", backend, sent)
		}
		if !cached && float64(backend) < sent-lost-100 {
			t.Errorf("without the cache the backend saw %d of %v queries", backend, sent)
		}
		t.Logf("dnsperf -l 3 -Q 100000, cache %v: %.0f queries/s (%v sent, %v lost, backend saw %d)", cached, qps[cached], sent, lost, backend)
		d.Stop()
	}
	if qps[false] > 0 {
		t.Logf("dnsperf: cache on / cache off = %.2f", qps[true]/qps[false])
	}
}
