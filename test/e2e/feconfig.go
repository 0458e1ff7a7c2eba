package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
)

// feConfig generates the dnsfront configuration of most tests (do53FE is the simplest): any
// number of Do53 and DoH binds, backends, pools and packet caches. Bind ports are named
// for the configuration template ({{port "doh"}}), the admin API is {{port "admin"}}.
type feConfig struct {
	EventLoops    int    // default 2
	ACL           string // a YAML list; "" allows 127.0.0.0/8 and ::1
	UDPTimeout    int    // general.udp_timeout in seconds; 0: dnsfront's default
	DrainTimeout  string // general.drain_timeout ("30s"); "": dnsfront's default
	PKI           *devpki.TestPKI
	Binds         []feBind
	Backends      []feBackend
	Pools         []fePool
	DefaultPolicy string
	// Caches are packet_caches entries as YAML flow mappings
	// (`{name: main, size: 1000}`).
	Caches []string
}

// feBind is one listener.
type feBind struct {
	Port     string // the {{port}} name; names ending in 6 listen on ::1
	Protocol string // Do53 or DoH
	TLS      bool   // DoH over TLS with the PKI's leaf (ECDSA, for devpki.Names)
	Pool     string
	DoH      string // the doh block as a YAML flow mapping; "" leaves it out
}

// feBackend is one backends entry.
type feBackend struct {
	Name       string
	Addr       string
	Weight     int
	Order      int
	Pools      []string
	UDPTimeout int    // seconds
	Health     string // health_checks as a YAML flow mapping; "" is {mode: up}
}

// fePool is one pools entry.
type fePool struct {
	Name, Policy, Cache string
}

// YAML renders the configuration template.
func (c feConfig) YAML() string {
	var b strings.Builder
	loops := c.EventLoops
	if loops == 0 {
		loops = 2
	}
	fmt.Fprintf(&b, "general:\n  event_loops: %d\n  log_level: info\n", loops)
	if c.UDPTimeout > 0 {
		fmt.Fprintf(&b, "  udp_timeout: %d\n", c.UDPTimeout)
	}
	if c.DrainTimeout != "" {
		fmt.Fprintf(&b, "  drain_timeout: %s\n", c.DrainTimeout)
	}
	acl := c.ACL
	if acl == "" {
		acl = `["127.0.0.0/8", "::1/128"]`
	}
	fmt.Fprintf(&b, "acl: %s\nbinds:\n", acl)
	for _, bd := range c.Binds {
		host := "127.0.0.1"
		if strings.HasSuffix(bd.Port, "6") {
			host = "[::1]"
		}
		fmt.Fprintf(&b, "  - listen_address: \"%s:{{port %q}}\"\n    protocol: %s\n", host, bd.Port, bd.Protocol)
		if bd.Pool != "" {
			fmt.Fprintf(&b, "    pool: %q\n", bd.Pool)
		}
		if bd.TLS {
			fmt.Fprintf(&b, "    tls:\n      certificates:\n        - certificate: %q\n          key: %q\n",
				c.PKI.Leaf.ChainFile, c.PKI.Leaf.KeyFile)
		}
		if bd.DoH != "" {
			fmt.Fprintf(&b, "    doh: %s\n", bd.DoH)
		}
	}
	b.WriteString("backends:\n")
	for _, be := range c.Backends {
		fmt.Fprintf(&b, "  - address: %q\n    name: %s\n", be.Addr, be.Name)
		if be.Weight > 0 {
			fmt.Fprintf(&b, "    weight: %d\n", be.Weight)
		}
		if be.Order > 0 {
			fmt.Fprintf(&b, "    order: %d\n", be.Order)
		}
		if len(be.Pools) > 0 {
			fmt.Fprintf(&b, "    pools: [%s]\n", quoteList(be.Pools))
		}
		if be.UDPTimeout > 0 {
			fmt.Fprintf(&b, "    udp_timeout: %d\n", be.UDPTimeout)
		}
		h := be.Health
		if h == "" {
			h = "{mode: up}"
		}
		fmt.Fprintf(&b, "    health_checks: %s\n", h)
	}
	if len(c.Pools) > 0 {
		b.WriteString("pools:\n")
		for _, p := range c.Pools {
			fmt.Fprintf(&b, "  - name: %q\n", p.Name)
			if p.Policy != "" {
				fmt.Fprintf(&b, "    policy: %s\n", p.Policy)
			}
			if p.Cache != "" {
				fmt.Fprintf(&b, "    packet_cache: %s\n", p.Cache)
			}
		}
	}
	if c.DefaultPolicy != "" {
		fmt.Fprintf(&b, "load_balancing_policies: {default_policy: %s}\n", c.DefaultPolicy)
	}
	if len(c.Caches) > 0 {
		b.WriteString("packet_caches:\n")
		for _, pc := range c.Caches {
			fmt.Fprintf(&b, "  - %s\n", pc)
		}
	}
	b.WriteString("webserver:\n  listen_addresses: [\"127.0.0.1:{{port \"admin\"}}\"]\n")
	return b.String()
}

func quoteList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

// do53FE is the configuration most tests start from: one Do53 bind ({{port "dns"}}) and
// one backend b1 at addr, forced up so that a backend that never answers is still
// chosen (the timeout path), with udp_timeout 2.
func do53FE(addr string) feConfig {
	return feConfig{
		Binds:    []feBind{{Port: "dns", Protocol: "Do53"}},
		Backends: []feBackend{{Name: "b1", Addr: addr, UDPTimeout: 2}},
	}
}

// startFE starts dnsfront on the generated configuration.
func startFE(t testing.TB, c feConfig) *Dnsfront {
	t.Helper()
	return Start(t, c.YAML(), nil)
}

// metricSum adds the values of every series of metric name whose labels include all of
// labels ("backend=\"a\""): the exposition orders labels by name, tests should not care.
func metricSum(m map[string]float64, name string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for series, v := range m {
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(series, l) {
				ok = false
				break
			}
		}
		if ok {
			sum += v
			found = true
		}
	}
	return sum, found
}

// metricOf is metricSum that fails the test when no series matches.
func metricOf(t testing.TB, d *Dnsfront, name string, labels ...string) float64 {
	t.Helper()
	v, ok := metricSum(d.Metrics(), name, labels...)
	if !ok {
		t.Fatalf("/metrics has no series %s with labels %v", name, labels)
	}
	return v
}

// waitMetricOf polls metricOf until cond holds or timeout passes; it returns the last
// value and how long it took.
func waitMetricOf(t testing.TB, d *Dnsfront, timeout time.Duration, cond func(float64) bool, name string, labels ...string) (float64, time.Duration) {
	t.Helper()
	return pollValue(timeout, cond, func() float64 { return metricOf(t, d, name, labels...) })
}

// backendUp reports dnsfront_backend_up for the backend named name.
func backendUp(t testing.TB, d *Dnsfront, name string) float64 {
	t.Helper()
	return metricOf(t, d, "dnsfront_backend_up", fmt.Sprintf("backend=%q", name))
}

// waitBackendState waits until dnsfront reports the backend up (1) or down (0) and
// returns how long that took; it fails the test after timeout.
func waitBackendState(t testing.TB, d *Dnsfront, name string, up bool, timeout time.Duration) time.Duration {
	t.Helper()
	want := 0.0
	if up {
		want = 1
	}
	v, took := waitMetricOf(t, d, timeout, func(v float64) bool { return v == want }, "dnsfront_backend_up", fmt.Sprintf("backend=%q", name))
	if v != want {
		t.Fatalf("backend %s: dnsfront_backend_up = %v after %v, want %v", name, v, took, want)
	}
	return took
}
