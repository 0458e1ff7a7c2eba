package fleet

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// tlsServer is a TLS listener on loopback whose ticket keys come from a
// fleet member, installed the way tlsframe's ring installs them
// (SetSessionTicketKeys, the encrypting key first). It greets each client
// after the handshake, so that a TLS 1.3 client has read the tickets.
type tlsServer struct {
	cfg  *tls.Config
	addr string
}

func startTLSServer(t *testing.T, cert tls.Certificate) *tlsServer {
	t.Helper()
	s := &tlsServer{cfg: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s.addr = ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := c.Write([]byte("hello from " + s.addr + "\n")); err != nil {
					return
				}
				_, _ = bufio.NewReader(c).ReadString('\n') // until the client closes
			}(c)
		}
	}()
	return s
}

// sClient connects with openssl s_client, waits for the greeting, and
// returns s_client's output ("New, " or "Reused, " tells the outcome).
func sClient(t *testing.T, openssl, addr string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, append([]string{"s_client", "-connect", addr}, args...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ok := testutil.Poll(20*time.Second, func() bool { return strings.Contains(out.String(), "hello from") })
	stdin.Close()
	_ = cmd.Wait()
	if !ok {
		t.Fatalf("s_client %s %v: no greeting:\n%s", addr, args, out)
	}
	return out.String()
}

// TestSessionResumesAcrossMembers: a session that openssl opened on one
// member's server resumes on another's, over TLS 1.2 and 1.3, also after a
// rotation (the previous key still decrypts everywhere) and while etcd is
// down (both derive the same keys).
func TestSessionResumesAcrossMembers(t *testing.T) {
	openssl := testutil.Tool(t, "openssl")
	etcd := startEtcd(t, 1)
	ca := newTestCA(t)
	certFile, keyFile := ca.issue("dns.test", true, 2)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srvA, srvB := startTLSServer(t, cert), startTLSServer(t, cert)
	clk := epochClock(time.Hour)
	a := startMember(t, "a", etcd.endpoints(), memberOpts{clock: clk, onKeys: srvA.cfg.SetSessionTicketKeys})
	b := startMember(t, "b", etcd.endpoints(), memberOpts{clock: clk, onKeys: srvB.cfg.SetSessionTicketKeys})
	testutil.Eventually(t, wait, "both servers with the shared ring", func() bool {
		return sameEncryptingKey(a, b) && len(a.ring()) == 2 && len(b.ring()) == 2
	})

	sessions := map[string]string{}
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		sess := filepath.Join(t.TempDir(), "sess.pem")
		sessions[v] = sess
		if out := sClient(t, openssl, srvA.addr, v, "-sess_out", sess); !strings.Contains(out, "New, ") {
			t.Fatalf("%s: first connection to a not new:\n%s", v, out)
		}
		if out := sClient(t, openssl, srvB.addr, v, "-sess_in", sess); !strings.Contains(out, "Reused, ") {
			t.Fatalf("%s: session from a not resumed on b:\n%s", v, out)
		}
	}

	// Control: a server outside the fleet does not resume them.
	srvC := startTLSServer(t, cert)
	if out := sClient(t, openssl, srvC.addr, "-tls1_3", "-sess_in", sessions["-tls1_3"]); !strings.Contains(out, "New, ") {
		t.Fatalf("a server outside the fleet resumed a fleet session:\n%s", out)
	}

	before := a.ring()
	clk.Advance(time.Hour)
	testutil.Eventually(t, wait, "both servers rotated", func() bool {
		return sameEncryptingKey(a, b) && a.ring()[0] == before[1] && b.ring()[0] == before[1]
	})
	for _, v := range []string{"-tls1_2", "-tls1_3"} {
		if out := sClient(t, openssl, srvB.addr, v, "-sess_in", sessions[v]); !strings.Contains(out, "Reused, ") {
			t.Errorf("%s: a session from before the rotation not resumed on b:\n%s", v, out)
		}
		sess := filepath.Join(t.TempDir(), "sess.pem")
		sClient(t, openssl, srvB.addr, v, "-sess_out", sess)
		if out := sClient(t, openssl, srvA.addr, v, "-sess_in", sess); !strings.Contains(out, "Reused, ") {
			t.Errorf("%s: a session from b after the rotation not resumed on a:\n%s", v, out)
		}
	}

	// etcd gone: two rotations later both derive the same key, and a
	// session from a still resumes on b.
	etcd.stop(etcd.nodes[0])
	testutil.Eventually(t, wait, "both members disconnected", func() bool { return !a.Connected() && !b.Connected() })
	clk.Advance(time.Hour)
	clk.Advance(time.Hour)
	testutil.Eventually(t, wait, "both servers on the same derived key", func() bool {
		return sameEncryptingKey(a, b) && a.Status().KeySource == "derived" && b.Status().KeySource == "derived"
	})
	sess := filepath.Join(t.TempDir(), "sess.pem")
	sClient(t, openssl, srvA.addr, "-tls1_3", "-sess_out", sess)
	if out := sClient(t, openssl, srvB.addr, "-tls1_3", "-sess_in", sess); !strings.Contains(out, "Reused, ") {
		t.Errorf("etcd down: a session from a not resumed on b:\n%s", out)
	}
}
