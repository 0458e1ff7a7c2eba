package config

import (
	"fmt"
	"net/netip"
)

// The EDNS Client Subnet actions, with dnsdist's parameters
// (shared/reference/dnsdist-actions-definitions.yml). They change what the query carries to
// a backend with use_client_subnet, and the rules go on.

// SetDisableECSAction sends no subnet for the query.
type SetDisableECSAction struct {
	Type string `yaml:"type"`
}

// SetECSAction sends a fixed subnet instead of the client's: IPv6 for IPv6 clients when
// given, IPv4 (which may be an IPv6 subnet) for the others.
type SetECSAction struct {
	Type string `yaml:"type"`
	IPv4 string `yaml:"ipv4"`
	IPv6 string `yaml:"ipv6"`
}

// SetECSOverrideAction says whether a client's own ECS option is replaced.
type SetECSOverrideAction struct {
	Type             string `yaml:"type"`
	OverrideExisting bool   `yaml:"override_existing"`
}

// SetECSPrefixLengthAction sets the source prefix lengths for the query.
type SetECSPrefixLengthAction struct {
	Type string `yaml:"type"`
	IPv4 uint16 `yaml:"ipv4"`
	IPv6 uint16 `yaml:"ipv6"`
}

// ParseECSNetmask reads a SetECS netmask: "192.0.2.0/24", or an address alone (a host).
func ParseECSNetmask(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a netmask (address/length)", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// validateECSAction checks the ECS actions; it ignores every other action.
func validateECSAction(v *validator, p string, spec any) {
	switch x := spec.(type) {
	case *SetECSAction:
		if x.IPv4 == "" {
			v.errorf(p+".ipv4", "is required")
		} else if _, err := ParseECSNetmask(x.IPv4); err != nil {
			v.errorf(p+".ipv4", "%v", err)
		}
		if x.IPv6 != "" {
			if _, err := ParseECSNetmask(x.IPv6); err != nil {
				v.errorf(p+".ipv6", "%v", err)
			}
		}
	case *SetECSPrefixLengthAction:
		if x.IPv4 > 32 {
			v.errorf(p+".ipv4", "must be between 0 and 32, got %d", x.IPv4)
		}
		if x.IPv6 > 128 {
			v.errorf(p+".ipv6", "must be between 0 and 128, got %d", x.IPv6)
		}
	}
}
