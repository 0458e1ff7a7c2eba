package tlsframe

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// echoServer is a minimal DoT-shaped gnet handler for the tests: it echoes
// every 2-byte-length frame. A frame "later:..." is answered from a task
// run on the loop after OnTraffic returned (as a backend answer would be);
// a frame "bye" makes the server send close_notify and close.
type echoServer struct {
	gnet.BuiltinEventEngine
	store  *Store
	hs     *Handshaker
	addr   string
	eng    gnet.Engine
	booted chan struct{}

	mu      sync.Mutex
	loopIdx map[gnet.EventLoop]int

	opened, closed atomic.Int64
	lastErr        atomic.Pointer[error]
	byPeer         sync.Map // client address (string) → gnet.Conn, while open
}

type echoConn struct {
	tc      *Conn
	partial []byte
}

func (s *echoServer) OnBoot(eng gnet.Engine) gnet.Action {
	s.eng = eng
	close(s.booted)
	return gnet.None
}

func (s *echoServer) loopIndex(el gnet.EventLoop) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.loopIdx[el]
	if !ok {
		i = len(s.loopIdx)
		s.loopIdx[el] = i
	}
	return i
}

func (s *echoServer) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	s.opened.Add(1)
	peer, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	c.SetContext(&echoConn{tc: NewConn(c, s.store, s.loopIndex(c.EventLoop()), s.hs, peer)})
	s.byPeer.Store(peer.String(), c)
	return nil, gnet.None
}

func (s *echoServer) OnClose(c gnet.Conn, _ error) gnet.Action {
	s.closed.Add(1)
	if ec, ok := c.Context().(*echoConn); ok {
		s.byPeer.Delete(ec.tc.Peer().String())
		ec.tc.OnClose()
	}
	return gnet.None
}

func (s *echoServer) OnTraffic(c gnet.Conn) gnet.Action {
	ec := c.Context().(*echoConn)
	bye := false
	err := ec.tc.OnTraffic(c, func(p []byte) {
		ec.partial = append(ec.partial, p...)
		for len(ec.partial) >= 2 {
			n := int(binary.BigEndian.Uint16(ec.partial))
			if len(ec.partial) < 2+n {
				break
			}
			frame := ec.partial[:2+n]
			switch {
			case bytes.Equal(frame[2:], []byte("bye")):
				bye = true
			case bytes.Equal(frame[2:], []byte("buffers?")):
				// The capacities of crypto/tls's read buffers, read on the loop.
				raw, hand, _ := tlsBufferCaps(ec.tc.tls)
				answer := fmt.Sprintf("rawInput %d hand %d", raw, hand)
				ec.tc.Write(binary.BigEndian.AppendUint16(nil, uint16(len(answer))))
				ec.tc.Write([]byte(answer))
			case bytes.HasPrefix(frame[2:], []byte("later:")):
				answer := bytes.Clone(frame)
				tc := ec.tc
				_ = c.EventLoop().Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
					tc.Write(answer)
					return tc.Flush(c)
				}))
			default:
				ec.tc.Write(frame)
			}
			ec.partial = append(ec.partial[:0], ec.partial[2+n:]...)
		}
	})
	if err != nil {
		s.lastErr.Store(&err)
		return gnet.Close
	}
	if bye {
		_ = ec.tc.CloseNotify(c)
		return gnet.None
	}
	if err := ec.tc.Flush(c); err != nil {
		return gnet.Close
	}
	return gnet.None
}

// startServer runs an echoServer on loopback with loops event loops until
// the test ends.
func startServer(t testing.TB, snap *Snapshot, hs *Handshaker, loops int) *echoServer {
	t.Helper()
	st := NewStore(loops)
	st.Publish(snap)
	if hs == nil {
		hs = NewHandshaker(HandshakerOptions{})
	}
	s := &echoServer{store: st, hs: hs, booted: make(chan struct{}), loopIdx: make(map[gnet.EventLoop]int)}
	s.addr = testutil.FreeAddr(t, "127.0.0.1").String()
	errc := make(chan error, 1)
	go func() {
		errc <- gnet.Run(s, "tcp://"+s.addr, gnet.WithNumEventLoop(loops), gnet.WithMulticore(loops > 1),
			gnet.WithLogLevel(logging.ErrorLevel), gnet.WithTCPNoDelay(gnet.TCPNoDelay))
	}()
	select {
	case <-s.booted:
	case err := <-errc:
		t.Fatalf("gnet: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("gnet did not boot")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.eng.Stop(ctx)
		<-errc
		hs.Wait()
		st.Close()
	})
	return s
}

func frame(payload string) []byte {
	b := make([]byte, 2+len(payload))
	binary.BigEndian.PutUint16(b, uint16(len(payload)))
	copy(b[2:], payload)
	return b
}

func readFrame(r io.Reader) (string, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return "", err
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

func (p *testPKI) clientConfig(name string) *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: name, NextProtos: []string{"dot"}}
}

func dialTLS(t testing.TB, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func echo(t testing.TB, c net.Conn, payload string) {
	t.Helper()
	if _, err := c.Write(frame(payload)); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := readFrame(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if got != payload {
		t.Fatalf("echo %q, want %q", got, payload)
	}
}

// expectClosed reads from c until the server closes it (EOF or reset).
func expectClosed(t testing.TB, c net.Conn, within time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %v", within)
		}
		return
	}
}
