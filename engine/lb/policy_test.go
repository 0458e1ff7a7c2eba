package lb

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

type fakeView map[int]int

func (v fakeView) Outstanding(id int) int { return v[id] }

var noView = fakeView{}

// newTestSet builds a pool "" with one backend per weight/order pair.
func newTestSet(t testing.TB, policy string, weights, orders []int) (*Set, *Pool) {
	t.Helper()
	var cfgs []BackendConfig
	for i := range weights {
		c := BackendConfig{Name: fmt.Sprintf("b%d", i), Address: fmt.Sprintf("127.0.0.1:%d", 5300+i), Weight: weights[i]}
		if orders != nil {
			c.Order = orders[i]
		}
		cfgs = append(cfgs, c)
	}
	s, err := NewSet(cfgs, map[string]string{"": policy})
	if err != nil {
		t.Fatal(err)
	}
	return s, s.Pool("")
}

func setDown(bs ...*Backend) {
	for _, b := range bs {
		b.SetUp(false, "test", time.Time{})
	}
}

func setUp(bs ...*Backend) {
	for _, b := range bs {
		b.SetUp(true, "test", time.Time{})
	}
}

func countPicks(pk *Picker, view LoopView, n int, hash func(i int) uint64) map[string]int {
	got := map[string]int{}
	for i := range n {
		var h uint64
		if hash != nil {
			h = hash(i)
		}
		if b := pk.Pick(view, h); b != nil {
			got[b.Name]++
		} else {
			got["<nil>"]++
		}
	}
	return got
}

func TestRoundRobinIsExact(t *testing.T) {
	s, p := newTestSet(t, PolicyRoundRobin, []int{1, 5, 1}, nil)
	pk := p.NewLoopPicker()
	if got := countPicks(pk, noView, 3000, nil); got["b0"] != 1000 || got["b1"] != 1000 || got["b2"] != 1000 {
		t.Fatalf("picks %v, want 1000 each (weights ignored)", got)
	}
	setDown(s.Backends[1])
	for w := range 100 { // every window of two picks visits both up backends
		a, b := pk.Pick(noView, 0), pk.Pick(noView, 0)
		if a == b || a.Name == "b1" || b.Name == "b1" {
			t.Fatalf("window %d: picked %s then %s", w, a.Name, b.Name)
		}
	}
	// Loops have independent positions.
	pk2 := p.NewLoopPicker()
	if pk2.Pick(noView, 0).Name != "b0" {
		t.Fatal("a new loop's picker does not start at the first backend")
	}
}

func TestWeightedRandomFollowsWeights(t *testing.T) {
	s, p := newTestSet(t, "wrandom", []int{1, 2, 7}, nil)
	pk := p.NewLoopPicker()
	const n = 200000
	check := func(got map[string]int, want map[string]float64) {
		t.Helper()
		for name, w := range want {
			if f := float64(got[name]) / n; math.Abs(f-w) > 0.01 {
				t.Errorf("%s: share %.4f, want %.2f±0.01 (%v)", name, f, w, got)
			}
		}
	}
	check(countPicks(pk, noView, n, nil), map[string]float64{"b0": 0.1, "b1": 0.2, "b2": 0.7})
	setDown(s.Backends[2])
	check(countPicks(pk, noView, n, nil), map[string]float64{"b0": 1.0 / 3, "b1": 2.0 / 3, "b2": 0})
}

func TestConsistentHashStableAndMinimalMove(t *testing.T) {
	s, p := newTestSet(t, PolicyConsistentHash, []int{1, 1, 1, 1}, nil)
	pk := p.NewLoopPicker()
	const n = 20000
	name := func(i int) uint64 { return HashQName([]byte(fmt.Sprintf("\x04host%d\x07example\x03com\x00", i))) }
	before := make([]*Backend, n)
	share := map[string]int{}
	for i := range n {
		before[i] = pk.Pick(noView, name(i))
		share[before[i].Name]++
	}
	for _, b := range s.Backends {
		if f := float64(share[b.Name]) / n; f < 0.15 || f > 0.35 {
			t.Errorf("%s holds %.3f of names, want about 0.25 (%v)", b.Name, f, share)
		}
	}
	// Case does not matter; another loop's picker agrees.
	other := p.NewLoopPicker()
	if other.Pick(noView, HashQName([]byte("\x04HOST7\x07Example\x03COM\x00"))) != before[7] {
		t.Fatal("mixed-case name or another loop maps elsewhere")
	}
	down := s.Backends[2]
	setDown(down)
	moved, movedTo := 0, map[string]int{}
	for i := range n {
		b := pk.Pick(noView, name(i))
		if before[i] != down && b != before[i] {
			t.Fatalf("name %d moved from %s (up) to %s", i, before[i].Name, b.Name)
		}
		if before[i] == down {
			moved++
			movedTo[b.Name]++
		}
	}
	if moved != share[down.Name] || len(movedTo) != 3 {
		t.Fatalf("%d of %d names of the down backend moved, spread over %v: want all, over the 3 others", moved, share[down.Name], movedTo)
	}
	setUp(down)
	for i := range n {
		if pk.Pick(noView, name(i)) != before[i] {
			t.Fatalf("name %d did not return to %s", i, before[i].Name)
		}
	}
	// Weight 3 owns about three times the points.
	_, pw := newTestSet(t, PolicyConsistentHash, []int{1, 3}, nil)
	got := countPicks(pw.NewLoopPicker(), noView, n, name)
	if f := float64(got["b1"]) / n; f < 0.65 || f > 0.85 {
		t.Errorf("weight 3 of 4 holds %.3f of names, want about 0.75", f)
	}
}

func TestLeastOutstandingFollowsView(t *testing.T) {
	s, p := newTestSet(t, "", []int{1, 1, 5, 1}, []int{2, 1, 2, 1})
	pk := p.NewLoopPicker()
	b := s.Backends
	tests := []struct {
		view fakeView
		down []int
		want string
	}{
		{fakeView{0: 3, 1: 2, 2: 1, 3: 4}, nil, "b2"},
		{fakeView{}, nil, "b1"},           // tie: lowest order, then lowest ID
		{fakeView{1: 1, 3: 1}, nil, "b2"}, // tie at order 2: higher weight wins
		{fakeView{0: 0, 1: 0, 2: 9}, []int{1, 3}, "b0"},
		{fakeView{}, []int{0, 1, 2, 3}, "<nil>"},
	}
	for i, tt := range tests {
		setUp(b...)
		for _, d := range tt.down {
			setDown(b[d])
		}
		got := "<nil>"
		if r := pk.Pick(tt.view, 0); r != nil {
			got = r.Name
		}
		if got != tt.want {
			t.Errorf("case %d: picked %s, want %s", i, got, tt.want)
		}
	}
}

func TestFirstAvailableByOrder(t *testing.T) {
	s, p := newTestSet(t, "firstAvailable", []int{1, 1, 1}, []int{3, 1, 2})
	pk := p.NewLoopPicker()
	if got := countPicks(pk, fakeView{1: 100}, 100, nil); got["b1"] != 100 {
		t.Fatalf("picks %v, want all on b1 (order 1) whatever its load", got)
	}
	setDown(s.Backends[1])
	if b := pk.Pick(noView, 0); b.Name != "b2" {
		t.Fatalf("picked %s, want b2 (order 2)", b.Name)
	}
	if p.Backends[0].Name != "b1" || p.Backends[2].Name != "b0" {
		t.Fatal("pool backends are not sorted by order")
	}
}

func TestAllDownReturnsNilAndCounts(t *testing.T) {
	for _, pol := range []string{PolicyLeastOutstanding, PolicyFirstAvailable, PolicyRoundRobin, PolicyWeightedRandom, PolicyConsistentHash} {
		t.Run(pol, func(t *testing.T) {
			s, p := newTestSet(t, pol, []int{1, 2}, nil)
			pk1, pk2 := p.NewLoopPicker(), p.NewLoopPicker()
			setDown(s.Backends...)
			for i := range 10 {
				if pk1.Pick(noView, uint64(i)) != nil || pk2.Pick(noView, uint64(i)) != nil {
					t.Fatal("picked a down backend")
				}
			}
			if n := p.NoBackend(); n != 20 {
				t.Fatalf("NoBackend = %d, want 20", n)
			}
			setUp(s.Backends[1])
			if b := pk1.Pick(noView, 1); b != s.Backends[1] {
				t.Fatalf("picked %v, want the one up backend", b)
			}
		})
	}
}

func TestNewSet(t *testing.T) {
	s, err := NewSet([]BackendConfig{
		{Address: "127.0.0.1"},
		{Name: "v6", Address: "[::1]:5353", Pools: []string{"", "edge"}, TCPOnly: true},
		{Name: "v6b", Address: "[::1]"},
	}, map[string]string{"edge": "chashed", "empty": ""})
	if err != nil {
		t.Fatal(err)
	}
	b0, b1 := s.Backends[0], s.Backends[1]
	if b0.Name != "127.0.0.1" || b0.Addr.String() != "127.0.0.1:53" || b0.Config.Weight != 1 || b0.Config.Order != 1 {
		t.Errorf("defaults not applied: %+v", b0.Config)
	}
	hc := b0.Config.HealthCheck
	if hc.Mode != ModeAuto || hc.QName != DefaultHealthCheckQName || hc.QType != 1 || hc.QClass != 1 ||
		hc.Interval != time.Second || hc.Timeout != time.Second || hc.MaxFailures != 1 || hc.Rise != 1 || hc.UseTCP {
		t.Errorf("health-check defaults: %+v", hc)
	}
	if !b1.Config.HealthCheck.UseTCP || s.Backends[2].Addr.String() != "[::1]:53" {
		t.Error("tcp_only does not imply use_tcp, or bracketed IPv6 without port misparsed")
	}
	if len(s.Pool("").Backends) != 3 || len(s.Pool("edge").Backends) != 1 || s.Pool("edge").Policy != PolicyConsistentHash ||
		s.Pool("").Policy != DefaultPolicy || s.Pool("empty") == nil || len(s.Pool("empty").Backends) != 0 {
		t.Errorf("pools: %+v", s.Pools)
	}
	if s.Pool("empty").NewLoopPicker().Pick(noView, 0) != nil {
		t.Error("empty pool picked a backend")
	}
	for _, bad := range []struct {
		cfgs []BackendConfig
		pol  map[string]string
		want string
	}{
		{[]BackendConfig{{Address: "resolver.example:53"}}, nil, `address "resolver.example:53"`},
		{[]BackendConfig{{Name: "a", Address: "127.0.0.1"}, {Name: "a", Address: "127.0.0.2"}}, nil, `both named "a"`},
		{[]BackendConfig{{Address: "127.0.0.1", HealthCheck: HealthCheckConfig{Mode: "lazy"}}}, nil, `mode "lazy"`},
		{[]BackendConfig{{Address: "127.0.0.1", Weight: -1}}, nil, "weight -1"},
		{[]BackendConfig{{Address: "127.0.0.1"}}, map[string]string{"": "fastest"}, `unknown policy "fastest"`},
	} {
		if _, err := NewSet(bad.cfgs, bad.pol); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("error %v, want one mentioning %s", err, bad.want)
		}
	}
}

func TestInheritHealth(t *testing.T) {
	old, _ := newTestSet(t, "", []int{1, 1}, nil)
	setDown(old.Backends[1])
	cur, _ := newTestSet(t, "", []int{1, 1, 1}, nil)
	cur.Inherit(old)
	if !cur.Backends[0].Up() || cur.Backends[1].Up() || !cur.Backends[2].Up() {
		t.Fatalf("states %v %v %v, want up down up", cur.Backends[0].Up(), cur.Backends[1].Up(), cur.Backends[2].Up())
	}
}

func TestCanonicalPolicyTable(t *testing.T) {
	for in, want := range map[string]string{
		"": DefaultPolicy, "RoundRobin": PolicyRoundRobin, "roundrobin": PolicyRoundRobin, "leastoutstanding": PolicyLeastOutstanding,
		"leastOutstanding": PolicyLeastOutstanding, "least_outstanding": PolicyLeastOutstanding, "WRANDOM": PolicyWeightedRandom,
		"weighted-random": PolicyWeightedRandom, "chashed": PolicyConsistentHash, "firstAvailable": PolicyFirstAvailable,
	} {
		if got, err := CanonicalPolicy(in); err != nil || got != want {
			t.Errorf("CanonicalPolicy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := CanonicalPolicy("fastest"); err == nil || !strings.Contains(err.Error(), "least_outstanding") {
		t.Errorf("err = %v", err)
	}
}
