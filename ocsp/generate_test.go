package ocsp_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

func TestGenerateVerifiedByOpenSSL(t *testing.T) {
	openssl := lookOpenSSL(t)
	dir := t.TempDir()
	for _, kt := range []struct {
		name string
		opts []devpki.Option
	}{{"ecdsa", nil}, {"rsa", []devpki.Option{devpki.WithRSA()}}} {
		t.Run(kt.name, func(t *testing.T) {
			p := devpki.NewTestPKI(t, filepath.Join(dir, kt.name), kt.opts...)
			out := filepath.Join(p.Dir, "leaf.ocsp")
			now := time.Now()
			s, err := ocsp.GenerateFiles(p.Leaf.ChainFile, p.Issuer.CertFile, p.Issuer.KeyFile, out, now, now.Add(2*24*time.Hour+30*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.NextUpdate.Sub(s.ThisUpdate); got != 2*24*time.Hour+30*time.Minute {
				t.Errorf("window %s", got)
			}
			if s.IssuerHash.String() != "SHA-256" {
				t.Errorf("CertID hash %s, want SHA-256", s.IssuerHash)
			}
			// -sha256 (before -cert): the CertID hash openssl looks the status up with.
			cmd := exec.Command(openssl, "ocsp", "-respin", out, "-issuer", p.Issuer.CertFile, "-sha256",
				"-cert", p.Leaf.ChainFile, "-CAfile", p.Root.CertFile, "-resp_text")
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("openssl: %v\n%s", err, b)
			}
			if !strings.Contains(string(b), "Response verify OK") || !strings.Contains(string(b), ": good") {
				t.Fatalf("openssl does not verify the response:\n%s", b)
			}
		})
	}
}

func TestGenerateRejectsWrongCA(t *testing.T) {
	a := devpki.NewTestPKI(t, t.TempDir())
	b := devpki.NewTestPKI(t, t.TempDir())
	now := time.Now()
	if _, err := ocsp.Generate(a.Leaf.Cert, b.Issuer.Cert, b.Issuer.Key, now, now.Add(time.Hour)); err == nil {
		t.Error("generated a response with a CA that did not issue the certificate")
	}
	if _, err := ocsp.Generate(a.Leaf.Cert, a.Issuer.Cert, b.Issuer.Key, now, now.Add(time.Hour)); err == nil ||
		!strings.Contains(err.Error(), "key does not match") {
		t.Errorf("err = %v", err)
	}
}

func TestReadKeyFileFormats(t *testing.T) {
	openssl := lookOpenSSL(t)
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"pkcs8-ec":  {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"},
		"sec1-ec":   {"ecparam", "-name", "prime256v1", "-genkey"},
		"pkcs1-rsa": {"genrsa", "-traditional"},
	} {
		path := filepath.Join(dir, name+".key")
		args = append(args, "-out", path)
		if args[0] == "genrsa" {
			args = append(args, "1024") // numbits comes last
		}
		b, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, b)
		}
		if _, err := ocsp.ReadKeyFile(path); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	if _, err := ocsp.ReadKeyFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("err = %v, want one naming %s", err, bad)
	}
	if _, err := ocsp.ReadChainFile(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("err = %v, want one naming %s", err, bad)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.der")
	for _, data := range []string{"first", "second"} {
		if err := ocsp.WriteFileAtomic(path, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(path)
		if string(got) != data {
			t.Fatalf("got %q want %q", got, data)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := ocsp.WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil, 0o644); err == nil {
		t.Error("wrote into a missing directory")
	}
}

func lookOpenSSL(t testing.TB) string { return testutil.Tool(t, "openssl") }
