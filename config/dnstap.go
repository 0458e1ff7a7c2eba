package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// RemoteLogging is dnsdist's remote_logging. dnsfront implements its dnstap_loggers:
// destinations that DnstapLog actions (query_rules, response_rules and the other
// response rule lists) send dnstap messages to.
type RemoteLogging struct {
	DnstapLoggers []DnstapLogger `yaml:"dnstap_loggers"`
}

// DnstapLogger is dnsdist's dnstap_logger: one Frame Streams destination. The sizes and
// intervals are fstrm's, as dnsdist names them; 0 takes the default below.
type DnstapLogger struct {
	Name string `yaml:"name"`
	// Transport is "unix" (Address is a socket path) or "tcp" (Address is IP:port).
	Transport string `yaml:"transport"`
	Address   string `yaml:"address"`
	// BufferHint is the number of bytes a connection holds before it flushes them.
	BufferHint int `yaml:"buffer_hint"`
	// FlushTimeout is the longest, in seconds, a frame waits in a connection's buffer.
	FlushTimeout int `yaml:"flush_timeout"`
	// InputQueueSize is the number of messages queued for the writers; beyond it new
	// messages are dropped and counted.
	InputQueueSize int `yaml:"input_queue_size"`
	// OutputQueueSize is the number of frames a connection holds before it flushes them.
	OutputQueueSize int `yaml:"output_queue_size"`
	// QueueNotifyThreshold is accepted for dnsdist compatibility and has no effect: the
	// writer is woken by every message, which costs the event loops nothing.
	QueueNotifyThreshold int `yaml:"queue_notify_threshold"`
	// ReopenInterval is the longest wait, in seconds, between connection attempts.
	ReopenInterval int `yaml:"reopen_interval"`
	// ConnectionCount is the number of connections to the collector.
	ConnectionCount int `yaml:"connection_count"`
}

// DnstapLogAction sends the query to a dnstap logger (dnsdist's DnstapLog); the rules
// after it run as usual. The alter function (Lua in dnsdist) is not supported.
type DnstapLogAction struct {
	Type              string `yaml:"type"`
	Identity          string `yaml:"identity"`
	LoggerName        string `yaml:"logger_name"`
	AlterFunctionName string `yaml:"alter_function_name"`
	AlterFunctionCode string `yaml:"alter_function_code"`
	AlterFunctionFile string `yaml:"alter_function_file"`
}

// Defaults of dnstap_logger: fstrm's, which dnsdist's 0 stands for, except the queue
// (fstrm's 512 is per input queue, of which dnsdist has one per thread; dnsfront's
// queue is the logger's only one, shared by every loop).
const (
	DefaultDnstapBufferHint      = 8192
	DefaultDnstapFlushTimeout    = 1 // seconds
	DefaultDnstapInputQueueSize  = 16384
	DefaultDnstapOutputQueueSize = 64
	DefaultDnstapReopenInterval  = 5 // seconds
	DefaultDnstapConnectionCount = 1
)

func (r *RemoteLogging) applyDefaults() {
	for i := range r.DnstapLoggers {
		d := &r.DnstapLoggers[i]
		d.Transport = strings.ToLower(d.Transport)
		orDefault(&d.BufferHint, DefaultDnstapBufferHint)
		orDefault(&d.FlushTimeout, DefaultDnstapFlushTimeout)
		orDefault(&d.InputQueueSize, DefaultDnstapInputQueueSize)
		orDefault(&d.OutputQueueSize, DefaultDnstapOutputQueueSize)
		orDefault(&d.ReopenInterval, DefaultDnstapReopenInterval)
		orDefault(&d.ConnectionCount, DefaultDnstapConnectionCount)
	}
}

// validateRemoteLogging checks the loggers (fstrm's bounds) and that every DnstapLog
// action names one.
func (c *Config) validateRemoteLogging(v *validator) {
	names := map[string]bool{}
	for i, d := range c.RemoteLogging.DnstapLoggers {
		p := fmt.Sprintf("remote_logging.dnstap_loggers[%d]", i)
		switch {
		case d.Name == "":
			v.errorf(p+".name", "is required")
		case names[d.Name]:
			v.errorf(p+".name", "%q is already the name of another dnstap logger", d.Name)
		}
		names[d.Name] = true
		switch d.Transport {
		case "unix":
			if d.Address == "" {
				v.errorf(p+".address", "is required (the collector's socket path)")
			}
		case "tcp":
			if _, err := netip.ParseAddrPort(d.Address); err != nil {
				v.errorf(p+".address", "%q is not an IP:port", d.Address)
			}
		default:
			v.errorf(p+".transport", "must be unix or tcp, got %q", d.Transport)
		}
		for _, b := range []struct {
			key      string
			val      int
			min, max int
		}{
			{"buffer_hint", d.BufferHint, 1024, 65536},
			{"flush_timeout", d.FlushTimeout, 1, 600},
			{"input_queue_size", d.InputQueueSize, 2, 1 << 20},
			{"output_queue_size", d.OutputQueueSize, 2, 1 << 16},
			{"reopen_interval", d.ReopenInterval, 1, 600},
			{"connection_count", d.ConnectionCount, 1, 64},
		} {
			if b.val < b.min || b.val > b.max {
				v.errorf(p+"."+b.key, "must be between %d and %d, got %d", b.min, b.max, b.val)
			}
		}
		if d.QueueNotifyThreshold < 0 {
			v.errorf(p+".queue_notify_threshold", "must not be negative")
		}
	}
	check := func(p string, a *DnstapLogAction) {
		if a.LoggerName == "" {
			v.errorf(p+".logger_name", "is required")
		} else if !names[a.LoggerName] {
			v.errorf(p+".logger_name", "no dnstap logger is named %q (remote_logging.dnstap_loggers)", a.LoggerName)
		}
		if a.AlterFunctionName != "" || a.AlterFunctionCode != "" || a.AlterFunctionFile != "" {
			v.errorf(p, "alter functions (Lua) are not supported by dnsfront")
		}
	}
	for i := range c.QueryRules {
		p := fmt.Sprintf("query_rules[%d].action", i)
		a := &c.QueryRules[i].Action
		for {
			if x, ok := a.Spec.(*ContinueAction); ok {
				p, a = p+".action", &x.Action
				continue
			}
			break
		}
		if x, ok := a.Spec.(*DnstapLogAction); ok {
			check(p, x)
		}
	}
	for _, l := range []struct {
		key   string
		rules []ResponseRule
	}{{"response_rules", c.ResponseRules}, {"cache_hit_response_rules", c.CacheHitResponseRules}, {"self_answered_response_rules", c.SelfAnsweredResponseRules}} {
		for i := range l.rules {
			if x, ok := l.rules[i].Action.Spec.(*DnstapLogAction); ok {
				check(fmt.Sprintf("%s[%d].action", l.key, i), x)
			}
		}
	}
}
