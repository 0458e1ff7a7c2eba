package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

const upgradeConfig = `
general:
  event_loops: 2
  log_level: info
  drain_timeout: 5s
acl: ["127.0.0.0/8"]
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls: {certificates: [{certificate: "{{.Cert.Chain}}", key: "{{.Cert.Key}}"}]}
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: {mode: up}
`

// upgradeLoad is a constant load: UDP clients that send one query at a time and count
// the ones never answered, and DoT clients on warm connections that reconnect when the
// server ends a connection gracefully and count anything else.
type upgradeLoad struct {
	stop                 chan struct{}
	wg                   sync.WaitGroup
	udpAnswered, udpLost atomic.Int64
	dotAnswered          atomic.Int64
	tcpAnswered, tcpBad  atomic.Int64
	graceful             atomic.Int64 // DoT connections the server ended with close_notify
	mu                   sync.Mutex
	errs                 []string
}

func (u *upgradeLoad) fail(format string, a ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.errs) < 20 {
		u.errs = append(u.errs, fmt.Sprintf(format, a...))
	}
}

func (u *upgradeLoad) stopped() bool {
	select {
	case <-u.stop:
		return true
	default:
		return false
	}
}

func (u *upgradeLoad) udpClient(t *testing.T, addr string, n int) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		c, err := net.Dial("udp", addr)
		if err != nil {
			u.fail("udp %d: %v", n, err)
			return
		}
		defer c.Close()
		buf := make([]byte, 1500)
		for id := uint16(1); !u.stopped(); id++ {
			m := NewQuery(testName, dns.TypeA)
			m.Id = id
			wire, _ := m.Pack()
			if _, err := c.Write(wire); err != nil {
				u.fail("udp %d write: %v", n, err)
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			for {
				k, err := c.Read(buf)
				if err != nil {
					u.udpLost.Add(1)
					u.fail("udp %d: query %d not answered: %v", n, id, err)
					break
				}
				r := new(dns.Msg)
				if r.Unpack(buf[:k]) == nil && r.Id == id {
					u.udpAnswered.Add(1)
					break
				}
			}
		}
	}()
}

func (u *upgradeLoad) dotClient(t *testing.T, addr string, roots *x509.CertPool, n int) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		cfg := &tls.Config{ServerName: "dns.test", RootCAs: roots, NextProtos: []string{"dot"}}
		var c *tls.Conn
		defer func() {
			if c != nil {
				c.Close()
			}
		}()
		for id := uint16(1); !u.stopped(); {
			if c == nil {
				var err error
				if c, err = tls.DialWithDialer(&net.Dialer{Timeout: queryTimeout}, "tcp", addr, cfg); err != nil {
					u.fail("dot %d dial: %v", n, err)
					return
				}
			}
			m := NewQuery(testName, dns.TypeA)
			m.Id = id
			wire, _ := m.Pack()
			_ = c.SetDeadline(time.Now().Add(queryTimeout))
			_, err := c.Write(append([]byte{byte(len(wire) >> 8), byte(len(wire))}, wire...))
			var r *dns.Msg
			if err == nil {
				r, err = ReadDoT(c)
			}
			switch {
			case err == nil && r.Id == id:
				u.dotAnswered.Add(1)
				id++
			case errors.Is(err, io.EOF) && !isReset(err):
				// The server ended the connection gracefully before this query reached
				// it: the client resends it on a new connection.
				u.graceful.Add(1)
				c.Close()
				c = nil
			default:
				u.fail("dot %d: query %d: %v", n, id, err)
				return
			}
		}
	}()
}

// tcpClient sends one query per new Do53 TCP connection, so that a successor's loops
// accept some of them. A connection the server ends gracefully before the query reached
// it is retried, as RFC 7766 has a client do; anything else (a reset, a timeout) counts.
func (u *upgradeLoad) tcpClient(addr string, n int) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for id := uint16(1); !u.stopped(); {
			m := NewQuery(testName, dns.TypeA)
			m.Id = id
			c := &dns.Client{Net: "tcp", Timeout: queryTimeout}
			r, _, err := c.Exchange(m, addr)
			switch {
			case err == nil && r.Id == id:
				u.tcpAnswered.Add(1)
				id++
			case errors.Is(err, io.EOF) && !isReset(err):
				u.graceful.Add(1)
			default:
				u.tcpBad.Add(1)
				u.fail("tcp %d: query %d: %v", n, id, err)
				id++
			}
		}
	}()
}

// adoptOrphans makes this process the parent of orphans (the new process, once the old
// one exits), so that the test can wait for it.
func adoptOrphans(t *testing.T) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
}

// startUpgradeFront starts dnsfront on upgradeConfig in front of a backend that answers
// testName, and returns it with its PKI, the data of its configuration and its pid.
func startUpgradeFront(t *testing.T) (*Dnsfront, *devpki.TestPKI, listenersData, int) {
	t.Helper()
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}})
	data := listenersData{Cert: CertOf(pki.Leaf), Backend: be.Addr}
	d := Start(t, upgradeConfig, data)
	pid, err := readPIDFile(d.PIDFile)
	if err != nil {
		t.Fatal(err)
	}
	return d, pki, data, pid
}

// A binary upgrade under a constant Do53 UDP and DoT load: `dnsfront upgrade` starts the
// binary on disk with the listening sockets, the old process stops reading them, ends its
// DoT connections with close_notify after their answers and exits. No UDP query goes
// unanswered, no DoT connection is reset, and the new process serves.
func TestUpgradeHandsOverWithoutLoss(t *testing.T) {
	adoptOrphans(t)
	d, pki, _, old := startUpgradeFront(t)
	var successor int
	t.Cleanup(func() { stopSuccessor(t, successor) }) // before d's own cleanup (LIFO)

	u := &upgradeLoad{stop: make(chan struct{})}
	roots := CertPool(t, pki.Root.Cert)
	for i := range 4 {
		u.udpClient(t, d.Addr("dns"), i)
	}
	for i := range 2 {
		u.dotClient(t, d.Addr("dot"), roots, i)
	}
	stopLoad := sync.OnceFunc(func() { close(u.stop); u.wg.Wait() })
	defer stopLoad()
	waitCounts := func(what string, udp, dot int64) {
		t.Helper()
		if !testutil.Poll(20*time.Second, func() bool {
			return u.udpAnswered.Load() >= udp && u.dotAnswered.Load() >= dot
		}) {
			t.Fatalf("%s: %d UDP and %d DoT answers, want %d and %d; errors: %v", what,
				u.udpAnswered.Load(), u.dotAnswered.Load(), udp, dot, u.errs)
		}
	}
	waitCounts("before the upgrade", 200, 100)

	out, code := RunCLI(t, "upgrade", "--pid-file", d.PIDFile, "--timeout", "60s")
	if code != 0 {
		t.Fatalf("dnsfront upgrade: exit %d: %s", code, out)
	}
	var err error
	if successor, err = readPIDFile(d.PIDFile); err != nil || successor == old {
		t.Fatalf("pid file after the upgrade: %d (%v), old pid %d", successor, err, old)
	}
	// The old process drains and exits.
	if !testutil.Poll(20*time.Second, func() bool { return errors.Is(syscall.Kill(old, 0), syscall.ESRCH) }) {
		t.Fatalf("the old process %d is still running 20s after the upgrade", old)
	}
	if !strings.Contains(d.Log(), "the successor serves; draining and stopping") {
		t.Errorf("the old process's log does not show the handover:\n%s", d.Log())
	}
	a, b := u.udpAnswered.Load(), u.dotAnswered.Load()
	waitCounts("after the upgrade", a+200, b+100)
	stopLoad()

	if n := u.udpLost.Load(); n != 0 || len(u.errs) > 0 {
		t.Errorf("%d UDP queries lost; errors: %v", n, u.errs)
	}
	if n := u.graceful.Load(); n < 2 {
		t.Errorf("%d DoT connections ended gracefully, want one per warm connection to the old process (2)", n)
	}
	t.Logf("UDP answered %d, lost %d; DoT answered %d, graceful closes %d",
		u.udpAnswered.Load(), u.udpLost.Load(), u.dotAnswered.Load(), u.graceful.Load())
}

func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// stopSuccessor stops the process an upgrade started (SIGTERM) and waits for it.
func stopSuccessor(t *testing.T, pid int) {
	if pid == 0 {
		return
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	_ = p.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { _, err := p.Wait(); done <- err }()
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = p.Kill()
		t.Errorf("the new process %d did not stop within %v", pid, stopTimeout)
	}
}

// An upgrade whose successor cannot start (here its configuration is broken) changes
// nothing: the old process logs why and goes on serving its connections and listeners.
func TestUpgradeFailureKeepsServing(t *testing.T) {
	t.Parallel()
	d, pki, _, old := startUpgradeFront(t)
	c := DialDoT(t, d.Addr("dot"), "dns.test", CertPool(t, pki.Root.Cert), nil)
	ExchangeDoT(t, c, NewQuery(testName, dns.TypeA))

	d.WriteRaw("binds: [{listen_adress: \"127.0.0.1:1\"}]\n")
	mark := len(d.Log())
	if out, code := RunCLI(t, "upgrade", "--pid-file", d.PIDFile, "--timeout", "3s"); code == 0 {
		t.Fatalf("dnsfront upgrade succeeded with a broken configuration: %s", out)
	}
	if !d.WaitLog("upgrade failed; this process goes on serving", mark, 20*time.Second) {
		t.Fatalf("no failure logged:\n%s", d.Log()[mark:])
	}
	if pid, err := readPIDFile(d.PIDFile); err != nil || pid != old {
		t.Errorf("pid file after a failed upgrade: %d (%v), want %d", pid, err, old)
	}
	if r := ExchangeDoT(t, c, NewQuery(testName, dns.TypeA)); !equalStrings(AnswerStrings(r), testAnswer) {
		t.Errorf("the warm DoT connection after a failed upgrade: %v", AnswerStrings(r))
	}
	for _, network := range []string{"udp", "tcp"} {
		if r := MustExchange(t, network, d.Addr("dns"), NewQuery(testName, dns.TypeA)); !equalStrings(AnswerStrings(r), testAnswer) {
			t.Errorf("Do53 over %s after a failed upgrade: %v", network, AnswerStrings(r))
		}
	}
}

// An upgrade whose successor fails late, under a constant Do53 UDP and DoT load, loses
// nothing: a successor whose second admin address is in use fails before its loops read
// the shared sockets; one whose DoQ address is in use fails after they did (QUIC starts
// after the engine), and hands back what it took as a predecessor hands over: the queries
// it read are answered, its DoT connections end with close_notify. The old process goes
// on serving throughout.
func TestUpgradeLateFailureLosesNothing(t *testing.T) {
	d, pki, data, old := startUpgradeFront(t)

	u := &upgradeLoad{stop: make(chan struct{})}
	roots := CertPool(t, pki.Root.Cert)
	for i := range 6 {
		u.udpClient(t, d.Addr("dns"), i)
		u.tcpClient(d.Addr("dns"), i)
	}
	for i := range 2 {
		u.dotClient(t, d.Addr("dot"), roots, i)
	}
	stopLoad := sync.OnceFunc(func() { close(u.stop); u.wg.Wait() })
	defer stopLoad()
	waitCounts := func(what string, udp, dot int64) {
		t.Helper()
		if !testutil.Poll(20*time.Second, func() bool {
			return u.udpAnswered.Load() >= udp && u.dotAnswered.Load() >= dot && u.tcpAnswered.Load() >= dot
		}) {
			t.Fatalf("%s: %d UDP, %d DoT and %d TCP answers, want %d, %d and %d; errors: %v", what,
				u.udpAnswered.Load(), u.dotAnswered.Load(), u.tcpAnswered.Load(), udp, dot, dot, u.errs)
		}
	}
	waitCounts("before the upgrades", 200, 100)

	busyAdmin := strings.Replace(upgradeConfig, `listen_addresses: ["127.0.0.1:{{port "admin"}}"]`,
		`listen_addresses: ["127.0.0.1:{{port "admin"}}", "127.0.0.1:{{port "busy"}}"]`, 1)
	busyDoQ := strings.Replace(upgradeConfig, "backends:\n", `  - listen_address: "127.0.0.1:{{port "busyq"}}"
    protocol: DoQ
    tls: {certificates: [{certificate: "{{.Cert.Chain}}", key: "{{.Cert.Key}}"}]}
backends:
`, 1)
	d.Rewrite(busyAdmin, data)
	d.Rewrite(busyDoQ, data) // allocates busyq beside busy
	tcp, err := net.Listen("tcp", d.Addr("busy"))
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", d.Addr("busyq"))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()

	for _, tc := range []struct {
		name, config string
		late         bool // fails after its loops read the sockets
	}{
		{"admin address in use", busyAdmin, false},
		{"DoQ address in use", busyDoQ, true},
	} {
		d.Rewrite(tc.config, data)
		for round := range 8 {
			a, b := u.udpAnswered.Load(), min(u.dotAnswered.Load(), u.tcpAnswered.Load())
			mark := len(d.Log())
			d.Signal(syscall.SIGUSR2)
			if !d.WaitLog("upgrade failed; this process goes on serving", mark, 30*time.Second) {
				t.Fatalf("%s, round %d: no failure logged:\n%s", tc.name, round, d.Log()[mark:])
			}
			handedBack := strings.Contains(d.Log()[mark:], "handing them back")
			if handedBack != tc.late {
				t.Errorf("%s, round %d: the successor handed the listeners back: %v, want %v:\n%s",
					tc.name, round, handedBack, tc.late, d.Log()[mark:])
			}
			waitCounts(fmt.Sprintf("%s, round %d", tc.name, round), a+50, b+25)
		}
	}
	if pid, err := readPIDFile(d.PIDFile); err != nil || pid != old {
		t.Errorf("pid file after failed upgrades: %d (%v), want %d", pid, err, old)
	}
	stopLoad()
	if n, m := u.udpLost.Load(), u.tcpBad.Load(); n != 0 || m != 0 || len(u.errs) > 0 {
		t.Errorf("%d UDP queries lost, %d TCP queries failed; errors: %v", n, m, u.errs)
	}
	t.Logf("UDP answered %d, lost %d; TCP answered %d, failed %d; DoT answered %d, graceful closes %d",
		u.udpAnswered.Load(), u.udpLost.Load(), u.tcpAnswered.Load(), u.tcpBad.Load(), u.dotAnswered.Load(), u.graceful.Load())
}

// A SIGTERM that arrives while an upgrade runs is not lost when the upgrade succeeds: it
// was meant for the service, which the successor now is, so the old process forwards it
// there, and both processes end. The SIGTERM is sent once the old process has logged that
// the upgrade began (two signals sent together may reach a multi-threaded process in
// either order), and a TCP connection the test holds open keeps the old process in its
// graceful close for seconds after the successor serves, so the SIGTERM always finds the
// upgrade under way, held or forwarded.
func TestUpgradeStopSignalDuringHandover(t *testing.T) {
	adoptOrphans(t)
	d, _, _, old := startUpgradeFront(t)
	held, err := net.Dial("tcp", d.Addr("dns"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	dc := &dns.Conn{Conn: held}
	_ = held.SetDeadline(time.Now().Add(10 * time.Second))
	if err := dc.WriteMsg(NewQuery(testName, dns.TypeA)); err != nil {
		t.Fatal(err)
	}
	if r, err := dc.ReadMsg(); err != nil || !equalStrings(AnswerStrings(r), testAnswer) {
		t.Fatalf("the held connection's query: %v, %v", r, err)
	}
	mark := len(d.Log())
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	if !d.WaitLog("upgrade: handing the listeners to a new process", mark, 20*time.Second) {
		t.Fatalf("the old process did not begin the upgrade:\n%s", d.Log()[mark:])
	}
	if err := syscall.Kill(old, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.Wait(30 * time.Second); code != 0 {
		t.Errorf("the old process exited %d, want 0:\n%s", code, d.Log()[mark:])
	}
	log := d.Log()[mark:]
	if !strings.Contains(log, "forwarded to the successor") {
		t.Fatalf("the old process did not forward the stop signal:\n%s", log)
	}
	m := regexp.MustCompile(`the successor serves; draining and stopping" successor=(\d+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no successor pid in the log:\n%s", log)
	}
	successor, _ := strconv.Atoi(m[1])
	// The successor ends on the forwarded SIGTERM. If it outlived the old process it is this
	// process's child now (the subreaper above), and its status is read here; if it ended
	// first, the old process reaped it, and it must simply be gone, having logged its stop.
	gone := testutil.Poll(stopTimeout, func() bool {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(successor, &ws, unix.WNOHANG, nil)
		switch {
		case wpid == successor:
			if ws.ExitStatus() != 0 {
				t.Errorf("the successor exited with %v, want 0", ws)
			}
			return true
		case errors.Is(err, unix.ECHILD):
			return errors.Is(unix.Kill(successor, 0), unix.ESRCH)
		}
		return false
	})
	if !gone {
		_ = syscall.Kill(successor, syscall.SIGKILL)
		t.Fatalf("the successor %d still runs %v after the forwarded SIGTERM:\n%s", successor, stopTimeout, d.Log()[mark:])
	}
	if !regexp.MustCompile(`(?m)msg=stopped$`).MatchString(d.Log()[mark:]) {
		t.Errorf("the successor did not log its stop:\n%s", d.Log()[mark:])
	}
	if _, err := os.Stat(d.PIDFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pid file after both stopped: %v, want removed", err)
	}
}
