package e2e

import (
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// rulesConfig serves Do53, DoT and DoH (TLS) in front of one backend, with query rules
// for each terminal action and the dynamic rules of the flood tests. Data: rulesData.
const rulesConfig = `
general:
  event_loops: 2
acl: ["127.0.0.0/8"]
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates: [{certificate: "{{.Chain}}", key: "{{.Key}}"}]
  - listen_address: "127.0.0.1:{{port "doh"}}"
    protocol: DoH
    tls:
      certificates: [{certificate: "{{.Chain}}", key: "{{.Key}}"}]
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: {mode: up}
query_rules:
  - name: "spoof"
    selector: { type: "QNameSuffix", suffixes: ["spoof.rules.test."] }
    action: { type: "Spoof", ips: ["192.0.2.99"] }
  - name: "refuse"
    selector: { type: "QName", qname: "refused.rules.test." }
    action: { type: "RCode", rcode: "Refused" }
  - name: "drop"
    selector: { type: "QNameSuffix", suffixes: ["drop.rules.test."] }
    action: { type: "Drop" }
  - name: "truncate"
    selector: { type: "QName", qname: "tc.rules.test." }
    action: { type: "TC" }
  - name: "sni"
    selector: { type: "And", selectors: [ { type: "SNI", server_name: "dns.test" }, { type: "QName", qname: "sni.rules.test." } ] }
    action: { type: "Spoof", ips: ["192.0.2.77"] }
  - name: "delay"
    selector: { type: "QName", qname: "delay.rules.test." }
    action: { type: "Delay", msec: 400 }
  - name: "greedy"
    selector: { type: "And", selectors: [ { type: "QNameSuffix", suffixes: ["qps.rules.test."] }, { type: "MaxQPSIP", qps: {{.QPS}} } ] }
    action: { type: "Drop" }
dynamic_rules:
  - name: "floods"
    mask_ipv4: 32
    exclude_ranges: ["127.0.0.4/32", "127.0.0.6/32", "127.0.0.7/32"]
    rules:
      - { type: "query-rate", rate: {{.Rate}}, seconds: 2, action_duration: 120, comment: "query rate", action: "Refused" }
  - name: "random subdomains"
    rules:
      - { type: "suffix-match", rcode: "NXDOMAIN", rate: {{.SuffixRate}}, seconds: 2, action_duration: 120, action: "Refused", comment: "random subdomain flood" }
{{.Tuning}}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

type rulesData struct {
	Tuning              string // a tuning section, or nothing
	Chain, Key, Backend string
	QPS, Rate           int
	SuffixRate          int
}

type rulesServer struct {
	d    *Dnsfront
	pki  *devpki.TestPKI
	be   *Backend
	data rulesData
}

func startRulesServer(t *testing.T) *rulesServer {
	t.Helper()
	return startRulesServerTuned(t, "")
}

func startRulesServerTuned(t *testing.T, tuning string) *rulesServer {
	t.Helper()
	p := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{
		"ok.rules.test. 60 IN A 192.0.2.1",
		"qps.rules.test. 60 IN A 192.0.2.2",
		"tc.rules.test. 60 IN A 192.0.2.3",
		"delay.rules.test. 60 IN A 192.0.2.4",
		"sni.rules.test. 60 IN A 192.0.2.5",
	}})
	data := rulesData{Tuning: tuning, Chain: p.Leaf.ChainFile, Key: p.Leaf.KeyFile, Backend: be.Addr, QPS: 100, Rate: 100, SuffixRate: 50}
	return &rulesServer{d: Start(t, rulesConfig, data), pki: p, be: be, data: data}
}

// TestRulesActionsOverProtocols checks Spoof, RCode, Drop and TC over Do53 (dig, UDP and
// TCP), DoT (kdig +tls) and DoH (kdig +https, and curl for the dropped query's 403).
func TestRulesActionsOverProtocols(t *testing.T) {
	s := startRulesServer(t)
	ca := s.pki.Root.CertFile
	transports := []struct {
		name string
		run  func(name string) string
	}{
		{"udp", func(n string) string { out, _ := runToolErr("dig", digArgs(s.d.Addr("dns"), n)...); return out }},
		{"tcp", func(n string) string {
			out, _ := runToolErr("dig", append(digArgs(s.d.Addr("dns"), n), "+tcp")...)
			return out
		}},
		{"dot", func(n string) string {
			return kdigNoFail(t, s.d.Addr("dot"), "+tls", "+tls-ca="+ca, "+tls-hostname=dns.test", n, "A")
		}},
		{"doh", func(n string) string {
			return kdigNoFail(t, s.d.Addr("doh"), "+https=/dns-query", "+tls-ca="+ca, "+tls-hostname=dns.test", n, "A")
		}},
	}
	RequireTool(t, "dig", "bind9-dnsutils")
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			if out := tr.run("www.spoof.rules.test"); !strings.Contains(out, "192.0.2.99") || !strings.Contains(out, "NOERROR") {
				t.Errorf("Spoof: no A 192.0.2.99:\n%s", out)
			}
			if out := tr.run("refused.rules.test"); !strings.Contains(out, "REFUSED") {
				t.Errorf("RCode Refused: no REFUSED:\n%s", out)
			}
			if out := tr.run("ok.rules.test"); !strings.Contains(out, "192.0.2.1") {
				t.Errorf("no rule: the backend's answer is missing:\n%s", out)
			}
			out := tr.run("tc.rules.test")
			switch tr.name {
			case "udp":
				// dig retries over TCP on TC=1 unless told not to; +ignore shows the TC answer.
				o, _ := runToolErr("dig", append(digArgs(s.d.Addr("dns"), "tc.rules.test"), "+ignore")...)
				if !strings.Contains(o, " tc") {
					t.Errorf("TC over UDP: no TC flag:\n%s", o)
				}
				if !strings.Contains(out, "192.0.2.3") {
					t.Errorf("TC over UDP: dig's retry over TCP got no answer:\n%s", out)
				}
			default:
				if !strings.Contains(out, "192.0.2.3") {
					t.Errorf("TC over %s: a stream query goes through, got:\n%s", tr.name, out)
				}
			}
			out = tr.run("x.drop.rules.test")
			if tr.name != "doh" && strings.Contains(out, "status:") {
				t.Errorf("Drop over %s: an answer came:\n%s", tr.name, out)
			}
		})
	}
	// SNI: the DoT client that names dns.test gets the rule's answer; Do53 has no name.
	if out := Kdig(t, s.d.Addr("dot"), "+tls", "+tls-ca="+ca, "+tls-hostname=dns.test", "+tls-sni=dns.test", "sni.rules.test", "A"); !strings.Contains(out, "192.0.2.77") {
		t.Errorf("SNI over DoT: no A 192.0.2.77:\n%s", out)
	}
	if out := Dig(t, s.d.Addr("dns"), "sni.rules.test", "A"); !strings.Contains(out, "192.0.2.5") {
		t.Errorf("SNI over Do53: want the backend's answer:\n%s", out)
	}
	// Delay holds a UDP answer on the loop's timer.
	start := time.Now()
	ans, err := exchangeFrom("127.0.0.1", s.d.Addr("dns"), NewQuery("delay.rules.test", dns.TypeA))
	if took := time.Since(start); err != nil || len(ans.Answer) != 1 || took < 400*time.Millisecond {
		t.Errorf("Delay 400 ms over UDP: answer %v, err %v, after %v", ans, err, took)
	}
	if v := metricOf(t, s.d, "dnsfront_rule_outcomes_total", `outcome="delay"`); v < 1 {
		t.Errorf(`dnsfront_rule_outcomes_total{outcome="delay"} = %v, want 1`, v)
	}
	// A dropped DoH query ends its stream with 403, as dnsdist's does.
	wire := packDoH(t, NewQuery("x.drop.rules.test", dns.TypeA))
	url := fmt.Sprintf("https://dns.test:%d/dns-query?dns=%s", s.d.Port("doh"), base64.RawURLEncoding.EncodeToString(wire))
	r := runCurl(t, "--http2", "--cacert", ca, "--resolve", fmt.Sprintf("dns.test:%d:127.0.0.1", s.d.Port("doh")), url)
	if r.Status != http.StatusForbidden {
		t.Errorf("dropped DoH query: status %d, want 403", r.Status)
	}
	if v := metricOf(t, s.d, "dnsfront_rule_outcomes_total", `outcome="drop"`); v < 5 {
		t.Errorf(`dnsfront_rule_outcomes_total{outcome="drop"} = %v, want at least 5`, v)
	}
	if v := metricOf(t, s.d, "dnsfront_rule_matches_total", `rule="spoof"`); v < 4 {
		t.Errorf(`dnsfront_rule_matches_total{rule="spoof"} = %v, want at least 4`, v)
	}
	for _, n := range []string{"spoof", "refused", "drop"} {
		for _, r := range s.be.Received() {
			if strings.Contains(r.Msg.Question[0].Name, n+".rules.test") {
				t.Errorf("the backend saw %s, which a rule answered", r.Msg.Question[0].Name)
			}
		}
	}
}

// digArgs bounds a dig run (+time=3 +tries=1: a dropped query costs 3 s, an answer
// on a loaded machine comes well within) and asks for name's A record.
func digArgs(addr, name string) []string {
	host, port, _ := strings.Cut(addr, ":")
	return []string{"@" + host, "-p", port, "+time=3", "+tries=1", name, "A"}
}

// dnsperfFrom runs dnsperf from the loopback address src at qps queries per second for
// secs seconds over the names in file, and returns its output. Its timeout is 1 s: a
// query a rule drops holds one of dnsperf's 100 outstanding slots that long, and a longer
// one would hold back the sending.
func dnsperfFrom(t *testing.T, d *Dnsfront, src, file string, qps, secs int) string {
	t.Helper()
	out, err := runToolErr("dnsperf", "-s", "127.0.0.1", "-p", strconv.Itoa(d.Port("dns")), "-a", src,
		"-d", file, "-l", strconv.Itoa(secs), "-Q", strconv.Itoa(qps), "-t", "1", "-c", "1")
	if err != nil && !strings.Contains(out, "Queries sent") {
		t.Fatalf("dnsperf -a %s: %v\n%s", src, err, out)
	}
	return out
}

// dnsperfRcode reads dnsperf's count of answers with rcode (NOERROR, REFUSED, ...).
func dnsperfRcode(out, rcode string) float64 {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == rcode {
				v, err := strconv.ParseFloat(f[i+1], 64)
				if err == nil {
					return v
				}
			}
		}
	}
	return 0
}

// TestRulesQueryRateFlood: a 400 q/s flood from 127.0.0.2 gets blocked (Refused) by the
// query-rate rule, while a quiet client (127.0.0.3) and an excluded flooder (127.0.0.4)
// keep full service. The block is listed by the admin API and `dnsfront blocks`, survives
// SIGHUP, and is removed through both.
func TestRulesQueryRateFlood(t *testing.T) {
	RequireTool(t, "dnsperf", "dnsperf")
	RequireTool(t, "dig", "bind9-dnsutils")
	s := startRulesServer(t)
	names := filepath.Join(t.TempDir(), "names.txt")
	WriteFile(t, names, []byte("ok.rules.test A\n"))
	var wg sync.WaitGroup
	var flood, excluded string
	wg.Add(2)
	go func() { defer wg.Done(); flood = dnsperfFrom(t, s.d, "127.0.0.2", names, 400, 5) }()
	go func() { defer wg.Done(); excluded = dnsperfFrom(t, s.d, "127.0.0.4", names, 400, 5) }()
	// The quiet client asks once every 200 ms meanwhile.
	quietOK, quietN := 0, 0
	pace := time.NewTicker(200 * time.Millisecond)
	defer pace.Stop()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); <-pace.C {
		m := NewQuery("ok.rules.test", dns.TypeA)
		r, err := exchangeFrom("127.0.0.3", s.d.Addr("dns"), m)
		quietN++
		if err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) == 1 {
			quietOK++
		}
	}
	wg.Wait()
	if quietOK != quietN {
		t.Errorf("quiet client: %d of %d queries answered", quietOK, quietN)
	}
	if r := dnsperfRcode(flood, "REFUSED"); r < 400 {
		t.Errorf("flooder: %v REFUSED answers, want the flood blocked:\n%s", r, flood)
	}
	if r := dnsperfRcode(excluded, "REFUSED"); r != 0 {
		t.Errorf("excluded client: %v REFUSED answers, want none:\n%s", r, excluded)
	}
	if lost := dnsperfStat(excluded, "Queries lost"); lost > 0 {
		t.Errorf("excluded client lost %v queries:\n%s", lost, excluded)
	}

	// The block, through the admin API and the CLI.
	var blocks []struct {
		Key, Action, Rule string
	}
	getJSON(t, s.d.AdminURL()+"/api/v1/blocks", &blocks)
	if len(blocks) != 1 || blocks[0].Key != "127.0.0.2/32" || blocks[0].Action != "Refused" {
		t.Fatalf("blocks = %+v, want 127.0.0.2/32 Refused", blocks)
	}
	out, code := RunCLI(t, "blocks", "list", "--admin", s.d.AdminURL())
	if code != 0 || !strings.Contains(out, "127.0.0.2/32") || !strings.Contains(out, "query rate") {
		t.Errorf("dnsfront blocks list (exit %d):\n%s", code, out)
	}
	// A block survives a reload.
	reload(t, s.d)
	getJSON(t, s.d.AdminURL()+"/api/v1/blocks", &blocks)
	if len(blocks) != 1 || blocks[0].Key != "127.0.0.2/32" {
		t.Fatalf("after SIGHUP: blocks = %+v, want 127.0.0.2/32 kept", blocks)
	}
	if r, err := exchangeFrom("127.0.0.2", s.d.Addr("dns"), NewQuery("ok.rules.test", dns.TypeA)); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("blocked client after SIGHUP: %v %v, want REFUSED", r, err)
	}
	// The evaluator extends a block while the client's window is over the rate: wait until
	// it has not for 3 s (the window is 2 s), or a removed block would come straight back.
	var aged []struct {
		Key       string
		Remaining time.Duration `json:"remaining_ns"`
	}
	if !testutil.Poll(15*time.Second, func() bool {
		getJSON(t, s.d.AdminURL()+"/api/v1/blocks", &aged)
		return len(aged) == 1 && aged[0].Remaining < 117*time.Second
	}) {
		t.Fatalf("the block is still being extended 15 s after the flood: %+v", aged)
	}
	// Removed by the CLI, the client is served again; added back and removed by the API.
	if out, code := RunCLI(t, "blocks", "remove", "127.0.0.2", "--admin", s.d.AdminURL()); code != 0 {
		t.Fatalf("dnsfront blocks remove (exit %d):\n%s", code, out)
	}
	if r, err := exchangeFrom("127.0.0.2", s.d.Addr("dns"), NewQuery("ok.rules.test", dns.TypeA)); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Errorf("unblocked client: %v %v, want NOERROR", r, err)
	}
	if out, code := RunCLI(t, "blocks", "add", "--network", "127.0.0.5", "--action", "NXDomain", "--duration", "1m", "--admin", s.d.AdminURL()); code != 0 {
		t.Fatalf("dnsfront blocks add (exit %d):\n%s", code, out)
	}
	if r, err := exchangeFrom("127.0.0.5", s.d.Addr("dns"), NewQuery("ok.rules.test", dns.TypeA)); err != nil || r.Rcode != dns.RcodeNameError {
		t.Errorf("client blocked by hand: %v %v, want NXDOMAIN", r, err)
	}
	req, _ := http.NewRequest(http.MethodDelete, s.d.AdminURL()+"/api/v1/blocks?key=127.0.0.5/32", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE /api/v1/blocks: %v %v", resp, err)
	}
	resp.Body.Close()
	getJSON(t, s.d.AdminURL()+"/api/v1/blocks", &blocks)
	if len(blocks) != 0 {
		t.Errorf("blocks after removal: %+v", blocks)
	}
}

// localDialer dials from the loopback address src.
func localDialer(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(src)}}
}

// exchangeFrom sends m over UDP from the loopback address src.
func exchangeFrom(src, addr string, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	c.Dialer = localDialer(src)
	r, _, err := c.Exchange(m, addr)
	return r, err
}

// TestRulesMaxQPSIP: a client sending 300 q/s at a name under a MaxQPSIP 100 rule (Drop
// above the rate) gets 100 answers a second after the burst: never more than 10% over,
// and at least 75% (dnsperf, starved of CPU on a loaded machine, may send late).
func TestRulesMaxQPSIP(t *testing.T) {
	RequireTool(t, "dnsperf", "dnsperf")
	s := startRulesServer(t)
	names := filepath.Join(t.TempDir(), "names.txt")
	WriteFile(t, names, []byte("qps.rules.test A\n"))
	const secs = 5
	out := dnsperfFrom(t, s.d, "127.0.0.6", names, 300, secs)
	answered := dnsperfStat(out, "Queries completed")
	// The bucket starts full: one burst (qps) on top of the rate.
	rate := (answered - float64(s.data.QPS)) / secs
	if rate < 0.75*float64(s.data.QPS) || rate > 1.1*float64(s.data.QPS) {
		t.Errorf("MaxQPSIP %d: %v answers in %d s (%.1f/s after the burst), want from 75%% to 110%% of it:\n%s", s.data.QPS, answered, secs, rate, out)
	}
	t.Logf("MaxQPSIP %d: %.1f answers/s after the burst", s.data.QPS, rate)
}

// TestRulesSuffixMatchFlood: an NXDOMAIN flood of random names under one zone blocks the
// zone (suffix-match) for every client, while other names still resolve.
func TestRulesSuffixMatchFlood(t *testing.T) {
	RequireTool(t, "dnsperf", "dnsperf")
	s := startRulesServer(t)
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "r%d-%x.victim.rules.test A\n", i, i*2654435761)
	}
	names := filepath.Join(t.TempDir(), "names.txt")
	WriteFile(t, names, []byte(b.String()))
	// Exclude-free address, below the per-client query rate: only the suffix rule fires.
	_ = dnsperfFrom(t, s.d, "127.0.0.7", names, 90, 4)
	var blocks []struct{ Key, Suffix, Action string }
	if !testutil.Poll(5*time.Second, func() bool {
		getJSON(t, s.d.AdminURL()+"/api/v1/blocks", &blocks)
		return len(blocks) > 0
	}) {
		t.Fatal("no block after the NXDOMAIN flood")
	}
	if blocks[0].Key != "suffix:victim.rules.test." || blocks[0].Action != "Refused" {
		t.Fatalf("blocks = %+v, want suffix:victim.rules.test. Refused", blocks)
	}
	if r, err := exchangeFrom("127.0.0.8", s.d.Addr("dns"), NewQuery("new.victim.rules.test", dns.TypeA)); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("another client under the blocked zone: %v %v, want REFUSED", r, err)
	}
	if r, err := exchangeFrom("127.0.0.8", s.d.Addr("dns"), NewQuery("ok.rules.test", dns.TypeA)); err != nil || r.Rcode != dns.RcodeSuccess {
		t.Errorf("a name outside the zone: %v %v, want NOERROR", r, err)
	}
}

// TestRulesDoTHandshakeFlood: with tuning.tcp limiting new TLS sessions to 5 a second per
// client, a flood of 60 DoT handshakes from 127.0.0.2 is capped (the client is banned once
// over the rate), while kdig from 127.0.0.3 still completes its handshake and gets its
// answer.
func TestRulesDoTHandshakeFlood(t *testing.T) {
	RequireTool(t, "kdig", "knot-dnsutils")
	s := startRulesServerTuned(t, `tuning:
  tcp:
    max_tls_new_session_rate_per_client: 5
    ban_duration_for_exceeding_tcp_tls_rate: 30`)
	roots := CertPool(t, s.pki.Root.Cert)
	ok, lastOK := 0, -1
	for i := range 60 {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", s.d.Addr("dot"), &tls.Config{RootCAs: roots, ServerName: "dns.test"})
		if err == nil {
			ok, lastOK = ok+1, i
			c.Close()
		}
	}
	// A client's handshake counts when the server's side of it ends, which may come after
	// the client has dialled again: a few more than the burst of 5 get through before the
	// ban, and none after it.
	if ok < 5 || ok > 30 || lastOK >= 50 {
		t.Errorf("flooder completed %d of 60 handshakes, the last one at attempt %d: want them capped, and the last 10 refused", ok, lastOK)
	}
	out := Kdig(t, s.d.Addr("dot"), "-b", "127.0.0.3", "+tls", "+tls-ca="+s.pki.Root.CertFile, "+tls-hostname=dns.test", "ok.rules.test", "A")
	if !strings.Contains(out, "192.0.2.1") {
		t.Errorf("another client's DoT query failed during the ban:\n%s", out)
	}
	out = kdigNoFail(t, s.d.Addr("dot"), "-b", "127.0.0.2", "+tls", "+tls-ca="+s.pki.Root.CertFile, "+tls-hostname=dns.test", "ok.rules.test", "A")
	if strings.Contains(out, "192.0.2.1") {
		t.Errorf("the banned client completed a handshake:\n%s", out)
	}
	t.Logf("flooder: %d of 60 handshakes completed", ok)
}
