package e2e

import (
	"bytes"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

// fleetConfig serves Do53 on {{port "dns"}} and DoT on {{port "dot"}} with one
// certificate whose staple is fetched, the admin API on {{port "admin"}}, as member
// .Member of fleet .Name on etcd .Etcd.
const fleetConfig = `
general:
  event_loops: 2
  server_id: "{{.Member}}"
acl: ["127.0.0.0/8"]
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
    protocol: Do53
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls:
      certificates:
        - certificate: "{{.Chain}}"
          key: "{{.Key}}"
          ocsp: { fetch: true }
      minimum_version: "tls1.2"
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks:
      mode: up
dynamic_rules:
  - name: "floods"
    mask_ipv4: 32
    exclude_ranges: ["127.0.0.1/32", "127.0.0.2/32", "127.0.0.3/32"] # the tests' probes
    rules:
      - { type: "query-rate", rate: 50, seconds: 2, action_duration: 60, comment: "query rate", action: "Refused" }
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
fleet:
  name: "{{.Name}}"
  secret_file: "{{.Secret}}"
  etcd:
    endpoints: ["{{.Etcd}}"]
    dial_timeout: 2s
`

type fleetData struct {
	Member, Name, Etcd, Secret string
	Chain, Key, Backend        string
}

// fleetStatus is the part of GET /api/v1/fleet the tests read.
type fleetStatus struct {
	Connected bool   `json:"connected"`
	Leader    string `json:"leader"`
	IsLeader  bool   `json:"is_leader"`
	KeySource string `json:"key_source"`
	Members   []struct {
		Name string `json:"name"`
	} `json:"members"`
}

func fleetOf(t testing.TB, d *Dnsfront) fleetStatus {
	t.Helper()
	var s fleetStatus
	getJSON(t, d.AdminURL()+"/api/v1/fleet", &s)
	return s
}

// postJSON sends a JSON body to an admin API path.
func postJSON(t testing.TB, d *Dnsfront, path, body string) (int, string) {
	t.Helper()
	resp, err := adminClient.Post(d.AdminURL()+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// digStatus asks d's Do53 bind from the source address src and returns dig's status
// ("NOERROR", "REFUSED", ...), or "" when no answer came.
func digStatus(t testing.TB, d *Dnsfront, src string) string {
	t.Helper()
	RequireTool(t, "dig", "bind9-dnsutils")
	host, port, _ := net.SplitHostPort(d.Addr("dns"))
	out, _ := runToolErr("dig", "@"+host, "-p", port, "-b", src, "+time=1", "+tries=1", testName, "A")
	for _, l := range strings.Split(out, "\n") {
		if _, rest, ok := strings.Cut(l, "status: "); ok {
			st, _, _ := strings.Cut(rest, ",")
			return st
		}
	}
	return ""
}

// floodFrom sends n queries over UDP from the source address src to addr as fast as the
// socket takes them, reading no answers.
func floodFrom(t testing.TB, src, addr string, n int) {
	t.Helper()
	dst, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)}, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range n {
		m := NewQuery(testName, dns.TypeA)
		m.Id = uint16(i)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFleet runs three dnsfront processes as one fleet on a real etcd: the leader alone
// asks the responder and the others staple what it shares; a session from one resumes on
// the others; a client blocked on one (through its admin API, or by its rules for a
// flood) is refused by another, and a block lifted through any is lifted
// everywhere; when the leader crashes another takes over, keys and fetching; with etcd
// stopped every instance keeps answering and stapling and fetches on its own, and when
// etcd returns they share again.
func TestFleet(t *testing.T) {
	t.Parallel()
	etcd := StartEtcd(t)
	r := NewResponder(t)
	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithOCSPURL(r.URL))
	r.SetIssuer(p.Issuer)
	r.Start()
	be := StartTestBackend(t)
	secret := filepath.Join(t.TempDir(), "fleet.secret")
	WriteFile(t, secret, randomBytes(t, 32))
	var ds []*Dnsfront
	for _, m := range []string{"a", "b", "c"} {
		ds = append(ds, Start(t, fleetConfig, fleetData{Member: m, Name: "e2e", Etcd: etcd.URL, Secret: secret,
			Chain: p.Leaf.ChainFile, Key: p.Leaf.KeyFile, Backend: be.Addr}))
	}
	for _, d := range ds {
		var s fleetStatus
		if !testutil.Poll(20*time.Second, func() bool {
			s = fleetOf(t, d)
			return s.Connected && s.Leader != "" && len(s.Members) == 3 && s.KeySource == "shared"
		}) {
			t.Fatalf("%s: not in the fleet with shared keys within 20s: %+v", d.Config, s)
		}
	}
	leader := fleetOf(t, ds[0]).Leader

	// Staples: every instance staples, the responder was asked once.
	for _, d := range ds {
		d.WaitOCSP(p.Leaf.ChainFile, stapleWait, stapleGood)
		SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, p.Leaf.Cert)
	}
	if n := r.Requests(); n != 1 {
		t.Errorf("responder requests for one certificate in a fleet of 3: %d, want 1", n)
	}
	t.Logf("measured: responder requests per certificate per fleet of 3: %d (leader %s)", r.Requests(), leader)
	for _, d := range ds {
		if fleetOf(t, d).IsLeader {
			continue
		}
		if st := d.WaitOCSP(p.Leaf.ChainFile, stapleWait, stapleGood); st.Source != ocsp.SourceShared {
			t.Errorf("%s (not the leader): staple source %q, want %q", d.Config, st.Source, ocsp.SourceShared)
		}
	}

	// Resumption: a session from A resumes on B and C.
	answer := net.ParseIP(testAnswer)
	sess := filepath.Join(t.TempDir(), "sess.pem")
	first := StartSClient(t, "-connect", ds[0].Addr("dot"), "-servername", "dns.test", "-tls1_3", "-sess_out", sess)
	first.WaitFor("Verify return code")
	first.Query(testName, 1, answer)
	if out := first.Finish(); !strings.Contains(out, "New, ") {
		t.Fatalf("first connection not new:\n%s", out)
	}
	for i, d := range ds[1:] {
		s := StartSClient(t, "-connect", d.Addr("dot"), "-servername", "dns.test", "-tls1_3", "-sess_in", sess)
		s.WaitFor("Verify return code")
		s.Query(testName, uint16(2+i), answer)
		if out := s.Finish(); !strings.Contains(out, "Reused, ") {
			t.Errorf("session from a not resumed on %s:\n%s", d.Config, out)
		}
	}

	// Blocks: added on A, refused by B; removed on C, served again by A. The time it takes
	// is logged (docs/fleet.md quotes it); the bound is only for a loaded machine.
	if st := digStatus(t, ds[1], "127.0.0.2"); st != "NOERROR" {
		t.Fatalf("127.0.0.2 before the block: %q", st)
	}
	start := time.Now()
	if code, body := postJSON(t, ds[0], "/api/v1/blocks", `{"network":"127.0.0.2","action":"Refused","seconds":120,"reason":"e2e"}`); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/blocks: %d %s", code, body)
	}
	if !testutil.Poll(15*time.Second, func() bool { return digStatus(t, ds[1], "127.0.0.2") == "REFUSED" }) {
		t.Fatalf("b does not refuse 127.0.0.2 within 15 s of the block added on a")
	}
	t.Logf("measured: block propagation a → b (admin POST to dig REFUSED): %v", time.Since(start).Round(time.Millisecond))
	if st := digStatus(t, ds[1], "127.0.0.3"); st != "NOERROR" {
		t.Errorf("127.0.0.3 on b while 127.0.0.2 is blocked: %q", st)
	}
	req, _ := http.NewRequest(http.MethodDelete, ds[2].AdminURL()+"/api/v1/blocks?key=127.0.0.2", nil)
	resp, err := adminClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE on c: %s", resp.Status)
	}
	if !testutil.Poll(15*time.Second, func() bool { return digStatus(t, ds[0], "127.0.0.2") == "NOERROR" }) {
		t.Fatalf("a still refuses 127.0.0.2 15 s after the block was removed on c")
	}

	// A client flooding A is blocked by A's rules and refused by B.
	if st := digStatus(t, ds[1], "127.0.0.4"); st != "NOERROR" {
		t.Fatalf("127.0.0.4 before the flood: %q", st)
	}
	floodFrom(t, "127.0.0.4", ds[0].Addr("dns"), 400)
	start = time.Now()
	if !testutil.Poll(15*time.Second, func() bool { return digStatus(t, ds[1], "127.0.0.4") == "REFUSED" }) {
		t.Fatalf("b does not refuse 127.0.0.4 within 15 s of its flood on a")
	}
	t.Logf("measured: flood on a to REFUSED on b (a's evaluator, then the fleet): %v", time.Since(start).Round(time.Millisecond))

	// Leader failover: the leader crashes (no lease revoked); another takes over once its
	// lease expires.
	var dead *Dnsfront
	var rest []*Dnsfront
	for _, d := range ds {
		if fleetOf(t, d).IsLeader {
			dead = d
		} else {
			rest = append(rest, d)
		}
	}
	if dead == nil {
		t.Fatal("no instance reports being the leader")
	}
	leader = fleetOf(t, dead).Leader
	start = time.Now()
	dead.stopOnce.Do(dead.kill)
	var next string
	if !testutil.Poll(30*time.Second, func() bool {
		for _, d := range rest {
			if s := fleetOf(t, d); s.IsLeader {
				next = s.Leader
				return true
			}
		}
		return false
	}) {
		t.Fatal("no new leader within 30s of the leader's crash")
	}
	t.Logf("measured: leader failover after a crash of %s: %v (new leader %s)", leader, time.Since(start).Round(time.Millisecond), next)
	// The new leader fetches: a refresh asked of it reaches the responder.
	for _, d := range rest {
		if fleetOf(t, d).IsLeader {
			n := r.Requests()
			if code, body := d.Post("/api/v1/ocsp/refresh"); code != http.StatusAccepted {
				t.Fatalf("POST /api/v1/ocsp/refresh: %d %s", code, body)
			}
			if !testutil.Poll(stapleWait, func() bool { return r.Requests() > n }) {
				t.Errorf("the new leader %s did not fetch when asked to refresh", next)
			}
		}
	}

	// etcd stops: every instance notices, keeps answering and stapling.
	etcd.Stop()
	for _, d := range rest {
		if !testutil.Poll(30*time.Second, func() bool { return !fleetOf(t, d).Connected }) {
			t.Fatalf("%s still reports connected 30s after etcd stopped", d.Config)
		}
		if st := digStatus(t, d, "127.0.0.1"); st != "NOERROR" {
			t.Errorf("%s without etcd: dig status %q, want NOERROR", d.Config, st)
		}
		SClientStatus(t, d.Addr("dot"), "dns.test").RequireStaple(t, p.Leaf.Cert)
		// Cut off from the fleet, each member fetches on its own.
		n := r.Requests()
		if code, body := d.Post("/api/v1/ocsp/refresh"); code != http.StatusAccepted {
			t.Fatalf("POST /api/v1/ocsp/refresh: %d %s", code, body)
		}
		if !testutil.Poll(stapleWait, func() bool { return r.Requests() > n }) {
			t.Errorf("%s without etcd did not fetch when asked to refresh", d.Config)
		}
	}

	// etcd returns: every instance reconnects, and blocks are shared again.
	etcd.Restart()
	start = time.Now()
	for _, d := range rest {
		if !testutil.Poll(30*time.Second, func() bool { s := fleetOf(t, d); return s.Connected && s.Leader != "" }) {
			t.Fatalf("%s not reconnected 30s after etcd returned: %+v", d.Config, fleetOf(t, d))
		}
	}
	t.Logf("measured: every instance reconnected %v after etcd returned", time.Since(start).Round(time.Millisecond))
	if code, body := postJSON(t, rest[0], "/api/v1/blocks", `{"network":"127.0.0.5","action":"Refused","seconds":120,"reason":"e2e"}`); code != http.StatusCreated {
		t.Fatalf("POST /api/v1/blocks: %d %s", code, body)
	}
	if !testutil.Poll(15*time.Second, func() bool { return digStatus(t, rest[1], "127.0.0.5") == "REFUSED" }) {
		t.Fatalf("after etcd returned, a block added on one instance is not refused by another within 15 s")
	}

	// No key material in the logs: they name epochs, never keys (32 bytes: 64 hex digits
	// or 43 base64 characters).
	keyLike := regexp.MustCompile(`[0-9a-fA-F]{64}|[A-Za-z0-9+/]{43}=`)
	for _, d := range ds {
		if k := keyLike.FindString(d.Log()); k != "" {
			t.Errorf("%s logged something shaped like a key: %s", d.Config, k)
		}
	}
}
