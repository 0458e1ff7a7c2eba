package e2e

import (
	"context"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
)

// h2specCases is the number of cases of h2spec 2.2.1's HTTP/2 suite
// (generic and http2 groups): every one must pass.
const h2specCases = 145

// h2spec finds the h2spec binary: on PATH, or where `go install` puts it
// (go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible).
func h2spec(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return RequireTool(t, "h2spec", "")
}

// h2specReport is h2spec's JUnit report.
type h2specReport struct {
	Suites []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Skipped  int    `xml:"skipped,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Cases    []struct {
			Name    string    `xml:"classname,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestDoHH2spec runs the HTTP/2 conformance suite h2spec against the real binary,
// over TLS (ALPN h2) and in cleartext (h2c with prior knowledge): all 145 cases
// must pass, none skipped.
func TestDoHH2spec(t *testing.T) {
	bin := h2spec(t)
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: dohRecords})
	d := startFE(t, feConfig{
		PKI: pki,
		Binds: []feBind{
			{Port: "doh", Protocol: "DoH", TLS: true, DoH: dohBlock},
			{Port: "dohc", Protocol: "DoH", DoH: dohBlock},
		},
		Backends: []feBackend{{Name: "main", Addr: be.Addr}},
	})
	for _, tc := range []struct {
		name, port string
		tls        bool
		// expected failures, by case description, each with its reason
		allowed map[string]string
	}{
		{"tls", "doh", true, nil},
		{"h2c", "dohc", false, map[string]string{
			// A cleartext bind serves HTTP/1.1 and h2c on one port, told apart by
			// the first bytes: "INVALID CONNECTION PREFACE" is an HTTP/1.1 request
			// line there, answered 400 and closed (RFC 9112 2.2), which h2spec
			// reads as a broken frame. Over TLS, ALPN says h2 and the case passes.
			"Sends invalid connection preface": "HTTP/1.1 on a cleartext bind",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			report := filepath.Join(t.TempDir(), "report.xml")
			args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(d.Port(tc.port)), "-P", "/dns-query",
				"-o", "2", "-j", report}
			if tc.tls {
				args = append(args, "-t", "-k")
			}
			// -o bounds each case; the whole run is bounded too.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("h2spec did not finish in time:\n%s", out)
			}
			raw, rerr := os.ReadFile(report)
			if rerr != nil {
				t.Fatalf("h2spec wrote no report (%v, exit %v):\n%s", rerr, err, out)
			}
			var r h2specReport
			if err := xml.Unmarshal(raw, &r); err != nil {
				t.Fatalf("h2spec report: %v", err)
			}
			total, passed := 0, 0
			var failed []string
			for _, s := range r.Suites {
				for _, c := range s.Cases {
					total++
					switch {
					case c.Failure != nil, c.Error != nil:
						if _, ok := tc.allowed[c.Name]; !ok {
							failed = append(failed, c.Name)
						}
					case c.Skipped != nil:
						failed = append(failed, c.Name+" (skipped)")
					default:
						passed++
					}
				}
			}
			want := h2specCases - len(tc.allowed)
			if total != h2specCases || passed != want || len(failed) > 0 || (err != nil && len(tc.allowed) == 0) {
				t.Errorf("h2spec: %d of %d cases passed, want %d of %d (exit: %v); failed: %s\n%s",
					passed, total, want, h2specCases, err, strings.Join(failed, ", "), out)
			}
			t.Logf("h2spec %s: %d/%d passed", tc.name, passed, total)
		})
	}
}
