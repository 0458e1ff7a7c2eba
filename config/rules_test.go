package config

import (
	"errors"
	"strings"
	"testing"
)

// TestRulesAccepted parses rules written as dnsdist 2.x users write them.
func TestRulesAccepted(t *testing.T) {
	doc := `
query_rules:
  - name: "spoof a blocked zone"
    selector: { type: "QNameSuffix", suffixes: ["blocked.example."] }
    action: { type: "Spoof", ips: ["192.0.2.99"] }
  - name: "one greedy client"
    selector:
      type: "And"
      selectors:
        - { type: "NetmaskGroup", netmasks: ["192.0.2.0/24"] }
        - { type: "MaxQPSIP", qps: 20 }
    action: { type: "Drop" }
  - name: "refuse ANY"
    uuid: "4a7b1f76-0b6c-4b1e-9a3e-1d2f3c4b5a69"
    selector:
      type: "QType"
      qtype: "ANY"
    action:
      type: "RCode"
      rcode: "Refused"
  - selector: { type: "Or", selectors: [ { type: "RE2", expression: "^[a-z0-9]{30,}\\." }, { type: "QNameLabelsCount", min_labels_count: 10, max_labels_count: 255 } ] }
    action: { type: "TC" }
  - selector: { type: "Not", selector: { type: "RD" } }
    action: { type: "SetTag", tag: "norecurse", value: "1" }
  - selector: { type: "all" }
    action: { type: "continue", action: { type: "Log", verbose_only: false } }
  - selector: { type: "Tag", tag: "norecurse" }
    action: { type: "NegativeAndSOA", nxd: true, zone: "example.", ttl: 60, mname: "ns.example.", rname: "hostmaster.example.", soa_parameters: { serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 } }
  - selector: { type: "QClass", qclass: "CHAOS" }
    action: { type: "SpoofRaw", answers: ["\\005dnsfront"] }
  - selector: { type: "IncomingProtocol", protocol: "DoH" }
    action: { type: "HTTPStatus", status: 403, body: "denied", content_type: "text/plain" }
  - selector: { type: "opcode", code: "Update" }
    action: { type: "ERCode", rcode: "NotImp", vars: { set_aa: true, ttl: 10 } }
  - selector: { type: "PoolAvailable", pool: "backup" }
    action: { type: "QPSPool", limit: 100, pool_name: "backup", stop_processing: false }
  - selector: { type: "proba", probability: 0.01 }
    action: { type: "SetExtendedDNSError", info_code: 17, extra_text: "sampled" }
response_rules:
  - selector: { type: "RCode", rcode: "ServFail" }
    action: { type: "SetMaxReturnedTTL", max: 5 }
  - selector: { type: "RecordsTypeCount", section: 1, record_type: 1, minimum: 20, maximum: 65535 }
    action: { type: "drop" }
cache_hit_response_rules:
  - selector: { type: "All" }
    action: { type: "LimitTTL", min: 1, max: 300 }
self_answered_response_rules:
  - selector: { type: "All" }
    action: { type: "delay", msec: 100 }
dynamic_rules_settings:
  purge_interval: 60
  default_action: "Refused"
dynamic_rules:
  - name: "floods"
    mask_ipv4: 32
    mask_ipv6: 64
    exclude_ranges: ["10.0.0.0/8"]
    include_ranges: ["10.1.0.0/16"]
    exclude_domains: ["cdn.example."]
    rules:
      - { type: "query-rate", rate: 1000, seconds: 10, action_duration: 60, comment: "query rate", action: "Refused", warning_rate: 500 }
      - { type: "rcode-rate", rcode: "NXDOMAIN", rate: 100, seconds: 10, action_duration: 60, action: "Drop" }
      - { type: "rcode-ratio", rcode: "SERVFAIL", ratio: 0.2, minimum_number_of_responses: 10, seconds: 10, action_duration: 60 }
      - { type: "qtype-rate", qtype: "ANY", rate: 5, seconds: 10, action_duration: 60, action: "Truncate" }
      - { type: "response-byte-rate", rate: 10000000, seconds: 10, action_duration: 60, action: "NoRecurse" }
      - { type: "cache-miss-ratio", ratio: 0.9, minimum_number_of_responses: 100, minimum_global_cache_hit_ratio: 0.5, seconds: 10, action_duration: 60, action: "SetTag", tag_name: "miss", tag_value: "1" }
      - { type: "allowed-rcodes-ratio", allowed_rcodes: ["NOERROR", "NXDOMAIN"], ratio: 0.5, seconds: 10, action_duration: 60 }
      - { type: "suffix-match", rcode: "NXDOMAIN", rate: 50, seconds: 10, action_duration: 300, suffix_labels: 2 }
`
	r, err := ParseRules("rules.yml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.QueryRules) != 12 || len(r.ResponseRules) != 2 || len(r.CacheHitResponseRules) != 1 || len(r.SelfAnsweredResponseRules) != 1 || len(r.DynamicRules[0].Rules) != 8 {
		t.Fatalf("parsed %+v", r)
	}
	and := r.QueryRules[1].Selector.Spec.(*AndSelector)
	if q := and.Selectors[1].Spec.(*MaxQPSIPSelector); q.QPS != 20 || q.IPv4Mask != nil {
		t.Fatalf("MaxQPSIP %+v", q)
	}
	if r.QueryRules[5].Selector.Type != "All" || r.QueryRules[5].Action.Type != "Continue" {
		t.Fatalf("type names not canonical: %q %q", r.QueryRules[5].Selector.Type, r.QueryRules[5].Action.Type)
	}
}

// TestRulesErrors: every rejection names file:line, the key path and the reason.
func TestRulesErrors(t *testing.T) {
	tests := []struct {
		doc  string
		want string
	}{
		{"query_rules:\n  - selector: { type: Lua, function_name: f }\n    action: { type: Drop }\n",
			`r.yml:2:23: query_rules[0].selector.type: selector type "Lua" is not supported by dnsfront`},
		{"query_rules:\n  - selector: { type: All }\n    action: { type: SpoofSVC, parameters: [] }\n",
			`r.yml:3:21: query_rules[0].action.type: action type "SpoofSVC" is not supported by dnsfront`},
		{"response_rules:\n  - selector: { type: All }\n    action: { type: TC }\n",
			`response action type "TC" is not supported by dnsfront`},
		{"query_rules:\n  - selector: { type: QNameSufix, suffixes: [a.] }\n    action: { type: Drop }\n",
			`r.yml:2:23: query_rules[0].selector.type: unknown selector type "QNameSufix"`},
		{"query_rules:\n  - selector: { type: QName, qnme: a. }\n    action: { type: Drop }\n",
			`query_rules[0].selector.qnme: unknown key "qnme" (did you mean "qname"?)`},
		{"query_rules:\n  - selector: { suffixes: [a.] }\n    action: { type: Drop }\n",
			`selector has no "type"`},
		{"query_rules:\n  - selector:\n      type: NetmaskGroup\n      netmasks: [\"192.0.2.0/33\"]\n    action: { type: Drop }\n",
			`r.yml:4:18: query_rules[0].selector.netmasks[0]: "192.0.2.0/33" is not a network`},
		{"query_rules:\n  - selector: { type: QType, qtype: AAAAA }\n    action: { type: Drop }\n",
			`query_rules[0].selector.qtype: unknown qtype "AAAAA"`},
		{"query_rules:\n  - selector: { type: Regex, expression: \"(\" }\n    action: { type: Drop }\n",
			`query_rules[0].selector.expression: error parsing regexp`},
		{"query_rules:\n  - selector: { type: All }\n    action: { type: RCode, rcode: NOPE }\n",
			`query_rules[0].action.rcode: unknown rcode "NOPE"`},
		{"query_rules:\n  - selector: { type: All }\n    action: { type: Spoof, ips: [\"192.0.2.300\"] }\n",
			`query_rules[0].action.ips[0]: "192.0.2.300" is not an IP address`},
		{"query_rules:\n  - selector: { type: All }\n    action: { type: Log, file_name: /tmp/x }\n",
			`query_rules[0].action.file_name: logging to a file is not supported by dnsfront`},
		{"query_rules:\n  - selector: { type: NetmaskGroup, netmask_group_name: ng }\n    action: { type: Drop }\n",
			`named netmask groups are not supported by dnsfront`},
		{"query_rules:\n  - selector: { type: All }\n    action: { type: SpoofRaw, answers: [\"\\\\12\"] }\n",
			`\DDD escape needs three digits`},
		{"dynamic_rules:\n  - rules:\n      - { type: query-rate, rate: 10, seconds: 0, action_duration: 60 }\n",
			`r.yml:3:48: dynamic_rules[0].rules[0].seconds: must be between 1 and 3600, got 0`},
		{"dynamic_rules:\n  - rules:\n      - { type: suffix-match, rate: 10, seconds: 10, action_duration: 60, visitor_function_name: f }\n",
			`Lua visitor functions are not supported by dnsfront`},
		{"dynamic_rules:\n  - mask_port: 2\n    rules: []\n",
			`dynamic_rules[0].mask_port: port ranges are not supported by dnsfront`},
		{"dynamic_rules:\n  - rules:\n      - { type: query-rate, rate: 10, seconds: 10, action_duration: 60, action: Explode }\n",
			`dynamic_rules[0].rules[0].action: must be one of Drop`},
		{"dynamic_rules:\n  - rules:\n      - { type: rcode-ratio, rcode: SERVFAIL, ratio: 2, seconds: 10, action_duration: 60 }\n",
			`dynamic_rules[0].rules[0].ratio: must be above 0 and at most 1`},
		{"dynamic_rules:\n  - rules:\n      - { type: query-rate, rate: 10, seconds: 10, action_duration: 60, action: SetTag }\n",
			`dynamic_rules[0].rules[0].tag_name: is required with action SetTag`},
		{"dynamic_rules:\n  - rules:\n      - { type: qps, rate: 10, seconds: 10, action_duration: 60 }\n",
			`dynamic_rules[0].rules[0].type: must be one of query-rate`},
		{"dynamic_rules_settings:\n  default_action: SetTag\n",
			`dynamic_rules_settings.default_action: must be one of Drop`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := ParseRules("r.yml", []byte(tt.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			var es Errors
			if !errors.As(err, &es) || es[0].Line == 0 {
				t.Fatalf("error without a position: %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseRawRData(t *testing.T) {
	for in, want := range map[string]string{`\001\002\003\004`: "\x01\x02\x03\x04", `a\.b\\`: `a.b\`, `\000c\004mx11`: "\x00c\x04mx11"} {
		got, err := ParseRawRData(in)
		if err != nil || string(got) != want {
			t.Errorf("ParseRawRData(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`\`, `\25`, `\256`} {
		if _, err := ParseRawRData(bad); err == nil {
			t.Errorf("ParseRawRData(%q) accepted", bad)
		}
	}
}

// FuzzParseRules: no input makes the rules decoder or validator panic.
func FuzzParseRules(f *testing.F) {
	f.Add([]byte("query_rules:\n  - selector: { type: QNameSuffix, suffixes: [a.] }\n    action: { type: Drop }\n"))
	f.Add([]byte("dynamic_rules:\n  - rules:\n      - { type: query-rate, rate: 1, seconds: 1, action_duration: 1 }\n"))
	f.Add([]byte("query_rules:\n  - selector: { type: And, selectors: [ { type: Not, selector: { type: RD } } ] }\n    action: { type: Continue, action: { type: Pool, pool_name: x } }\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ParseRules("f.yml", doc)
	})
}

func FuzzParseRawRData(f *testing.F) {
	f.Add(`\001\002`)
	f.Fuzz(func(t *testing.T, s string) {
		ParseRawRData(s)
	})
}
