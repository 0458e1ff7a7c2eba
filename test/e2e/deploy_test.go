package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/dnsfront/dnsfront/internal/devpki"
)

// TestSystemdUnitVerifies runs `systemd-analyze verify` on deploy/systemd/dnsfront.service
// with ExecStart pointing at the binary under test, and `systemd-sysusers --dry-run` on
// its sysusers.d file. systemd-analyze reports unknown keys and unparsable values as
// warnings with exit code 0, so any output fails the test.
func TestSystemdUnitVerifies(t *testing.T) {
	t.Parallel()
	analyze := RequireTool(t, "systemd-analyze", "systemd")
	dir := filepath.Join(ModuleRoot(t), "deploy", "systemd")
	unit, err := os.ReadFile(filepath.Join(dir, "dnsfront.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/dnsfront serve") {
		t.Fatalf("the unit no longer starts /usr/bin/dnsfront serve:\n%s", unit)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"User=dnsfront", "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=dnsfront",
		"ExecReload=/bin/kill -HUP $MAINPID"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	tmp := filepath.Join(t.TempDir(), "dnsfront.service")
	WriteFile(t, tmp, []byte(strings.ReplaceAll(string(unit), "/usr/bin/dnsfront", Binary(t))))
	out, err := exec.Command(analyze, "verify", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	sysusers := RequireTool(t, "systemd-sysusers", "systemd")
	out, err = exec.Command(sysusers, "--root", t.TempDir(), "--dry-run", filepath.Join(dir, "dnsfront.sysusers")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Creating user 'dnsfront'") {
		t.Errorf("systemd-sysusers --dry-run: %v\n%s", err, out)
	}

	// ExecStartPre runs check-config with the same flags.
	if _, code := RunCLI(t, "check-config", "--help"); code != 0 {
		t.Errorf("dnsfront check-config --help exited %d", code)
	}
}

// dashboardConfig serves every kind of metric the dashboard charts: Do53, DoT with a
// stapled certificate, DoH, a pool with a packet cache, a query rule, the admin API.
const dashboardConfig = `
general:
  event_loops: 2
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
      ocsp_response_files: ["{{.Staple}}"]
  - listen_address: "127.0.0.1:{{port "doh"}}"
    protocol: DoH
    tls:
      certificates:
        - certificate: "{{.Chain}}"
          key: "{{.Key}}"
    doh: {paths: ["/dns-query"]}
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: {mode: up}
pools:
  - name: ""
    packet_cache: main
packet_caches:
  - {name: main, size: 1000}
query_rules:
  - name: "no ANY over UDP"
    selector: {type: And, selectors: [{type: QType, qtype: ANY}, {type: TCP, tcp: false}]}
    action: {type: TC}
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
`

// TestDashboardMetricsExported checks that every metric deploy/grafana/dnsfront.json
// queries is one a running dnsfront exports: a renamed metric would leave a panel empty
// without any error.
func TestDashboardMetricsExported(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(ModuleRoot(t), "deploy", "grafana", "dnsfront.json"))
	if err != nil {
		t.Fatal(err)
	}
	used := dashboardMetrics(t, b)
	t.Logf("the dashboard queries %d metrics: %v", len(used), used)

	p := devpki.NewTestPKI(t, t.TempDir())
	be := StartTestBackend(t)
	d := Start(t, dashboardConfig, map[string]string{
		"Chain": p.Leaf.ChainFile, "Key": p.Leaf.KeyFile, "Staple": p.WriteFile("leaf.ocsp", p.Good()), "Backend": be.Addr,
	})
	// A query through the cache and a TLS handshake create the series that start empty.
	MustExchange(t, "udp", d.Addr("dns"), NewQuery(testName, 1))
	c := DialDoT(t, d.Addr("dot"), "dns.test", CertPool(t, p.Root.Cert), nil)
	ExchangeDoT(t, c, NewQuery(testName, 1))
	c.Close()
	waitNegotiated(t, d, "tls1.3", "X25519MLKEM768", 1)

	exported := scrapeNames(t, d)
	var missing []string
	for _, m := range used {
		if !exported[m] {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the dashboard queries metrics dnsfront does not export: %v", missing)
	}
	for _, want := range []string{"dnsfront_queries_total", "dnsfront_backend_latency_seconds_bucket", "dnsfront_backend_up",
		"dnsfront_cache_hits_total", "dnsfront_tls_handshakes_negotiated_total", "dnsfront_ocsp_staple_next_update_seconds",
		"dnsfront_ocsp_staple_present", "dnsfront_dynblock_active", "dnsfront_rule_matches_total"} {
		if !slices.Contains(used, want) {
			t.Errorf("the dashboard does not chart %s", want)
		}
	}
}

var (
	promQuoted   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers = regexp.MustCompile(`\{[^}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	labelValues  = regexp.MustCompile(`label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true}
)

// dashboardMetrics returns the metric names of every PromQL expression of the dashboard
// (panel targets, and the label_values queries of its variables), sorted. An
// identifier that is not a function, a keyword, a label or a string counts as a
// metric name, so a misspelt one is caught too.
func dashboardMetrics(t *testing.T, dashboard []byte) []string {
	t.Helper()
	var root any
	if err := json.Unmarshal(dashboard, &root); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	names := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				s, ok := x.(string)
				switch {
				case ok && k == "expr":
					e := promQuoted.ReplaceAllString(s, `""`)
					e = promMatchers.ReplaceAllString(e, "")
					e = promRanges.ReplaceAllString(e, "")
					e = promGrouping.ReplaceAllString(e, "")
					for _, m := range promIdent.FindAllStringSubmatch(e, -1) {
						if m[1] == "" && !promKeywords[m[0]] {
							names[m[0]] = true
						}
					}
				case ok && (k == "definition" || k == "query"):
					for _, m := range labelValues.FindAllStringSubmatch(s, -1) {
						names[m[1]] = true
					}
				default:
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(root)
	if len(names) == 0 {
		t.Fatal("the dashboard has no PromQL expression")
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// scrapeNames returns the sample names of /metrics (histograms appear as their
// _bucket, _sum and _count series).
func scrapeNames(t *testing.T, d *Dnsfront) map[string]bool {
	t.Helper()
	resp, err := adminClient.Get(d.AdminURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestDeployConfigChecks runs `dnsfront check-config` on deploy/dnsfront.yaml (the
// configuration the unit, the image and the DaemonSet read), with its certificate paths
// pointed at a test PKI, and checks that the Kubernetes ConfigMap carries the same file.
func TestDeployConfigChecks(t *testing.T) {
	t.Parallel()
	root := filepath.Join(ModuleRoot(t), "deploy")
	cfg, err := os.ReadFile(filepath.Join(root, "dnsfront.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := devpki.NewTestPKI(t, t.TempDir())
	r := strings.NewReplacer("/etc/dnsfront/tls/tls.crt", p.Leaf.ChainFile, "/etc/dnsfront/tls/tls.key", p.Leaf.KeyFile,
		"/var/lib/dnsfront", t.TempDir())
	path := filepath.Join(t.TempDir(), "dnsfront.yaml")
	WriteFile(t, path, []byte(r.Replace(string(cfg))))
	if out, code := RunCLI(t, "check-config", "--config", path); code != 0 || strings.Contains(out, "warning") {
		t.Errorf("check-config deploy/dnsfront.yaml exited %d:\n%s", code, out)
	}

	k8s, err := os.Open(filepath.Join(root, "kubernetes", "dnsfront.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer k8s.Close()
	dec := yaml.NewDecoder(k8s)
	kinds := map[string]bool{}
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("deploy/kubernetes/dnsfront.yaml: %v", err)
		}
		kinds[doc.Kind] = true
		if doc.Kind == "ConfigMap" && doc.Data["dnsfront.yaml"] != string(cfg) {
			t.Errorf("the ConfigMap's dnsfront.yaml differs from deploy/dnsfront.yaml")
		}
	}
	if !kinds["ConfigMap"] || !kinds["DaemonSet"] {
		t.Errorf("deploy/kubernetes/dnsfront.yaml holds %v, want a ConfigMap and a DaemonSet", kinds)
	}
}
