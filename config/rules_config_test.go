package config

import (
	"strings"
	"testing"
)

// TestConfigValidatesRules checks that a whole configuration file validates its rules and
// TLS limits with file:line, and suggests the rule keys for a misspelt one.
func TestConfigValidatesRules(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"typo suggests query_rules", "binds: [{listen_address: \"127.0.0.1:53\"}]\nquery_rule:\n  - selector: {type: All}\n    action: {type: Drop}\n", []string{"cfg.yaml:2", `did you mean "query_rules"`}},
		{"typo suggests dynamic_rules", "binds: [{listen_address: \"127.0.0.1:53\"}]\ndynamic_rule: []\n", []string{`did you mean "dynamic_rules"`}},
		{"bad selector", "binds: [{listen_address: \"127.0.0.1:53\"}]\nquery_rules:\n  - selector: {type: QNameSuffix, suffixes: [\"a..b\"]}\n    action: {type: Drop}\n", []string{"cfg.yaml:3", "query_rules[0].selector"}},
		{"bad tls ban", "binds: [{listen_address: \"127.0.0.1:53\"}]\ntuning:\n  tcp:\n    ban_duration_for_exceeding_tcp_tls_rate: 0\n", []string{"cfg.yaml:4", "tuning.tcp.ban_duration_for_exceeding_tcp_tls_rate"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("cfg.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tc.want {
				i := strings.Index(msg, w)
				if i < 0 {
					t.Fatalf("error %q lacks %q", err.Error(), w)
				}
				msg = msg[i+len(w):]
			}
		})
	}
	if _, err := Parse("ok.yaml", []byte("binds: [{listen_address: \"127.0.0.1:53\"}]\nquery_rules:\n  - name: spoof\n    selector: {type: QNameSuffix, suffixes: [\"blocked.example.\"]}\n    action: {type: Spoof, ips: [\"192.0.2.99\"]}\n")); err != nil {
		t.Fatal(err)
	}
}
