package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/panjf2000/gnet/v2"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
	"github.com/dnsfront/dnsfront/tlsframe"
)

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func dotFrame(t *testing.T, id uint16) []byte {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	q.Id = id
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

// Records crypto/tls writes while reading stay on their connection. Client A (openssl)
// sends a KeyUpdate that asks for one back and a query in the same read pass; the
// server's KeyUpdate is written into the loop's record buffer, shared by the bind's
// connections, while tls.Conn.Read returns A's query. Forwarding that query hits a TCP
// backend connection the backend has reset: the write fails, gnet closes the socket at
// once, and its OnClose answers SERVFAIL to the queries waiting on it, client B's among
// them. B must receive its SERVFAIL and nothing of A's, and A its own KeyUpdate.
func TestKeyUpdateStaysOnItsConnection(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	// Registered first, so it runs last: after the engine, the clients and the backend
	// have stopped, no goroutine of theirs may be left.
	base := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		// gnet dials registered sockets in its process-wide ants pool, whose idle
		// workers live on until the pool's expiry: gnet's, not the engine's.
		goleak.VerifyNone(t, base, goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*goWorker).run.func1"))
	})
	pki := devpki.NewTestPKI(t, t.TempDir())
	snap, err := tlsframe.BuildSnapshot([]tlsframe.CertSpec{{ChainFile: pki.Leaf.ChainFile, KeyFile: pki.Leaf.KeyFile}},
		tlsframe.Options{NextProtos: []string{"dot"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	store := tlsframe.NewStore(1)
	store.Publish(snap)
	t.Cleanup(store.Close)
	hs := tlsframe.NewHandshaker(tlsframe.HandshakerOptions{Timeout: 10 * time.Second})

	// The backend accepts one TCP connection and never answers.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		defer close(accepted)
		if c, err := ln.Accept(); err == nil {
			accepted <- c.(*net.TCPConn)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	})

	acl, err := NewACL([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	be := &Backend{Key: "b", Name: "b", Addr: ln.Addr().(*net.TCPAddr).AddrPort(), Timeout: 10 * time.Second, TCPOnly: true}
	st := newTestState(acl, []*Backend{be}, map[string]*Pool{"": {Backends: []*Backend{be}}})
	addr := testutil.FreeAddr(t, "127.0.0.1")
	t.Cleanup(hs.Wait) // after the engine stops: cleanups run last first
	e := startTestEngine(t, st, 1, BindOptions{Addr: addr, Protocol: "DoT", TLSStore: store, Handshaker: hs})

	// Client B's query waits on the backend connection.
	roots := x509.NewCertPool()
	roots.AddCert(pki.Root.Cert)
	b, err := tls.Dial("tcp", addr.String(), &tls.Config{RootCAs: roots, ServerName: "dns.test", NextProtos: []string{"dot"}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Write(dotFrame(t, 0xb)); err != nil {
		t.Fatal(err)
	}
	var bc *net.TCPConn
	select {
	case bc = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no backend connection")
	}
	_ = bc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(bc, make([]byte, len(dotFrame(t, 0xb))+11)); err != nil { // + the OPT record added
		t.Fatalf("B's query at the backend: %v", err)
	}

	// Client A: openssl s_client, whose K command sends a KeyUpdate with update_requested.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", addr.String(), "-servername", "dns.test",
		"-tls1_3", "-msg", "-alpn", "dot")
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	waitOutput := func(what string) {
		t.Helper()
		testutil.Eventually(t, 15*time.Second, "s_client to print "+strconv.Quote(what), func() bool {
			return strings.Contains(out.String(), what)
		})
	}
	waitOutput("Verify return code")

	// Hold the loop while A's KeyUpdate and query, and the backend's reset, arrive: the
	// loop then reads A before it learns of the reset, and writes to the dead socket.
	var l *loop
	testutil.Eventually(t, 10*time.Second, "the loop", func() bool {
		ls := e.loopList()
		if len(ls) == 1 {
			l = ls[0]
		}
		return l != nil
	})
	type held struct {
		clients []int
		backend int
	}
	blocked, release := make(chan held), make(chan struct{})
	err = l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
		var h held
		for c := range l.clients {
			h.clients = append(h.clients, c.gc.Fd())
		}
		h.backend = l.tcp[0].gc.Fd()
		blocked <- h
		<-release
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	h := <-blocked
	released := false
	defer func() {
		if !released {
			close(release)
		}
	}()
	if _, err := io.WriteString(stdin, "K\n"); err != nil {
		t.Fatal(err)
	}
	waitOutput("KEYUPDATE")
	qa := dotFrame(t, 0xa)
	if _, err := stdin.Write(qa); err != nil {
		t.Fatal(err)
	}
	// A KeyUpdate record is 27 bytes; the query's record adds a 5-byte header, the
	// content type and a 16-byte tag.
	want := 27 + len(qa) + 22
	testutil.Eventually(t, 10*time.Second, "A's KeyUpdate and query at the server", func() bool {
		for _, fd := range h.clients {
			if n, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err == nil && n >= want {
				return true
			}
		}
		return false
	})
	_ = bc.SetLinger(0)
	bc.Close()
	fds := []unix.PollFd{{Fd: int32(h.backend), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 10000); err != nil || n != 1 {
		t.Fatalf("the backend's reset did not arrive: %v", err)
	}
	close(release)
	released = true

	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(b, hdr[:]); err != nil {
		t.Fatalf("client B: %v (it received bytes that were not its own)", err)
	}
	msg := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(b, msg); err != nil {
		t.Fatalf("client B: %v", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(msg); err != nil || m.Id != 0xb || m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("client B received %v (%v), want its SERVFAIL", m, err)
	}
	waitOutput("<<< TLS 1.3, Handshake [length 0005], KeyUpdate")
	if o := out.String(); strings.Contains(o, "Alert") || strings.Contains(strings.ToLower(o), "bad record mac") {
		t.Errorf("client A saw an alert or a bad record:\n%s", o)
	}
	if n := e.Stats().SendErrors; n == 0 {
		t.Error("no send error counted: the backend write did not fail in A's pass")
	}
}
