package server

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/dnsfront/dnsfront/config"
)

// startOnlyUnchanged rejects a reload that changes settings which take effect only when
// dnsfront starts: the QUIC listeners (quic-go's, not the loops'), the loops, the admin
// server and the fleet. Accepting such a reload would report success and change nothing;
// rejecting it keeps the old state serving and says what needs a restart (or an upgrade,
// which is a restart that keeps the connections). The loops' listeners are applied by the
// reload (listeners.go): binds added, removed or changed, with what their connections are
// built with. Everything else (certificates, staples and their sources, TLS versions and
// ciphers, ticket key files, ACL, backends, pools, policies, caches, the GC target) is
// applied by the reload too.
func startOnlyUnchanged(old, cur *config.Config) error {
	var changed []string
	oq, cq := quicBinds(old), quicBinds(cur)
	if len(oq) != len(cq) {
		changed = append(changed, fmt.Sprintf("the set of QUIC binds (%d → %d listeners)", len(oq), len(cq)))
	} else {
		for i := range cq {
			changed = append(changed, bindChanges(cq[i].index, oq[i].Bind, cq[i].Bind)...)
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
	out = append(out, proxyBindChanges(p, a, b)...)
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

type indexedBind struct {
	config.Bind
	index int // in binds
}

// quicBinds lists the DoQ and DoH3 binds, in order.
func quicBinds(cfg *config.Config) []indexedBind {
	var out []indexedBind
	for i, b := range cfg.Binds {
		if b.IsQUIC() {
			out = append(out, indexedBind{b, i})
		}
	}
	return out
}
