package ocsp_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/ocsp"
)

// TestManagerWithOpenSSLResponder fetches from openssl's OCSP responder
// (`openssl ocsp -index`): a good and a revoked certificate, signed by the
// CA itself and by a delegated responder. OpenSSL 3.0's `-port` binds every
// interface, so a loopback HTTP front hands each request to openssl's
// responder mode through -reqin/-respout instead.
func TestManagerWithOpenSSLResponder(t *testing.T) {
	openssl := lookOpenSSL(t)
	for _, delegated := range []bool{false, true} {
		t.Run(fmt.Sprintf("delegated=%v", delegated), func(t *testing.T) {
			var p *devpki.TestPKI
			var methods []string
			var mu sync.Mutex
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				der, err := requestDER(r)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				methods = append(methods, r.Method)
				n := len(methods)
				mu.Unlock()
				reqFile := p.WriteFile(fmt.Sprintf("req%d.der", n), der)
				respFile := filepath.Join(p.Dir, fmt.Sprintf("resp%d.der", n))
				signer := p.Issuer
				if delegated {
					signer = p.Responder
				}
				out, err := exec.Command(openssl, "ocsp", "-index", filepath.Join(p.Dir, "index.txt"),
					"-rsigner", signer.CertFile, "-rkey", signer.KeyFile, "-CA", p.Issuer.CertFile,
					"-reqin", reqFile, "-respout", respFile, "-ndays", "1").CombinedOutput()
				if err != nil {
					t.Errorf("openssl ocsp: %v\n%s", err, out)
					http.Error(w, "openssl failed", http.StatusInternalServerError)
					return
				}
				resp, _ := os.ReadFile(respFile)
				w.Header().Set("Content-Type", "application/ocsp-response")
				w.Write(resp)
			}))
			defer srv.Close()
			opts := []devpki.Option{devpki.WithOCSPURL(srv.URL)}
			if delegated {
				opts = append(opts, devpki.WithDelegatedResponder(true))
			}
			p = devpki.NewTestPKI(t, t.TempDir(), opts...)
			revoked := p.IssueLeaf("revoked", devpki.WithOCSPURL(srv.URL))
			p.WriteFile("index.txt", []byte(indexLine("V", p.Leaf.Cert.NotAfter, "", p.Leaf)+
				indexLine("R", revoked.Cert.NotAfter, p.Now.Add(-time.Hour).UTC().Format("060102150405Z")+",keyCompromise", revoked)))

			pubs := newPublications()
			logs := &syncBuffer{}
			m := ocsp.NewManager(ocsp.Options{CacheDir: t.TempDir(), RequestTimeout: 5 * time.Second,
				Logger: testLogger(logs)}, pubs.publish)
			defer m.Close()
			err := m.Set([]ocsp.CertSource{
				{ID: "good", Chain: p.Leaf.Chain, Fetch: true},
				{ID: "revoked", Chain: revoked.Chain, Fetch: true},
			})
			if err != nil {
				t.Fatal(err)
			}
			var st []ocsp.CertStatus
			if !testutil.Poll(10*time.Second, func() bool {
				st = m.Status()
				return st[0].LastResult != "" && st[1].LastResult != ""
			}) {
				t.Fatalf("no answer from openssl: %+v\n%s", st, logs)
			}
			if st[0].Status != ocsp.StateGood || st[0].Source != ocsp.SourceFetch {
				t.Errorf("good certificate: %+v\n%s", st[0], logs)
			}
			if st[1].Status != ocsp.StateRevoked || st[1].Reason != "keyCompromise" {
				t.Errorf("revoked certificate: %+v", st[1])
			}
			if s := pubs.get("good"); s == nil || s.Delegated != delegated {
				t.Errorf("staple %+v, want delegated=%v", s, delegated)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(methods) != 2 || methods[0] != "GET" {
				t.Errorf("requests %v, want two GETs", methods)
			}
		})
	}
}

// requestDER extracts the DER request of an RFC 6960 GET or POST.
func requestDER(r *http.Request) ([]byte, error) {
	if r.Method == http.MethodPost {
		return io.ReadAll(r.Body)
	}
	s, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), "/"))
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(s)
}

// indexLine is one line of an `openssl ca` index.txt.
func indexLine(status string, expiry time.Time, revocation string, l *devpki.Leaf) string {
	serial := strings.ToUpper(l.Cert.SerialNumber.Text(16))
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	return strings.Join([]string{status, expiry.UTC().Format("060102150405Z"), revocation, serial, "unknown",
		"/CN=" + l.Cert.Subject.CommonName}, "\t") + "\n"
}
