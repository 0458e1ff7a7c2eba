package rules

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

// TestSuffixSetAgainstNaive compares SuffixSet with a plain string walk over random names.
func TestSuffixSetAgainstNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	labels := []string{"a", "b", "ex", "Example", "com", "net", "x-y", "q"}
	randName := func() string {
		n := 1 + r.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = labels[r.IntN(len(labels))]
		}
		return strings.Join(parts, ".") + "."
	}
	var set []string
	for i := 0; i < 40; i++ {
		set = append(set, randName())
	}
	s, err := NewSuffixSet(set)
	if err != nil {
		t.Fatal(err)
	}
	naive := func(name string) bool {
		name = strings.ToLower(name)
		for _, x := range set {
			x = strings.ToLower(x)
			if name == x || strings.HasSuffix(name, "."+x) {
				return true
			}
		}
		return false
	}
	for i := 0; i < 5000; i++ {
		n := randName()
		w, err := nameToWire(n)
		if err != nil {
			t.Fatal(err)
		}
		w[1] = lower(w[1]) - 32*byte(r.IntN(2))*btoi(w[1] >= 'a' && w[1] <= 'z') // mixed case on the wire
		if got, want := s.Match(w), naive(n); got != want {
			t.Fatalf("Match(%s) = %v, want %v (set %v)", n, got, want, set)
		}
	}
	root, _ := NewSuffixSet([]string{"."})
	if w, _ := nameToWire("anything.example."); !root.Match(w) {
		t.Fatal("the root does not match every name")
	}
}

func btoi(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// TestNetmaskGroupAgainstNaive compares NetmaskGroup with netip.Prefix.Contains, on small
// groups (no index) and large ones (indexed), with overlapping and adjacent prefixes.
func TestNetmaskGroupAgainstNaive(t *testing.T) {
	for _, size := range []int{5, 3000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(size), 9))
			var ps []netip.Prefix
			for i := 0; i < size; i++ {
				if i%3 == 0 {
					var a [16]byte
					a[0], a[1], a[2] = 0x20, 0x01, byte(r.IntN(4))
					a[3] = byte(r.Uint32())
					ps = append(ps, netip.PrefixFrom(netip.AddrFrom16(a), 20+r.IntN(100)).Masked())
					continue
				}
				v := r.Uint32() & 0x0fffffff
				ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), 4+r.IntN(29)).Masked())
			}
			ps = append(ps, netip.MustParsePrefix("0.0.0.0/32"), netip.MustParsePrefix("255.255.255.255/32"), netip.MustParsePrefix("::ffff:100.64.0.0/106"))
			g := NewNetmaskGroup(ps)
			for i := 0; i < 20000; i++ {
				var a netip.Addr
				switch i % 4 {
				case 0:
					v := r.Uint32() & 0x0fffffff
					a = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
				case 1:
					a = ps[r.IntN(len(ps))].Addr()
				case 2:
					p := ps[r.IntN(len(ps))]
					a = lastAddr(p)
				default:
					var b [16]byte
					b[0], b[1], b[2], b[3] = 0x20, 0x01, byte(r.IntN(4)), byte(r.Uint32())
					a = netip.AddrFrom16(b)
				}
				want := false
				for _, p := range ps {
					pp := p
					if p.Addr().Is4In6() {
						pp = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
					}
					want = want || pp.Contains(a.Unmap())
				}
				if got := g.Contains(a); got != want {
					t.Fatalf("Contains(%v) = %v, want %v", a, got, want)
				}
			}
		})
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestClientLimiterExpiry drops idle buckets after the expiration.
func TestClientLimiterExpiry(t *testing.T) {
	l := NewClientLimiter(ClientLimiterConfig{QPS: 1, Shards: 1, Expiration: 10e9, CleanupDelay: 1e9, ScanFraction: 1})
	for i := 0; i < 100; i++ {
		l.Allow(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 1e9)
	}
	if l.Len() != 100 {
		t.Fatalf("%d buckets, want 100", l.Len())
	}
	l.Allow(netip.MustParseAddr("198.51.100.1"), 30e9)
	if l.Len() != 1 {
		t.Fatalf("%d buckets after expiry, want 1", l.Len())
	}
}

// TestLimiterRate: over ten simulated seconds a limiter lets rate×10 + burst queries through.
func TestLimiterRate(t *testing.T) {
	l := NewLimiter(100, 20)
	n := 0
	for now := int64(1); now <= 10e9; now += 1e6 { // 1000 attempts a second
		if l.Allow(now) {
			n++
		}
	}
	if n < 1015 || n > 1021 {
		t.Fatalf("%d queries allowed in 10 s at 100/s burst 20", n)
	}
}

func TestTLSLimiter(t *testing.T) {
	l := NewTLSLimiter(TLSLimits{NewSessionsPerSecond: 5, ResumedSessionsPerSecond: 50, MaxConcurrentHandshakes: 2, BanDuration: 10e9})
	a := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	now := int64(1e9)
	first, second, third := l.Begin(a, now), l.Begin(a, now), l.Begin(a, now)
	if !first || !second || third {
		t.Fatal("concurrent handshake cap of 2 not applied")
	}
	l.Abort(a, now)
	if !l.Begin(a, now) {
		t.Fatal("Abort did not release a slot")
	}
	l.Done(a, false, now)
	l.Done(a, false, now)
	for i := 0; i < 3; i++ {
		if !l.Begin(a, now) || !l.Done(a, false, now) {
			t.Fatalf("new session %d within the burst refused", i+3)
		}
	}
	if !l.Begin(a, now) || l.Done(a, false, now) {
		t.Fatal("6th new session in one second accepted")
	}
	if !l.Banned(a, now+9e9) || l.Begin(a, now+9e9) {
		t.Fatal("client not banned after exceeding the rate")
	}
	if l.Banned(other, now) || !l.Begin(other, now) || !l.Done(other, true, now) {
		t.Fatal("another client affected by the ban")
	}
	if l.Banned(a, now+11e9) || !l.Begin(a, now+11e9) {
		t.Fatal("ban not lifted after its duration")
	}
	// Resumptions have their own budget.
	b := netip.MustParseAddr("2001:db8::1")
	for i := 0; i < 50; i++ {
		if !l.Begin(b, now) || !l.Done(b, true, now) {
			t.Fatalf("resumption %d refused", i)
		}
	}
	if !l.Begin(b, now) || l.Done(b, true, now) {
		t.Fatal("51st resumption in one second accepted")
	}
}
