package rules

import (
	"fmt"
	"net/netip"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// The EDNS Client Subnet actions (dnsdist's SetDisableECS, SetECS, SetECSOverride and
// SetECSPrefixLength): each changes what the engine sends to a backend with
// use_client_subnet for this query (engine/ecs.go), and the rules go on.

// ECSPolicy is what the ECS actions decided for one query (Verdict.ECS). The zero value
// leaves the edns_client_subnet settings in force.
type ECSPolicy struct {
	// Disable sends no subnet (SetDisableECS); a client's own option still goes as sent.
	Disable bool
	// PrefixV4 and PrefixV6 replace the source prefix lengths when HasPrefixLength.
	HasPrefixLength    bool
	PrefixV4, PrefixV6 uint8
	// Override replaces override_existing when HasOverride.
	HasOverride bool
	Override    bool
	// Set sends a fixed subnet instead of the client's (SetECS); it points into the
	// rule set.
	Set *ECSSet
}

// ECSSet is the subnet a SetECS action sends: V6 for IPv6 clients when it was given,
// V4 for every other client.
type ECSSet struct {
	V4, V6 dnswire.ECS
	HasV6  bool
}

// For returns the subnet to send for a client at a.
func (s *ECSSet) For(a netip.Addr) dnswire.ECS {
	if s.HasV6 && a.Unmap().Is6() {
		return s.V6
	}
	return s.V4
}

type disableECSAct struct{}

func (disableECSAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.ECS.Disable = true
	return false
}

type ecsPrefixLengthAct struct{ v4, v6 uint8 }

func (a ecsPrefixLengthAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.ECS.HasPrefixLength, v.ECS.PrefixV4, v.ECS.PrefixV6 = true, a.v4, a.v6
	return false
}

type ecsOverrideAct bool

func (a ecsOverrideAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.ECS.HasOverride, v.ECS.Override = true, bool(a)
	return false
}

type setECSAct struct{ set *ECSSet }

func (a setECSAct) apply(_ *RuleSet, _ *rule, _ *Query, v *Verdict) bool {
	v.ECS.Set = a.set
	return false
}

// ecsAction compiles one of the ECS actions (spec is its config struct).
func ecsAction(p string, spec any) (action, error) {
	switch x := spec.(type) {
	case *config.SetDisableECSAction:
		return disableECSAct{}, nil
	case *config.SetECSOverrideAction:
		return ecsOverrideAct(x.OverrideExisting), nil
	case *config.SetECSPrefixLengthAction:
		if x.IPv4 > 32 || x.IPv6 > 128 {
			return nil, fmt.Errorf("%s: prefix lengths %d (IPv4) and %d (IPv6) must be at most 32 and 128", p, x.IPv4, x.IPv6)
		}
		return ecsPrefixLengthAct{v4: uint8(x.IPv4), v6: uint8(x.IPv6)}, nil
	case *config.SetECSAction:
		v4, err := config.ParseECSNetmask(x.IPv4)
		if err != nil {
			return nil, fmt.Errorf("%s.ipv4: %v", p, err)
		}
		set := &ECSSet{V4: dnswire.ECSFromPrefix(v4)}
		if x.IPv6 != "" {
			v6, err := config.ParseECSNetmask(x.IPv6)
			if err != nil {
				return nil, fmt.Errorf("%s.ipv6: %v", p, err)
			}
			set.V6, set.HasV6 = dnswire.ECSFromPrefix(v6), true
		}
		return setECSAct{set}, nil
	}
	return nil, fmt.Errorf("%s: not an ECS action", p)
}
