package tlsframe

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// bothPKI is a snapshot with an ECDSA and an RSA certificate for
// both.test and a third certificate for other.test, each with its own staple.
type bothPKI struct {
	pki               *testPKI
	ecdsa, rsa, other issued
	snap              *Snapshot
	tickets           *TicketKeys
}

func newBothPKI(t testing.TB) *bothPKI {
	t.Helper()
	p := newPKI(t)
	b := &bothPKI{pki: p}
	b.ecdsa = p.issue(t, "ecdsa.both.test", false, "both.test")
	b.rsa = p.issue(t, "rsa.both.test", true, "both.test")
	b.other = p.issue(t, "other.test", false, "other.test", "*.wild.test")
	tk, err := NewTicketKeys(3, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	b.tickets = tk
	b.snap, err = BuildSnapshot([]CertSpec{
		b.ecdsa.spec(p.staple(t, b.ecdsa.leaf)),
		b.rsa.spec(p.staple(t, b.rsa.leaf)),
		b.other.spec(p.staple(t, b.other.leaf)),
	}, Options{NextProtos: []string{"dot"}, SessionTickets: true}, tk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func stapleSerial(t testing.TB, cs tls.ConnectionState) string {
	t.Helper()
	if len(cs.OCSPResponse) == 0 {
		t.Fatal("no OCSP staple")
	}
	r, err := ocsp.ParseResponse(cs.OCSPResponse, nil)
	if err != nil {
		t.Fatalf("staple: %v", err)
	}
	return r.SerialNumber.String()
}

func TestGoClientsSNIAndStaples(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 2)
	rsaOnly12 := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	cases := []struct {
		name    string
		sni     string
		version uint16
		suites  []uint16
		wantCN  string
		wantKey string
	}{
		{"tls13 ecdsa preferred", "both.test", tls.VersionTLS13, nil, "ecdsa.both.test", "ecdsa"},
		{"tls12 ecdsa preferred", "both.test", tls.VersionTLS12, nil, "ecdsa.both.test", "ecdsa"},
		{"tls12 rsa-only client", "both.test", tls.VersionTLS12, rsaOnly12, "rsa.both.test", "rsa"},
		{"tls13 other", "other.test", tls.VersionTLS13, nil, "other.test", "ecdsa"},
		{"tls12 wildcard", "x.wild.test", tls.VersionTLS12, nil, "other.test", "ecdsa"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := b.pki.clientConfig(tc.sni)
			cfg.MinVersion, cfg.MaxVersion, cfg.CipherSuites = tc.version, tc.version, tc.suites
			c := dialTLS(t, s.addr, cfg)
			echo(t, c, "hello "+tc.name)
			cs := c.ConnectionState()
			if cs.Version != tc.version {
				t.Errorf("version %x, want %x", cs.Version, tc.version)
			}
			if cs.NegotiatedProtocol != "dot" {
				t.Errorf("ALPN %q, want dot", cs.NegotiatedProtocol)
			}
			leaf := cs.PeerCertificates[0]
			if leaf.Subject.CommonName != tc.wantCN {
				t.Errorf("certificate %s, want %s", leaf.Subject.CommonName, tc.wantCN)
			}
			switch leaf.PublicKey.(type) {
			case *ecdsa.PublicKey:
				if tc.wantKey != "ecdsa" {
					t.Errorf("got ECDSA certificate")
				}
			case *rsa.PublicKey:
				if tc.wantKey != "rsa" {
					t.Errorf("got RSA certificate")
				}
			}
			if got, want := stapleSerial(t, cs), leaf.SerialNumber.String(); got != want {
				t.Errorf("staple for serial %s, certificate has %s", got, want)
			}
		})
	}
}

func TestPipelinedFrames(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 1)
	c := dialTLS(t, s.addr, b.pki.clientConfig("both.test"))
	var batch []byte
	const n = 200
	for i := range n {
		batch = append(batch, frame(fmt.Sprintf("q%03d", i))...)
	}
	if _, err := c.Write(batch); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		got, err := readFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("q%03d", i); got != want {
			t.Fatalf("frame %d: %q, want %q", i, got, want)
		}
	}
	// A large answer spans records: 3 frames of 30 kB in one pass.
	big := strings.Repeat("x", 30000)
	for range 3 {
		if _, err := c.Write(frame(big)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if got, err := readFrame(c); err != nil || got != big {
			t.Fatalf("big frame: %v (len %d)", err, len(got))
		}
	}
}

// trickleConn writes one byte per syscall with a pause, so that every TLS
// record (ClientHello included) reaches the server in pieces.
type trickleConn struct{ net.Conn }

func (c trickleConn) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := c.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
		if i%8 == 0 {
			time.Sleep(50 * time.Microsecond)
		}
	}
	return len(p), nil
}

func TestOneByteSplitRecords(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 1)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		raw, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		raw.(*net.TCPConn).SetNoDelay(true)
		cfg := b.pki.clientConfig("both.test")
		cfg.MaxVersion = v
		c := tls.Client(trickleConn{raw}, cfg)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		echo(t, c, "split one")
		echo(t, c, "split two")
		c.Close()
	}
}

func TestCloseNotify(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 1)

	// Client close_notify: the server sees io.EOF and closes.
	c := dialTLS(t, s.addr, b.pki.clientConfig("both.test"))
	echo(t, c, "before close")
	before := s.closed.Load()
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read after close_notify returned data")
	}
	testutil.Eventually(t, 10*time.Second, "server close", func() bool { return s.closed.Load() > before })
	if e := s.lastErr.Load(); e == nil || *e != io.EOF {
		t.Errorf("server error %v, want io.EOF", e)
	}

	// Server close_notify: the client reads io.EOF (not a reset).
	c2 := dialTLS(t, s.addr, b.pki.clientConfig("both.test"))
	echo(t, c2, "first")
	if _, err := c2.Write(frame("bye")); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("client read %v, want io.EOF from close_notify", err)
	}
}

func TestWriteOutsideOnTraffic(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 2)
	c := dialTLS(t, s.addr, b.pki.clientConfig("both.test"))
	for i := range 20 {
		echo(t, c, fmt.Sprintf("later:%d", i))
	}
	// Mixed in one pass: the late answer follows the immediate one.
	if _, err := c.Write(append(frame("later:x"), frame("now")...)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"now", "later:x"} {
		if got, err := readFrame(c); err != nil || got != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
}

func TestManyConcurrentHandshakes(t *testing.T) {
	b := newBothPKI(t)
	hs := NewHandshaker(HandshakerOptions{MaxConcurrent: 16, MaxQueue: 1000, PerClient: 1000, Timeout: 30 * time.Second})
	s := startServer(t, b.snap, hs, 2)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := b.pki.clientConfig("both.test")
			if i%2 == 0 {
				cfg.MaxVersion = tls.VersionTLS12
			}
			// Generous: other test binaries may share the CPUs.
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 30 * time.Second}, "tcp", s.addr, cfg)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			want := fmt.Sprintf("c%d", i)
			if _, err := c.Write(frame(want)); err != nil {
				errs <- err
				return
			}
			if got, err := readFrame(c); err != nil || got != want {
				errs <- fmt.Errorf("conn %d: %q %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := hs.Stats()
	if st.Succeeded < n || st.Shed != 0 {
		t.Errorf("stats %+v, want %d succeeded and none shed", st, n)
	}
}

func TestSnapshotSwapDuringTraffic(t *testing.T) {
	b := newBothPKI(t)
	s := startServer(t, b.snap, nil, 2)
	id := b.snap.CertIDs()[0]
	stapleA := b.snap.Certificates()[0].OCSPStaple
	stapleB := b.pki.staple(t, b.ecdsa.leaf)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tls.Dial("tcp", s.addr, b.pki.clientConfig("both.test"))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				want := fmt.Sprintf("w%d-%d", w, i)
				if _, err := c.Write(frame(want)); err != nil {
					t.Error(err)
					return
				}
				if got, err := readFrame(c); err != nil || got != want {
					t.Errorf("got %q %v, want %q", got, err, want)
					return
				}
			}
		}()
	}
	cur := b.snap
	for i := range 40 {
		staple := stapleA
		if i%2 == 0 {
			staple = stapleB
		}
		cur = cur.WithStaple(id, staple)
		s.store.Publish(cur)
		c := dialTLS(t, s.addr, b.pki.clientConfig("both.test"))
		echo(t, c, "new handshake")
		if got := c.ConnectionState().OCSPResponse; string(got) != string(staple) {
			t.Fatalf("publish %d: handshake got the previous staple", i)
		}
		c.Close()
	}
	close(stop)
	wg.Wait()
}

// TestHandBackReleasesTLSBuffers: once a connection is on its loop and has
// consumed what it read, crypto/tls's handshake-grown buffers are gone; a
// query regrows rawInput to its record's size only, and hand stays empty.
func TestHandBackReleasesTLSBuffers(t *testing.T) {
	b := newBothPKI(t)
	hs := NewHandshaker(HandshakerOptions{})
	s := startServer(t, b.snap, hs, 1)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := b.pki.clientConfig("both.test")
		cfg.MaxVersion = v
		c := dialTLS(t, s.addr, cfg)
		echo(t, c, "warm")
		if _, err := c.Write(frame("buffers?")); err != nil {
			t.Fatal(err)
		}
		got, err := readFrame(c)
		if err != nil {
			t.Fatal(err)
		}
		var raw, hand int
		if _, err := fmt.Sscanf(got, "rawInput %d hand %d", &raw, &hand); err != nil {
			t.Fatalf("%q: %v", got, err)
		}
		// A record of a short frame plus crypto/tls's 512-byte read reserve.
		if raw > 1024 || hand != 0 {
			t.Fatalf("%s: rawInput cap %d, hand cap %d after the hand-back: want ≤ 1024 and 0", tls.VersionName(v), raw, hand)
		}
		echo(t, c, "still answers")
	}
}
