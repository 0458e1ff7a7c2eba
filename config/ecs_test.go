package config

import (
	"errors"
	"strings"
	"testing"
)

func TestECSSettings(t *testing.T) {
	cfg, err := Parse("ecs.yaml", []byte(`
binds: [{listen_address: "127.0.0.1:53"}]
edns_client_subnet:
  override_existing: true
  source_prefix_v4: 22
backends:
  - address: "127.0.0.1:5300"
    use_client_subnet: true
    disable_zero_scope: true
  - address: "127.0.0.1:5301"
`))
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.EDNSClientSubnet
	if !e.OverrideExisting || *e.SourcePrefixV4 != 22 || *e.SourcePrefixV6 != DefaultECSSourcePrefixV6 {
		t.Errorf("edns_client_subnet = %+v", e)
	}
	if b := cfg.Backends[0]; !b.UseClientSubnet || !b.DisableZeroScope {
		t.Errorf("backends[0] = %+v", b.BackendECS)
	}
	if b := cfg.Backends[1]; b.UseClientSubnet || b.DisableZeroScope {
		t.Errorf("backends[1] = %+v", b.BackendECS)
	}

	cfg, err = Parse("ecs.yaml", []byte("binds: [{listen_address: \"127.0.0.1:53\"}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e := cfg.EDNSClientSubnet; e.OverrideExisting || *e.SourcePrefixV4 != 24 || *e.SourcePrefixV6 != 56 {
		t.Errorf("defaults = %+v", e)
	}
}

// dnsdist accepts disable_zero_scope on a backend without use_client_subnet (it has no
// effect there); a configuration migrated from dnsdist must load as it did.
func TestDisableZeroScopeAloneLoads(t *testing.T) {
	doc := "binds: [{listen_address: \"127.0.0.1:53\"}]\nbackends:\n  - address: \"127.0.0.1:5300\"\n    disable_zero_scope: true\n"
	c, err := Parse("ecs.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Backends[0]; !b.DisableZeroScope || b.UseClientSubnet {
		t.Fatalf("backend %+v", b)
	}
}

func TestECSErrors(t *testing.T) {
	cases := []struct{ doc, want string }{
		{"binds: [{listen_address: \"127.0.0.1:53\"}]\nedns_client_subnet:\n  source_prefix_v4: 33\n",
			"ecs.yaml:3:21: edns_client_subnet.source_prefix_v4: must be between 0 and 32, got 33"},
		{"binds: [{listen_address: \"127.0.0.1:53\"}]\nedns_client_subnet:\n  source_prefix_v6: 129\n",
			"ecs.yaml:3:21: edns_client_subnet.source_prefix_v6: must be between 0 and 128, got 129"},
		{"binds: [{listen_address: \"127.0.0.1:53\"}]\nquery_rules:\n  - selector: { type: All }\n    action: { type: SetECS, ipv4: \"192.0.2.0/33\" }\n",
			"ecs.yaml:4:35: query_rules[0].action.ipv4: \"192.0.2.0/33\" is not a netmask"},
		{"binds: [{listen_address: \"127.0.0.1:53\"}]\nquery_rules:\n  - selector: { type: All }\n    action: { type: SetECS }\n",
			"query_rules[0].action.ipv4: is required"},
		{"binds: [{listen_address: \"127.0.0.1:53\"}]\nquery_rules:\n  - selector: { type: All }\n    action: { type: SetECSPrefixLength, ipv4: 40, ipv6: 56 }\n",
			"query_rules[0].action.ipv4: must be between 0 and 32, got 40"},
		{"binds: [{listen_address: \"127.0.0.1:53\"}]\nquery_rules:\n  - selector: { type: All }\n    action: { type: SetECSOverride, override: true }\n",
			`unknown key "override"`},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			_, err := Parse("ecs.yaml", []byte(c.doc))
			var es Errors
			if err == nil || !errors.As(err, &es) {
				t.Fatalf("error %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestECSActionsAccepted(t *testing.T) {
	r, err := ParseRules("r.yml", []byte(`
query_rules:
  - selector: { type: QNameSuffix, suffixes: [private.example.] }
    action: { type: SetDisableECS }
  - selector: { type: All }
    action: { type: SetECSPrefixLength, ipv4: 16, ipv6: 48 }
  - selector: { type: All }
    action: { type: SetECSOverride, override_existing: true }
  - selector: { type: All }
    action: { type: SetECS, ipv4: "192.0.2.0/24", ipv6: "2001:db8::/48" }
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"SetDisableECS", "SetECSPrefixLength", "SetECSOverride", "SetECS"}
	for i, q := range r.QueryRules {
		if q.Action.Type != want[i] {
			t.Errorf("rule %d: %s, want %s", i, q.Action.Type, want[i])
		}
	}
	if a := r.QueryRules[3].Action.Spec.(*SetECSAction); a.IPv4 != "192.0.2.0/24" || a.IPv6 != "2001:db8::/48" {
		t.Errorf("SetECS = %+v", a)
	}
}
