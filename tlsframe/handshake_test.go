package tlsframe

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"go.uber.org/goleak"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// clientHello returns the first record of a real Go TLS client's handshake.
func clientHello(t testing.TB) []byte {
	t.Helper()
	cli, srv := net.Pipe()
	defer srv.Close()
	go func() {
		_ = tls.Client(cli, &tls.Config{ServerName: "both.test", InsecureSkipVerify: true}).Handshake()
		cli.Close()
	}()
	hdr := make([]byte, 5)
	if _, err := readFull(srv, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := readFull(srv, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// hangingClient sends a whole ClientHello and never answers the server's
// flight: its handshake occupies a worker until the deadline.
func hangingClient(t testing.TB, addr string, hello []byte) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(hello); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHandshakeCapAndQueueShedding(t *testing.T) {
	b := newBothPKI(t)
	hs := NewHandshaker(HandshakerOptions{MaxConcurrent: 1, MaxQueue: 1, PerClient: -1, Timeout: 10 * time.Second})
	s := startServer(t, b.snap, hs, 1)
	hello := clientHello(t)

	running := hangingClient(t, s.addr, hello)
	testutil.Eventually(t, 10*time.Second, "one running", func() bool { return hs.Stats().Running == 1 })
	queued := hangingClient(t, s.addr, hello)
	testutil.Eventually(t, 10*time.Second, "one queued", func() bool { return hs.Stats().Queued == 1 })
	shed := hangingClient(t, s.addr, hello)
	expectClosed(t, shed, 10*time.Second)
	if st := hs.Stats(); st.Shed != 1 || st.Running != 1 || st.Queued != 1 {
		t.Fatalf("stats %+v, want 1 running, 1 queued, 1 shed", st)
	}

	// The queued client leaves: its place is freed without a goroutine.
	queued.Close()
	testutil.Eventually(t, 10*time.Second, "queue emptied", func() bool { return hs.Stats().Queued == 0 })
	// The running one leaves: the worker ends and the cap is free again.
	running.Close()
	testutil.Eventually(t, 10*time.Second, "worker gone", func() bool { return hs.Stats().Running == 0 })
	c := dialTLS(t, s.addr, b.pki.clientConfig("both.test"))
	echo(t, c, "after shedding")
}

func TestHandshakeDeadline(t *testing.T) {
	b := newBothPKI(t)
	hs := NewHandshaker(HandshakerOptions{MaxConcurrent: 1, MaxQueue: 4, PerClient: -1, Timeout: 300 * time.Millisecond})
	s := startServer(t, b.snap, hs, 1)
	hello := clientHello(t)

	// Half a ClientHello: never reaches a worker, closed at the deadline.
	half, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	if _, err := half.Write(hello[:len(hello)/2]); err != nil {
		t.Fatal(err)
	}
	// A whole one that holds the only worker, and one queued behind it:
	// the deadline covers the time spent queued.
	running := hangingClient(t, s.addr, hello)
	queued := hangingClient(t, s.addr, hello)
	start := time.Now()
	// Nothing but the deadline closes these clients: the bounds only stop
	// a broken test, and are wide for a loaded machine.
	expectClosed(t, half, 10*time.Second)
	expectClosed(t, running, 10*time.Second)
	expectClosed(t, queued, 10*time.Second)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v, deadline 300ms", d)
	}
	testutil.Eventually(t, 10*time.Second, "timeouts counted", func() bool { return hs.Stats().TimedOut >= 3 })
	testutil.Eventually(t, 10*time.Second, "worker gone", func() bool { return hs.Stats().Running == 0 })
	// The queued one may reach the worker in the instant between the two
	// deadlines, never more than that.
	if st := hs.Stats(); st.Started > 2 || st.Succeeded != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestHandshakesPerClient(t *testing.T) {
	b := newBothPKI(t)
	hs := NewHandshaker(HandshakerOptions{MaxConcurrent: 10, PerClient: 2, Timeout: 10 * time.Second})
	s := startServer(t, b.snap, hs, 1)
	hello := clientHello(t)
	a := hangingClient(t, s.addr, hello)
	hangingClient(t, s.addr, hello)
	testutil.Eventually(t, 10*time.Second, "two running", func() bool { return hs.Stats().Running == 2 })
	third := hangingClient(t, s.addr, hello)
	expectClosed(t, third, 10*time.Second)
	if st := hs.Stats(); st.ClientRejected != 1 {
		t.Fatalf("stats %+v, want 1 rejected", st)
	}
	a.Close()
	testutil.Eventually(t, 10*time.Second, "slot released", func() bool { return hs.Stats().Running == 1 })
	c := dialTLS(t, s.addr, b.pki.clientConfig("both.test"))
	echo(t, c, "within the limit again")
}

func TestCloseMidHandshakeLeavesNoGoroutine(t *testing.T) {
	b := newBothPKI(t)
	hs := NewHandshaker(HandshakerOptions{MaxConcurrent: 8, MaxQueue: 100, PerClient: -1, Timeout: time.Minute})
	s := startServer(t, b.snap, hs, 2)
	hello := clientHello(t)
	c := dialTLS(t, s.addr, b.pki.clientConfig("both.test"))
	echo(t, c, "warm")
	c.Close()
	testutil.Eventually(t, 10*time.Second, "idle", func() bool { return hs.Stats().Running == 0 })
	// The server's loops, the warm connection's leftovers and every other
	// goroutine alive now are not this test's to judge.
	base := goleak.IgnoreCurrent()

	var conns []net.Conn
	for range 30 {
		conns = append(conns, hangingClient(t, s.addr, hello))
	}
	testutil.Eventually(t, 10*time.Second, "handshakes in flight", func() bool {
		st := hs.Stats()
		return st.Running == 8 && st.Queued == 22
	})
	for _, c := range conns {
		c.Close()
	}
	testutil.Eventually(t, 10*time.Second, "workers gone", func() bool {
		st := hs.Stats()
		return st.Running == 0 && st.Queued == 0
	})
	// Find retries for about half a second; a loaded machine may need more
	// before the last worker returns. VerifyNone then names what is left.
	if !testutil.Poll(10*time.Second, func() bool { return goleak.Find(base) == nil }) {
		goleak.VerifyNone(t, base)
	}
}

// TestQuietClientAfterHandBack: a client that sends nothing after its
// Finished is handed back without waking the loop (handBack), and neither
// the handshake deadline nor a missed wake-up loses it: a query it sends
// after a later connection's deadline has passed is answered.
func TestQuietClientAfterHandBack(t *testing.T) {
	b := newBothPKI(t)
	hs := NewHandshaker(HandshakerOptions{Timeout: 300 * time.Millisecond, PerClient: -1})
	s := startServer(t, b.snap, hs, 1)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := b.pki.clientConfig("both.test")
		cfg.MaxVersion = v
		done := hs.Stats().Succeeded
		quiet := dialTLS(t, s.addr, cfg)
		if err := quiet.Handshake(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "handshake done", func() bool { return hs.Stats().Succeeded > done })
		// A ClientHello alone, opened after the quiet client's handshake:
		// once it has timed out, so would have the quiet one.
		before := hs.Stats().TimedOut
		expectClosed(t, hangingClient(t, s.addr, clientHello(t)), 10*time.Second)
		testutil.Eventually(t, 10*time.Second, "deadline passed", func() bool { return hs.Stats().TimedOut > before })
		echo(t, quiet, "after a quiet while, "+tls.VersionName(v))
	}
}

// TestCloseNotifyBeforeTakeOver: a server closing (a drain) a connection
// that was handed back without a wake and has sent nothing since still says
// close_notify, since the handshake is complete.
func TestCloseNotifyBeforeTakeOver(t *testing.T) {
	b := newBothPKI(t)
	hs := NewHandshaker(HandshakerOptions{PerClient: -1})
	s := startServer(t, b.snap, hs, 1)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := b.pki.clientConfig("both.test")
		cfg.MaxVersion = v
		done := hs.Stats().Succeeded
		quiet := dialTLS(t, s.addr, cfg)
		if err := quiet.Handshake(); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "handshake done", func() bool { return hs.Stats().Succeeded > done })
		found, ok := s.byPeer.Load(quiet.LocalAddr().String())
		if !ok {
			t.Fatal("server has no connection for the client")
		}
		gc := found.(gnet.Conn)
		established := make(chan bool, 1)
		err := gc.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			tc := gc.Context().(*echoConn).tc
			_ = tc.SendCloseNotify(gc)
			established <- tc.Established()
			return nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		if !<-established {
			t.Fatalf("%s: not established when it sent close_notify", tls.VersionName(v))
		}
		// The client reads the server's close_notify as a clean end.
		if n, err := quiet.Read(make([]byte, 16)); n != 0 || err != io.EOF {
			t.Fatalf("%s: client read %d %v, want io.EOF", tls.VersionName(v), n, err)
		}
	}
}
