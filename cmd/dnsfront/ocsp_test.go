package main

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

// runOCSP runs `dnsfront ocsp args...` and returns its output and error.
func runOCSP(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return runCmd(newOCSPCmd(), args...)
}

func TestOCSPGenerateVerifiedByOpenSSL(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	for _, kt := range []struct {
		name string
		opts []devpki.Option
	}{{"ecdsa", nil}, {"rsa", []devpki.Option{devpki.WithRSA()}}} {
		t.Run(kt.name, func(t *testing.T) {
			p := devpki.NewTestPKI(t, t.TempDir(), append(kt.opts, devpki.WithIntermediate())...)
			out := filepath.Join(p.Dir, "leaf.ocsp")
			// A chain file as --cert: its first certificate is the one.
			msg, err := runOCSP(t, "generate", "--cert", p.Leaf.ChainFile, "--ca-cert", p.Issuer.CertFile,
				"--ca-key", p.Issuer.KeyFile, "--out", out, "--days", "2", "--minutes", "30")
			if err != nil {
				t.Fatalf("%v\n%s", err, msg)
			}
			if !strings.Contains(msg, ocsp.FormatSerial(p.Leaf.Cert.SerialNumber)) {
				t.Errorf("output %q lacks the serial", msg)
			}
			b, err := exec.Command(openssl, "ocsp", "-respin", out, "-issuer", p.Issuer.CertFile, "-sha256",
				"-cert", p.Leaf.ChainFile, "-CAfile", p.Root.CertFile, "-resp_text").CombinedOutput()
			if err != nil {
				t.Fatalf("openssl: %v\n%s", err, b)
			}
			text := string(b)
			if !strings.Contains(text, "Response verify OK") || !strings.Contains(text, ": good") ||
				!strings.Contains(text, "Hash Algorithm: sha256") {
				t.Fatalf("openssl output:\n%s", text)
			}
			resp, err := xocsp.ParseResponse(mustRead(t, out), p.Issuer.Cert)
			if err != nil {
				t.Fatal(err)
			}
			if d := resp.NextUpdate.Sub(resp.ThisUpdate); d != 48*time.Hour+30*time.Minute {
				t.Errorf("window %s, want 48h30m", d)
			}
			if d := time.Since(resp.ThisUpdate); d < 0 || d > time.Minute {
				t.Errorf("thisUpdate %s is not now", resp.ThisUpdate)
			}
		})
	}
}

func TestOCSPGenerateErrors(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir())
	other := devpki.NewTestPKI(t, t.TempDir())
	out := filepath.Join(p.Dir, "x.ocsp")
	cases := map[string][]string{
		"missing flags": {"generate", "--cert", p.Leaf.ChainFile},
		"missing cert":  {"generate", "--cert", filepath.Join(p.Dir, "nope.pem"), "--ca-cert", p.Issuer.CertFile, "--ca-key", p.Issuer.KeyFile, "--out", out},
		"wrong CA":      {"generate", "--cert", p.Leaf.ChainFile, "--ca-cert", other.Issuer.CertFile, "--ca-key", other.Issuer.KeyFile, "--out", out},
		"zero validity": {"generate", "--cert", p.Leaf.ChainFile, "--ca-cert", p.Issuer.CertFile, "--ca-key", p.Issuer.KeyFile, "--out", out, "--days", "0"},
	}
	for name, args := range cases {
		if msg, err := runOCSP(t, args...); err == nil {
			t.Errorf("%s: no error\n%s", name, msg)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed generate wrote its output")
	}
}

func TestOCSPInspect(t *testing.T) {
	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithDelegatedResponder(true))
	good := p.WriteFile("good.ocsp", p.Good())
	msg, err := runOCSP(t, "inspect", good, "--cert", p.Leaf.ChainFile)
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	for _, want := range []string{"Response status:", "successful", "Certificate status:", "good",
		ocsp.FormatSerial(p.Leaf.Cert.SerialNumber), "This update:", "Next update:", "Produced at:",
		"delegated responder", "[ok]", "Verdict:", "usable"} {
		if !strings.Contains(msg, want) {
			t.Errorf("output lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "FAIL") {
		t.Errorf("a check failed:\n%s", msg)
	}

	for name, c := range map[string]struct {
		file, fail string
	}{
		"expired":  {p.WriteFile("expired.ocsp", p.Expired()), "now + skew < nextUpdate"},
		"revoked":  {p.WriteFile("revoked.ocsp", p.Revoked()), "certificate status good"},
		"other":    {p.WriteFile("other.ocsp", p.ForOtherCert()), "serial matches certificate"},
		"badsig":   {p.WriteFile("bad.ocsp", p.BadlySigned()), "signature"},
		"devnull":  {"/dev/null", "parses"},
		"garbage":  {p.WriteFile("garbage.ocsp", []byte("garbage")), "parses"},
		"trylater": {p.WriteFile("trylater.ocsp", xocsp.TryLaterErrorResponse), "response status successful"},
	} {
		msg, err := runOCSP(t, "inspect", c.file, "--cert", p.Leaf.ChainFile)
		if err == nil || !strings.Contains(err.Error(), c.file) {
			t.Errorf("%s: err = %v, want one naming %s", name, err, c.file)
		}
		if !strings.Contains(msg, "[FAIL]  "+c.fail) || !strings.Contains(msg, "NOT usable") {
			t.Errorf("%s: output does not fail %q:\n%s", name, c.fail, msg)
		}
	}
	// Without --cert the response is judged on what can be checked.
	if msg, err := runOCSP(t, "inspect", good); err != nil || !strings.Contains(msg, "[skip]  signature") {
		t.Errorf("err %v\n%s", err, msg)
	}
	// With the leaf alone (a dnsdist configuration): everything but the signature, as the
	// server checks it, and the verdict says so; another certificate's response still fails.
	leafOnly := p.WriteFile("leaf.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.Leaf.Cert.Raw}))
	msg, err = runOCSP(t, "inspect", good, "--cert", leafOnly)
	if err != nil || !strings.Contains(msg, "[ok]    issuer key hash") || !strings.Contains(msg, "usable, signature not verified: issuer unknown") {
		t.Errorf("leaf alone: err %v\n%s", err, msg)
	}
	other := p.WriteFile("other2.ocsp", p.ForOtherCert())
	if msg, err := runOCSP(t, "inspect", other, "--cert", leafOnly); err == nil || !strings.Contains(msg, "NOT usable") {
		t.Errorf("leaf alone, other certificate: err %v\n%s", err, msg)
	}
}

func TestOCSPFetch(t *testing.T) {
	var p *devpki.TestPKI
	var methods []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods = append(methods, r.Method)
		s, _ := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/"))
		der, err := base64.StdEncoding.DecodeString(s)
		if r.Method == http.MethodPost {
			der, err = io.ReadAll(r.Body)
		}
		req, perr := xocsp.ParseRequest(der)
		if err != nil || perr != nil {
			w.Write(xocsp.MalformedRequestErrorResponse)
			return
		}
		if req.SerialNumber.Cmp(p.Leaf.Cert.SerialNumber) != 0 {
			w.Write(p.Mint(&x509.Certificate{SerialNumber: req.SerialNumber}, devpki.Response{Status: ocsp.StatusUnknown}))
			return
		}
		w.Write(p.Good())
	}))
	defer srv.Close()
	p = devpki.NewTestPKI(t, t.TempDir(), devpki.WithOCSPURL(srv.URL))
	out := filepath.Join(p.Dir, "fetched.ocsp")
	msg, err := runOCSP(t, "fetch", "--cert", p.Leaf.ChainFile, "--out", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	if _, err := ocsp.LoadFile(out, p.Leaf.Cert, p.Issuer.Cert, time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(methods) != 1 || methods[0] != http.MethodGet {
		t.Errorf("requests %v", methods)
	}
	// A certificate the responder does not know: nothing written.
	other := p.IssueLeaf("other", devpki.WithOCSPURL(srv.URL))
	out2 := filepath.Join(p.Dir, "other.ocsp")
	if _, err := runOCSP(t, "fetch", "--cert", other.ChainFile, "--issuer", p.Issuer.CertFile, "--out", out2); err == nil ||
		!strings.Contains(err.Error(), "unknown") {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(out2); err == nil {
		t.Error("an unusable response was written")
	}
	// No responder URL and no --url.
	bare := p.IssueLeaf("bare")
	if _, err := runOCSP(t, "fetch", "--cert", bare.ChainFile, "--out", out2); err == nil || !strings.Contains(err.Error(), "--url") {
		t.Errorf("err = %v", err)
	}
}

func TestOCSPStatus(t *testing.T) {
	next := time.Now().Add(36 * time.Hour).UTC().Truncate(time.Second)
	certs := []ocsp.CertStatus{
		{ID: "a", Name: "server.chain.pem", Serial: "0x1a2b", Status: "good", Source: "fetch", NextUpdate: &next, Successes: 3},
		{ID: "b", Name: "rsa.chain.pem", Serial: "0x3c4d", Status: "revoked", LastResult: "revoked", LastError: "ocsp: revoked", Failures: 2, MustStaple: true},
		{ID: "c", Name: "leaf.pem", Serial: "0x5e6f", Status: ocsp.StateUnverified, StatusDetail: ocsp.DetailUnverified, Source: "file", NextUpdate: &next},
		{ID: "d", Name: "le.pem", Serial: "0x7a8b", Status: ocsp.StateNotApplicable, StatusDetail: ocsp.DetailNotApplicable},
	}
	var gotKey, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotKey, gotPath = r.Header.Get("X-API-Key"), r.URL.Path
		if gotKey != "secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(certs)
	}))
	defer srv.Close()
	msg, err := runOCSP(t, "status", "--admin", srv.URL, "--api-key", "secret")
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	if gotPath != "/api/v1/ocsp" {
		t.Errorf("path %q", gotPath)
	}
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "CERT") {
		t.Fatalf("table:\n%s", msg)
	}
	for i, want := range [][]string{{"server.chain.pem", "0x1a2b", "good", "fetch", next.Format(time.RFC3339), "(in 3"},
		{"rsa.chain.pem", "0x3c4d", "revoked", "yes", "ocsp: revoked"},
		{"leaf.pem", "0x5e6f", "good, signature not verified: issuer unknown", "file"},
		{"le.pem", "0x7a8b", "not applicable"}} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %q lacks %q", lines[i+1], w)
			}
		}
	}
	if _, err := runOCSP(t, "status", "--admin", srv.URL, "--api-key", "wrong"); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Errorf("err = %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
