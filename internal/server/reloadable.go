package server

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/dnsfront/dnsfront/config"
)

// startOnlyUnchanged rejects a reload that changes settings which take effect only when
// dnsfront starts: the listeners (gnet fixes them when it starts), what each listener's
// connections are built with, the loops, the admin server and the fleet. Accepting such a reload
// would report success and change nothing; rejecting it keeps the old state serving and
// says what needs a restart. Everything else (certificates, staples and their sources,
// TLS versions and ciphers, ticket key files, ACL, backends, pools, policies, caches, the
// GC target) is applied by the reload.
func startOnlyUnchanged(old, cur *config.Config) error {
	var changed []string
	if len(old.Binds) != len(cur.Binds) {
		changed = append(changed, fmt.Sprintf("the set of binds (%d → %d listeners)", len(old.Binds), len(cur.Binds)))
	} else {
		for i := range cur.Binds {
			changed = append(changed, bindChanges(i, old.Binds[i], cur.Binds[i])...)
		}
	}
	og, cg := old.General, cur.General
	for key, same := range map[string]bool{
		"general.event_loops":       og.EventLoops == cg.EventLoops,
		"general.tcp_idle_timeout":  og.TCPIdleTimeout == cg.TCPIdleTimeout,
		"general.max_tcp_in_flight": og.MaxTCPInFlight == cg.MaxTCPInFlight,
		"webserver":                 reflect.DeepEqual(old.Webserver, cur.Webserver),
		"demo_backend":              reflect.DeepEqual(old.DemoBackend, cur.DemoBackend),
		"fleet":                     reflect.DeepEqual(old.Fleet, cur.Fleet),
	} {
		if !same {
			changed = append(changed, key)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	sort.Strings(changed)
	return fmt.Errorf("%s: %s changed: these apply when dnsfront starts; restart it to apply them (nothing was reloaded)",
		cur.Path, strings.Join(changed, ", "))
}

// bindChanges lists what changed in binds[i] among the settings fixed at start.
func bindChanges(i int, a, b config.Bind) []string {
	p := fmt.Sprintf("binds[%d]", i)
	if a.ListenAddress != b.ListenAddress || a.Protocol != b.Protocol {
		return []string{p + " (listen_address or protocol)"}
	}
	var out []string
	if a.Pool != b.Pool {
		out = append(out, p+".pool")
	}
	if !reflect.DeepEqual(a.TCP, b.TCP) {
		out = append(out, p+".tcp")
	}
	if !reflect.DeepEqual(a.DoH, b.DoH) {
		out = append(out, p+".doh")
	}
	if a.PadResponses != b.PadResponses {
		out = append(out, p+".pad_responses")
	}
	out = append(out, quicChanges(p, a, b)...)
	if (a.TLS == nil) != (b.TLS == nil) {
		return append(out, p+".tls")
	}
	if a.TLS != nil {
		at, bt := *a.TLS, *b.TLS
		for key, same := range map[string]bool{
			"number_of_tickets_keys":      at.NumberOfTicketsKeys == bt.NumberOfTicketsKeys,
			"tickets_keys_rotation_delay": at.TicketsKeysRotationDelay == bt.TicketsKeysRotationDelay,
			"max_concurrent_handshakes":   at.MaxConcurrentHandshakes == bt.MaxConcurrentHandshakes,
			"handshake_queue_size":        at.HandshakeQueue == bt.HandshakeQueue,
			"handshake_timeout":           at.HandshakeTimeout == bt.HandshakeTimeout,
			"max_handshakes_per_client":   at.MaxHandshakesPerClient == bt.MaxHandshakesPerClient,
			"key_log_file":                at.KeyLogFile == bt.KeyLogFile,
		} {
			if !same {
				out = append(out, p+".tls."+key)
			}
		}
	}
	return out
}
