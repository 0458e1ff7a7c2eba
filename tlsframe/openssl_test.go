package tlsframe

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// sclient drives `openssl s_client` with stdin kept open until the script
// is done, so that TLS 1.3 tickets and echoes can arrive.
type sclient struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	out   bytes.Buffer
	done  chan struct{}
}

type lockedWriter struct{ s *sclient }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.out.Write(p)
}

func startSClient(t testing.TB, args ...string) *sclient {
	t.Helper()
	openssl := testutil.Tool(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	s := &sclient{t: t, done: make(chan struct{})}
	s.cmd = exec.CommandContext(ctx, openssl, append([]string{"s_client"}, args...)...)
	s.cmd.Stdout = lockedWriter{s}
	s.cmd.Stderr = lockedWriter{s}
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	return s
}

func (s *sclient) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *sclient) waitFor(what string) {
	s.t.Helper()
	testutil.Poll(10*time.Second, func() bool {
		if strings.Contains(s.output(), what) {
			return true
		}
		select {
		case <-s.done:
			return true
		default:
			return false
		}
	})
	if !strings.Contains(s.output(), what) {
		s.t.Fatalf("no %q from s_client:\n%s", what, s.output())
	}
}

// finish closes stdin (s_client then sends close_notify) and waits.
func (s *sclient) finish() string {
	s.t.Helper()
	s.stdin.Close()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.t.Fatalf("s_client did not exit:\n%s", s.output())
	}
	return s.output()
}

const ocspOK = "OCSP Response Status: successful (0x0)"

var serialRE = regexp.MustCompile(`Serial Number: ([0-9A-Fa-f]+)`)

func TestOpenSSLStatusSNIAndAlgorithms(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 2)
	cases := []struct {
		name, version, sni, sigalgs string
		want                        issued
	}{
		{"tls13 ecdsa", "-tls1_3", "both.test", "ecdsa_secp256r1_sha256", b.ecdsa},
		{"tls13 rsa", "-tls1_3", "both.test", "rsa_pss_rsae_sha256", b.rsa},
		{"tls12 ecdsa", "-tls1_2", "both.test", "ECDSA+SHA256", b.ecdsa},
		{"tls12 rsa", "-tls1_2", "both.test", "RSA+SHA256", b.rsa},
		{"tls13 other", "-tls1_3", "other.test", "", b.other},
		{"tls12 other", "-tls1_2", "other.test", "", b.other},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"-connect", s.addr, "-servername", tc.sni, "-status", tc.version, "-alpn", "dot"}
			if tc.sigalgs != "" {
				args = append(args, "-sigalgs", tc.sigalgs)
			}
			sc := startSClient(t, args...)
			sc.waitFor("Verify return code")
			out := sc.finish()
			if !strings.Contains(out, ocspOK) {
				t.Fatalf("no %q:\n%s", ocspOK, out)
			}
			if !strings.Contains(out, "CN = "+tc.want.leaf.Subject.CommonName) &&
				!strings.Contains(out, "CN="+tc.want.leaf.Subject.CommonName) {
				t.Errorf("certificate is not %s:\n%s", tc.want.leaf.Subject.CommonName, out)
			}
			m := serialRE.FindStringSubmatch(out)
			if m == nil || !strings.EqualFold(strings.TrimLeft(m[1], "0"), tc.want.leaf.SerialNumber.Text(16)) {
				t.Errorf("staple serial %v, want %X", m, tc.want.leaf.SerialNumber)
			}
			if !strings.Contains(out, "ALPN protocol: dot") {
				t.Errorf("no ALPN dot:\n%s", out)
			}
		})
	}
}

func TestOpenSSLResumptionAcrossPublish(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 2)
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		t.Run(v, func(t *testing.T) {
			sess := filepath.Join(t.TempDir(), "sess.pem")
			first := startSClient(t, "-connect", s.addr, "-servername", "both.test", v, "-sess_out", sess)
			first.waitFor("Verify return code")
			if v == "-tls1_3" {
				// The tickets come after the handshake; wait for them
				// before hanging up.
				first.stdin.Write(frame("ping"))
				first.waitFor("ping")
			}
			if out := first.finish(); !strings.Contains(out, "New, ") {
				t.Fatalf("first connection not new:\n%s", out)
			}

			// A reload: new snapshot (new staple), same ticket key ring.
			id := b.snap.CertIDs()[0]
			s.store.Publish(s.store.Current().WithStaple(id, b.pki.staple(t, b.ecdsa.leaf)))

			second := startSClient(t, "-connect", s.addr, "-servername", "both.test", v, "-sess_in", sess)
			second.waitFor("Verify return code")
			second.stdin.Write(frame("pong"))
			second.waitFor("pong")
			if out := second.finish(); !strings.Contains(out, "Reused, ") {
				t.Fatalf("session not reused across a publish:\n%s", out)
			}
		})
	}
}

func TestOpenSSLKeyUpdate(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 1)
	sc := startSClient(t, "-connect", s.addr, "-servername", "both.test", "-tls1_3", "-msg")
	sc.waitFor("Verify return code")
	sc.stdin.Write(frame("before update"))
	sc.waitFor("before update")
	// "K" at the start of a line: send a KeyUpdate asking for one back.
	sc.stdin.Write([]byte("K\n"))
	sc.waitFor("KEYUPDATE")
	sc.stdin.Write(frame("after update"))
	sc.waitFor("after update")
	out := sc.finish()
	// The server's own KeyUpdate, answering update_requested.
	received := regexp.MustCompile(`(?m)^<<< TLS 1.3, Handshake \[length 0005\], KeyUpdate`)
	if !received.MatchString(out) {
		t.Fatalf("no KeyUpdate from the server:\n%s", out)
	}
	if testing.Verbose() {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "KeyUpdate") || strings.Contains(l, "Alert") {
				t.Log(l)
			}
		}
	}
}
