package tlsframe

// Contract tests: the crypto/tls behaviour the adapter is built on. If a Go
// upgrade changes one of these, this file fails before anything subtler
// does. KeyUpdate from a real client (openssl s_client) under would-block
// reads is pinned by TestOpenSSLKeyUpdate, since Go's client cannot send one.

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// memConn is a server-side net.Conn whose bytes come from a TCP socket
// through a pump goroutine into raw. In blocking mode Read waits on raw
// (the handshake goroutine's view); otherwise Read sees only what the test
// moved into in with feed, and returns wouldBlock when it is empty (the
// loop's view).
type memConn struct {
	net.Conn // the socket, for writes
	mu       sync.Mutex
	cond     sync.Cond
	raw, in  []byte
	blocking bool
}

func newMemPair(t *testing.T, cfg *tls.Config) (*memConn, *tls.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	cli, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	t.Cleanup(func() { cli.Close(); srv.Close() })
	m := &memConn{Conn: srv, blocking: true}
	m.cond.L = &m.mu
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := srv.Read(buf)
			m.mu.Lock()
			m.raw = append(m.raw, buf[:n]...)
			m.cond.Broadcast()
			m.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	_ = cli.SetDeadline(time.Now().Add(10 * time.Second))
	return m, tls.Client(cli, cfg)
}

func (m *memConn) Read(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blocking {
		for len(m.raw) == 0 {
			m.cond.Wait()
		}
		n := copy(p, m.raw)
		m.raw = m.raw[n:]
		return n, nil
	}
	if len(m.in) == 0 {
		return 0, errWouldBlock
	}
	n := copy(p, m.in)
	m.in = m.in[n:]
	return n, nil
}

func (m *memConn) SetDeadline(time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

// awaitRaw waits until at least n bytes came from the client: the pump
// broadcasts on every read, and a timer broadcasts once the deadline passes.
func (m *memConn) awaitRaw(t *testing.T, n int) {
	t.Helper()
	expired := false
	timer := time.AfterFunc(10*time.Second, func() {
		m.mu.Lock()
		expired = true
		m.cond.Broadcast()
		m.mu.Unlock()
	})
	defer timer.Stop()
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.raw) < n && !expired {
		m.cond.Wait()
	}
	if len(m.raw) < n {
		t.Fatalf("client sent %d bytes, want %d", len(m.raw), n)
	}
}

// feed moves n bytes (all if n < 0) from raw into what the server sees.
func (m *memConn) feed(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if n < 0 || n > len(m.raw) {
		n = len(m.raw)
	}
	m.in = append(m.in, m.raw[:n]...)
	m.raw = m.raw[n:]
}

// nextRecordLen is the size of the next whole record the client sent.
func (m *memConn) nextRecordLen(t *testing.T) int {
	t.Helper()
	return m.recordsLen(t, 1)
}

// recordsLen waits until the next k whole records the client sent are
// buffered and returns their size together.
func (m *memConn) recordsLen(t *testing.T, k int) int {
	t.Helper()
	n := 0
	for range k {
		m.awaitRaw(t, n+recordHeaderLen)
		m.mu.Lock()
		n += recordHeaderLen + (int(m.raw[n+3])<<8 | int(m.raw[n+4]))
		m.mu.Unlock()
		m.awaitRaw(t, n)
	}
	return n
}

// establish runs the handshake in blocking mode (as the handshake goroutine
// does) and switches the server to would-block reads (as the loop does).
func establish(t *testing.T, version uint16) (*memConn, *tls.Conn, *tls.Conn) {
	t.Helper()
	b := newBothPKI(t)
	m, client := newMemPair(t, b.pki.clientConfig("both.test"))
	cfg := b.snap.config.Clone()
	cfg.MaxVersion = version
	server := tls.Server(m, cfg)
	errc := make(chan error, 1)
	go func() { errc <- client.Handshake() }()
	if err := server.Handshake(); err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	m.mu.Lock()
	m.blocking = false
	m.mu.Unlock()
	return m, server, client
}

func isWouldBlock(err error) bool {
	var ne net.Error
	//lint:ignore SA1019 Temporary is what crypto/tls checks (readRecordOrCCS), so it is the contract
	return errors.As(err, &ne) && ne.Temporary()
}

func forVersions(t *testing.T, f func(t *testing.T, v uint16)) {
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) { f(t, v) })
	}
}

func TestContractWouldBlockIsNotCached(t *testing.T) {
	forVersions(t, func(t *testing.T, v uint16) {
		m, server, client := establish(t, v)
		buf := make([]byte, 1024)
		for i := range 5 {
			if _, err := server.Read(buf); !isWouldBlock(err) {
				t.Fatalf("read on empty input: %v, want would-block", err)
			}
			msg := []byte{'m', byte('0' + i)}
			if _, err := client.Write(msg); err != nil {
				t.Fatal(err)
			}
			m.nextRecordLen(t)
			m.feed(-1)
			n, err := server.Read(buf)
			if err != nil || string(buf[:n]) != string(msg) {
				t.Fatalf("read after would-block: %q %v", buf[:n], err)
			}
		}
	})
}

func TestContractSplitRecords(t *testing.T) {
	forVersions(t, func(t *testing.T, v uint16) {
		m, server, client := establish(t, v)
		if _, err := client.Write([]byte("one byte at a time")); err != nil {
			t.Fatal(err)
		}
		n := m.nextRecordLen(t)
		buf := make([]byte, 1024)
		for i := range n - 1 {
			m.feed(1)
			if got, err := server.Read(buf); got != 0 || !isWouldBlock(err) {
				t.Fatalf("byte %d of %d: %d %v, want would-block", i+1, n, got, err)
			}
		}
		m.feed(1)
		got, err := server.Read(buf)
		if err != nil || string(buf[:got]) != "one byte at a time" {
			t.Fatalf("last byte: %q %v", buf[:got], err)
		}
	})
}

func TestContractDataAndWouldBlockTogether(t *testing.T) {
	forVersions(t, func(t *testing.T, v uint16) {
		m, server, client := establish(t, v)
		if _, err := client.Write([]byte("last words")); err != nil {
			t.Fatal(err)
		}
		data := m.nextRecordLen(t)
		m.feed(data)
		if err := client.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		alert := m.nextRecordLen(t)
		m.feed(3) // part of the close_notify record
		buf := make([]byte, 1024)
		n, err := server.Read(buf)
		if v == tls.VersionTLS13 {
			// TLS 1.3 alerts travel as application_data records, so
			// crypto/tls does not peek at them: data first, then
			// would-block on its own.
			if string(buf[:n]) != "last words" || err != nil {
				t.Fatalf("got %q %v, want the data alone", buf[:n], err)
			}
			n, err = server.Read(buf)
			if n != 0 || !isWouldBlock(err) {
				t.Fatalf("got %d %v, want would-block", n, err)
			}
		} else if string(buf[:n]) != "last words" || !isWouldBlock(err) {
			t.Fatalf("got %q %v, want the data and would-block together", buf[:n], err)
		}
		m.feed(alert - 3)
		if n, err := server.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("after close_notify: %d %v, want io.EOF", n, err)
		}
	})
}

func TestContractCloseNotifyIsEOF(t *testing.T) {
	forVersions(t, func(t *testing.T, v uint16) {
		m, server, client := establish(t, v)
		if _, err := client.Write([]byte("bye")); err != nil {
			t.Fatal(err)
		}
		if err := client.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		// Both records, the data and the close_notify alert, reach the
		// server in one read.
		m.feed(m.recordsLen(t, 2))
		buf := make([]byte, 1024)
		n, err := server.Read(buf)
		// TLS 1.2: the data with io.EOF at once (crypto/tls peeks at a
		// plaintext alert header); TLS 1.3: the data, then io.EOF.
		want := error(io.EOF)
		if v == tls.VersionTLS13 {
			want = nil
		}
		if string(buf[:n]) != "bye" || err != want {
			t.Fatalf("got %q %v, want \"bye\" and %v", buf[:n], err, want)
		}
		if _, err := server.Read(buf); err != io.EOF {
			t.Fatalf("second read: %v, want io.EOF", err)
		}
	})
}

// TestContractHandshakeErrorIsCached is why handshakes run off the loop: a
// would-block during the handshake is final.
func TestContractHandshakeErrorIsCached(t *testing.T) {
	b := newBothPKI(t)
	m, client := newMemPair(t, b.pki.clientConfig("both.test"))
	m.mu.Lock()
	m.blocking = false
	m.mu.Unlock()
	server := tls.Server(m, b.snap.config.Clone())
	first := server.Handshake()
	if !isWouldBlock(first) {
		t.Fatalf("handshake on empty input: %v", first)
	}
	go func() { _ = client.Handshake() }()
	m.nextRecordLen(t)
	m.feed(-1)
	if second := server.Handshake(); second == nil {
		t.Fatal("handshake recovered after would-block: the adapter could run handshakes on the loop")
	}
}

// TestContractReleaseBuffers pins what release.go relies on: crypto/tls.Conn
// has the rawInput, input and hand buffers it finds by name, the handshake
// leaves them grown, and a connection whose empty buffers were dropped reads
// on (a whole record, a split one) and regrows only what a record needs.
func TestContractReleaseBuffers(t *testing.T) {
	if !tlsBuffers().ok {
		t.Fatal("crypto/tls.Conn has no rawInput/input/hand buffers of the expected types: release.go releases nothing")
	}
	forVersions(t, func(t *testing.T, v uint16) {
		m, server, client := establish(t, v)
		raw, hand, _ := tlsBufferCaps(server)
		if raw == 0 || hand == 0 {
			t.Fatalf("after the handshake rawInput cap %d, hand cap %d: want both grown", raw, hand)
		}
		if !releaseTLSBuffers(server) {
			t.Fatal("buffers not released though both are empty")
		}
		if raw, hand, _ := tlsBufferCaps(server); raw != 0 || hand != 0 {
			t.Fatalf("after release rawInput cap %d, hand cap %d, want 0", raw, hand)
		}
		buf := make([]byte, 1024)
		for i, msg := range []string{"after release", "split after release"} {
			if _, err := client.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			n := m.nextRecordLen(t)
			if i == 1 {
				m.feed(n / 2)
				if got, err := server.Read(buf); got != 0 || !isWouldBlock(err) {
					t.Fatalf("half a record: %d %v, want would-block", got, err)
				}
				if releaseTLSBuffers(server) {
					t.Fatal("released rawInput while it held half a record")
				}
			}
			m.feed(-1)
			got, err := server.Read(buf)
			if err != nil || string(buf[:got]) != msg {
				t.Fatalf("read %q %v, want %q", buf[:got], err, msg)
			}
			if got, err := server.Read(buf); got != 0 || !isWouldBlock(err) {
				t.Fatalf("drained: %d %v, want would-block", got, err)
			}
			if !releaseTLSBuffers(server) {
				t.Fatal("buffers not released once drained")
			}
		}
		// Answers still go out.
		if _, err := server.Write([]byte("answer")); err != nil {
			t.Fatal(err)
		}
		got, err := client.Read(buf)
		if err != nil || string(buf[:got]) != "answer" {
			t.Fatalf("client read %q %v", buf[:got], err)
		}
	})
}
