package e2e

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// demoConfig serves the built-in demo backend on its own port behind one Do53 bind.
const demoConfig = `
general:
  event_loops: 2
acl: ["127.0.0.0/8"]
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
backends:
  - address: "127.0.0.1:{{port "demo"}}"
    name: demo
    health_checks: {mode: up}
demo_backend:
  listen_address: "127.0.0.1:{{port "demo"}}"
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

// TestDnsperf runs dnsperf for 3 s at a bounded rate (2000 queries/s) against dnsfront in
// front of the demo backend: no query may be lost. It does not run in parallel with the
// other tests, so that they do not steal its CPU.
func TestDnsperf(t *testing.T) {
	RequireTool(t, "dnsperf", "dnsperf")
	d := Start(t, demoConfig, nil)
	queries := filepath.Join(t.TempDir(), "queries.txt")
	WriteFile(t, queries, []byte("www.dnsfront.test A\nwww.dnsfront.test AAAA\nnothing.dnsfront.test A\ntxt.dnsfront.test TXT\n"))
	out := runTool(t, "dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(d.Port("dns")),
		"-d", queries, "-l", "3", "-Q", "2000", "-t", "2")
	sent, lost, qps := dnsperfStat(out, "Queries sent"), dnsperfStat(out, "Queries lost"), dnsperfStat(out, "Queries per second")
	if sent < 3000 {
		t.Errorf("dnsperf sent %v queries in 3 s at -Q 2000, want about 6000:\n%s", sent, out)
	}
	if lost != 0 {
		t.Errorf("dnsperf lost %v of %v queries:\n%s", lost, sent, out)
	}
	t.Logf("dnsperf -Q 2000 -l 3: %v queries sent, %v lost, %.0f queries/s", sent, lost, qps)
	if l := dnsperfLine(out, "Average Latency"); l != "" {
		t.Logf("dnsperf %s", l)
	}
	if v := d.Metric(`dnsfront_responses_total{proto="udp"}`); v < sent {
		t.Errorf(`dnsfront_responses_total{proto="udp"} = %v, below the %v queries dnsperf sent`, v, sent)
	}
}

var dnsperfNumber = regexp.MustCompile(`^\s*([0-9.]+)`)

// dnsperfStat reads the number after "label:" in dnsperf's statistics; -1 when absent.
func dnsperfStat(out, label string) float64 {
	l := dnsperfLine(out, label)
	if l == "" {
		return -1
	}
	m := dnsperfNumber.FindStringSubmatch(l[len(label)+1:])
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return -1
	}
	return v
}

func dnsperfLine(out, label string) string {
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, label+":") {
			return l
		}
	}
	return ""
}
