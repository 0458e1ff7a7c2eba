package rules

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// TestECSActions: each ECS action sets its part of the verdict and lets the rules go on.
func TestECSActions(t *testing.T) {
	rs := compileYAML(t, `
query_rules:
  - selector: { type: QNameSuffix, suffixes: [off.example.] }
    action: { type: SetDisableECS }
  - selector: { type: QNameSuffix, suffixes: [short.example.] }
    action: { type: SetECSPrefixLength, ipv4: 16, ipv6: 32 }
  - selector: { type: QNameSuffix, suffixes: [keep.example.] }
    action: { type: SetECSOverride, override_existing: false }
  - selector: { type: QNameSuffix, suffixes: [fixed.example.] }
    action: { type: SetECS, ipv4: "192.0.2.77/24", ipv6: "2001:db8::/48" }
  - selector: { type: QNameSuffix, suffixes: [fixed4.example.] }
    action: { type: SetECS, ipv4: "198.51.100.1" }
  - selector: { type: All }
    action: { type: RCode, rcode: NXDomain }
`)
	decide := func(name, client string) Verdict {
		return Decide(nil, rs, newQuery(t, packQuery(t, name, dns.TypeA, nil), client))
	}
	if v := decide("a.off.example.", "192.0.2.1"); !v.ECS.Disable || v.Kind != KindRCode {
		t.Errorf("SetDisableECS: %+v", v)
	}
	if v := decide("a.short.example.", "192.0.2.1"); !v.ECS.HasPrefixLength || v.ECS.PrefixV4 != 16 || v.ECS.PrefixV6 != 32 || v.Kind != KindRCode {
		t.Errorf("SetECSPrefixLength: %+v", v.ECS)
	}
	if v := decide("a.keep.example.", "192.0.2.1"); !v.ECS.HasOverride || v.ECS.Override {
		t.Errorf("SetECSOverride: %+v", v.ECS)
	}
	v := decide("a.fixed.example.", "192.0.2.1")
	if v.ECS.Set == nil {
		t.Fatalf("SetECS: %+v", v.ECS)
	}
	if got := v.ECS.Set.For(netip.MustParseAddr("203.0.113.9")).Prefix().String(); got != "192.0.2.0/24" {
		t.Errorf("SetECS for an IPv4 client: %s", got)
	}
	if got := v.ECS.Set.For(netip.MustParseAddr("2001:db8:1::9")).Prefix().String(); got != "2001:db8::/48" {
		t.Errorf("SetECS for an IPv6 client: %s", got)
	}
	v = decide("a.fixed4.example.", "192.0.2.1")
	if got := v.ECS.Set.For(netip.MustParseAddr("2001:db8:1::9")).Prefix().String(); got != "198.51.100.1/32" {
		t.Errorf("SetECS with one mask, IPv6 client: %s", got)
	}
	if v := decide("www.example.", "192.0.2.1"); v.ECS != (ECSPolicy{}) {
		t.Errorf("no ECS action ran, yet %+v", v.ECS)
	}
}
