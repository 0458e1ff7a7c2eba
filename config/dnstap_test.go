package config

import (
	"strings"
	"testing"
)

const dnstapBind = "binds: [{listen_address: \"127.0.0.1:53\"}]\n"

// TestDnstapLoggers: remote_logging.dnstap_loggers with dnsdist's keys, fstrm's defaults,
// and errors with file:line for bad loggers and DnstapLog actions naming no logger.
func TestDnstapLoggers(t *testing.T) {
	c, err := Parse("ok.yaml", []byte(dnstapBind+`remote_logging:
  dnstap_loggers:
    - {name: tap, transport: unix, address: /run/tap.sock}
    - {name: remote, transport: TCP, address: "192.0.2.1:6000", input_queue_size: 1024, reopen_interval: 2}
query_rules:
  - selector: {type: All}
    action: {type: Continue, action: {type: DnstapLog, identity: edge, logger_name: tap}}
response_rules:
  - selector: {type: All}
    action: {type: DnstapLog, logger_name: remote}
`))
	if err != nil {
		t.Fatal(err)
	}
	l := c.RemoteLogging.DnstapLoggers
	if l[0].BufferHint != 8192 || l[0].FlushTimeout != 1 || l[0].InputQueueSize != DefaultDnstapInputQueueSize ||
		l[0].OutputQueueSize != 64 || l[0].ReopenInterval != 5 || l[0].ConnectionCount != 1 {
		t.Errorf("defaults: %+v", l[0])
	}
	if l[1].Transport != "tcp" || l[1].InputQueueSize != 1024 || l[1].ReopenInterval != 2 {
		t.Errorf("explicit keys: %+v", l[1])
	}
	if a, ok := c.ResponseRules[0].Action.Spec.(*DnstapLogAction); !ok || a.LoggerName != "remote" {
		t.Errorf("response action: %#v", c.ResponseRules[0].Action.Spec)
	}

	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown logger", dnstapBind + "remote_logging: {dnstap_loggers: [{name: tap, transport: unix, address: /x}]}\nquery_rules:\n  - selector: {type: All}\n    action: {type: DnstapLog, logger_name: tapp}\n",
			`cfg.yaml:5:44: query_rules[0].action.logger_name: no dnstap logger is named "tapp"`},
		{"unknown logger in a response rule", dnstapBind + "cache_hit_response_rules:\n  - selector: {type: All}\n    action: {type: DnstapLog, logger_name: tap}\n",
			`cache_hit_response_rules[0].action.logger_name: no dnstap logger is named "tap"`},
		{"bad transport", dnstapBind + "remote_logging:\n  dnstap_loggers:\n    - {name: tap, transport: udp, address: /x}\n",
			`cfg.yaml:4`},
		{"bad tcp address", dnstapBind + "remote_logging:\n  dnstap_loggers:\n    - {name: tap, transport: tcp, address: collector:6000}\n",
			`dnstap_loggers[0].address: "collector:6000" is not an IP:port`},
		{"duplicate name", dnstapBind + "remote_logging:\n  dnstap_loggers:\n    - {name: tap, transport: unix, address: /x}\n    - {name: tap, transport: unix, address: /y}\n",
			`dnstap_loggers[1].name: "tap" is already`},
		{"queue out of range", dnstapBind + "remote_logging:\n  dnstap_loggers:\n    - {name: tap, transport: unix, address: /x, input_queue_size: 1}\n",
			`input_queue_size: must be between 2 and 1048576, got 1`},
		{"Lua alter function", dnstapBind + "remote_logging: {dnstap_loggers: [{name: tap, transport: unix, address: /x}]}\nquery_rules:\n  - selector: {type: All}\n    action: {type: DnstapLog, logger_name: tap, alter_function_code: \"return\"}\n",
			`alter functions (Lua) are not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("cfg.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}
