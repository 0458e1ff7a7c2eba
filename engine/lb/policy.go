package lb

import (
	"fmt"
	"math/bits"
)

// Policy picks a backend among those that are up, or returns nil when none
// is. Stateful policies keep their state in the value: each loop gets its
// own through Pool.NewLoopPicker, so Pick never synchronises.
type Policy interface {
	Pick(backends []*Backend, view LoopView, qnameHash uint64) *Backend
}

// Policy names, as written in the YAML.
const (
	PolicyLeastOutstanding = "least_outstanding"
	PolicyFirstAvailable   = "first_available"
	PolicyRoundRobin       = "round_robin"
	PolicyWeightedRandom   = "weighted_random"
	PolicyConsistentHash   = "consistent_hash"
	// DefaultPolicy is used when a pool names none, as in dnsdist.
	DefaultPolicy = PolicyLeastOutstanding
)

// policyNames is the one table of policy names, shared by the config loader
// (check-config) and NewSet (start and reload), so that a name one accepts the
// other accepts too. Keys are normalised by normPolicy: ours in snake_case and
// dnsdist's camelCase or lower-case spellings all match, in any case.
var policyNames = map[string]string{
	"leastoutstanding": PolicyLeastOutstanding,
	"firstavailable":   PolicyFirstAvailable,
	"roundrobin":       PolicyRoundRobin,
	"weightedrandom":   PolicyWeightedRandom,
	"wrandom":          PolicyWeightedRandom,
	"consistenthash":   PolicyConsistentHash,
	"chashed":          PolicyConsistentHash,
}

// normPolicy folds case and drops underscores and hyphens: least_outstanding,
// leastOutstanding and LeastOutstanding are one name.
func normPolicy(name string) string {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_' || c == '-':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return string(b)
}

// PolicyNames lists the accepted spellings for error messages.
const PolicyNames = "least_outstanding (leastOutstanding), first_available (firstAvailable), round_robin (roundrobin), weighted_random (wrandom) or consistent_hash (chashed)"

// CanonicalPolicy maps a configured policy name (ours or dnsdist's, in any
// case) to ours; "" is DefaultPolicy.
func CanonicalPolicy(name string) (string, error) {
	if name == "" {
		return DefaultPolicy, nil
	}
	if p, ok := policyNames[normPolicy(name)]; ok {
		return p, nil
	}
	return "", fmt.Errorf("lb: unknown policy %q: want %s", name, PolicyNames)
}

// LeastOutstanding is dnsdist's leastOutstanding: the up backend with the
// fewest queries in flight from this loop, then the lowest order, then the
// highest weight, then the lowest ID. (dnsdist breaks the second tie on
// measured latency; weight is the configured stand-in.)
type LeastOutstanding struct{}

func (LeastOutstanding) Pick(bs []*Backend, v LoopView, _ uint64) *Backend {
	var best *Backend
	bestOut := 0
	for _, b := range bs {
		if !b.Up() {
			continue
		}
		o := v.Outstanding(b.ID)
		if best == nil || o < bestOut ||
			o == bestOut && (b.Config.Order < best.Config.Order ||
				b.Config.Order == best.Config.Order && b.Config.Weight > best.Config.Weight) {
			best, bestOut = b, o
		}
	}
	return best
}

// FirstAvailable picks the up backend with the lowest order (then lowest
// ID): the others are standbys.
type FirstAvailable struct{}

func (FirstAvailable) Pick(bs []*Backend, _ LoopView, _ uint64) *Backend {
	var best *Backend
	for _, b := range bs {
		if b.Up() && (best == nil || b.Config.Order < best.Config.Order) {
			best = b
		}
	}
	return best
}

// RoundRobin cycles through the up backends; with k up, every run of k
// consecutive picks on one loop visits each exactly once.
type RoundRobin struct{ next uint64 }

func (p *RoundRobin) Pick(bs []*Backend, _ LoopView, _ uint64) *Backend {
	up := 0
	for _, b := range bs {
		if b.Up() {
			up++
		}
	}
	if up == 0 {
		return nil
	}
	k := int(p.next % uint64(up))
	p.next++
	for _, b := range bs {
		if b.Up() {
			if k == 0 {
				return b
			}
			k--
		}
	}
	return nil // a backend went down between the two passes
}

// WeightedRandom picks an up backend with probability proportional to its
// weight, from a per-loop generator (splitmix64: no locks, no allocation).
type WeightedRandom struct{ state uint64 }

// NewWeightedRandom seeds a generator; distinct loops should use distinct seeds.
func NewWeightedRandom(seed uint64) *WeightedRandom { return &WeightedRandom{state: seed} }

func (p *WeightedRandom) Pick(bs []*Backend, _ LoopView, _ uint64) *Backend {
	var total uint64
	for _, b := range bs {
		if b.Up() {
			total += uint64(b.Config.Weight)
		}
	}
	if total == 0 {
		return nil
	}
	p.state += 0x9e3779b97f4a7c15
	r, _ := bits.Mul64(mix64(p.state), total) // uniform in [0, total)
	for _, b := range bs {
		if !b.Up() {
			continue
		}
		w := uint64(b.Config.Weight)
		if r < w {
			return b
		}
		r -= w
	}
	return nil
}

// mix64 is splitmix64's finaliser: it spreads every input bit over the output.
func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// HashQName hashes a qname in wire form, case-insensitively, for
// consistent_hash. The engine passes it as Pick's qnameHash; any stable hash
// works, but this one is what the tests and benchmarks use.
func HashQName(wire []byte) uint64 {
	h := uint64(14695981039346656037) // FNV-1a 64
	for _, c := range wire {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h ^= uint64(c)
		h *= 1099511628211
	}
	return mix64(h)
}
