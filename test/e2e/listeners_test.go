package e2e

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/internal/testutil"
)

// listenersConfig has a Do53 and a DoT bind that every variant keeps, and the optional
// binds a reload adds or removes.
const listenersConfig = `
general:
  event_loops: 2
  log_level: info
  drain_timeout: 3s
acl: ["127.0.0.0/8"]
webserver:
  listen_addresses: ["127.0.0.1:{{port "admin"}}"]
binds:
  - listen_address: "127.0.0.1:{{port "dns"}}"
  - listen_address: "127.0.0.1:{{port "dot"}}"
    protocol: DoT
    tls: {certificates: [{certificate: "{{.Cert.Chain}}", key: "{{.Cert.Key}}"}]}
{{- if .Old}}
  - listen_address: "127.0.0.1:{{port "dot_old"}}"
    protocol: DoT
    tls: {certificates: [{certificate: "{{.Cert.Chain}}", key: "{{.Cert.Key}}"}]}
{{- end}}
{{- if .New}}
  - listen_address: "127.0.0.1:{{port "dot_new"}}"
    protocol: DoT
    tls: {certificates: [{certificate: "{{.Cert.Chain}}", key: "{{.Cert.Key}}"}]}
  - listen_address: "127.0.0.1:{{port "dns_new"}}"
{{- end}}
{{- if .Busy}}
  - listen_address: "127.0.0.1:{{.Busy}}"
{{- end}}
backends:
  - address: "{{.Backend}}"
    name: b1
    health_checks: {mode: up}
`

type listenersData struct {
	Cert     DoTCert
	Backend  string
	Old, New bool
	Busy     int
}

// dotLoop sends queries one after the other on a warm DoT connection until stop is
// closed or the connection ends, and counts them.
type dotLoop struct {
	c        *tls.Conn
	answered atomic.Int64
	err      error // the error that ended the loop; nil when stopped
	done     chan struct{}
}

func startDoTLoop(t *testing.T, c *tls.Conn, stop <-chan struct{}) *dotLoop {
	t.Helper()
	l := &dotLoop{c: c, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for id := uint16(1); ; id++ {
			select {
			case <-stop:
				return
			default:
			}
			m := NewQuery(testName, dns.TypeA)
			m.Id = id
			wire, _ := m.Pack()
			frame := append([]byte{byte(len(wire) >> 8), byte(len(wire))}, wire...)
			_ = c.SetDeadline(time.Now().Add(queryTimeout))
			if _, err := c.Write(frame); err != nil {
				l.err = fmt.Errorf("write after %d answers: %w", l.answered.Load(), err)
				return
			}
			r, err := ReadDoT(c)
			if err != nil {
				l.err = fmt.Errorf("read after %d answers: %w", l.answered.Load(), err)
				return
			}
			if r.Id != id || len(r.Answer) != 1 {
				l.err = fmt.Errorf("answer %d to query %d: %v", r.Id, id, r)
				return
			}
			l.answered.Add(1)
		}
	}()
	return l
}

// waitAnswers waits until the loop has n more answers than it had.
func (l *dotLoop) waitAnswers(t *testing.T, n int64) {
	t.Helper()
	want := l.answered.Load() + n
	if !testutil.Poll(10*time.Second, func() bool { return l.answered.Load() >= want || isDone(l.done) }) || l.answered.Load() < want {
		t.Fatalf("DoT loop: %d answers, want %d (err %v)", l.answered.Load(), want, l.err)
	}
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// A reload that adds a DoT and a Do53 listener and removes a DoT one, while DoT queries
// run on warm connections: the kept binds' connections see no error, the new listeners
// answer, the removed one refuses new connections and its established connection ends
// gracefully (its answers, then close_notify and EOF: no reset). A reload that cannot bind
// changes nothing.
func TestReloadAddsAndRemovesListeners(t *testing.T) {
	t.Parallel()
	pki := devpki.NewTestPKI(t, t.TempDir())
	be := StartBackend(t, BackendOptions{Records: []string{testName + ". 60 IN A " + testAnswer}})
	data := listenersData{Cert: CertOf(pki.Leaf), Backend: be.Addr, Old: true}
	d := Start(t, listenersConfig, data)
	roots := CertPool(t, pki.Root.Cert)

	stop := make(chan struct{})
	var stopOnce sync.Once
	stopAll := func() { stopOnce.Do(func() { close(stop) }) }
	defer stopAll()
	kept := []*dotLoop{
		startDoTLoop(t, DialDoT(t, d.Addr("dot"), "dns.test", roots, nil), stop),
		startDoTLoop(t, DialDoT(t, d.Addr("dot"), "dns.test", roots, nil), stop),
	}
	gone := startDoTLoop(t, DialDoT(t, d.Addr("dot_old"), "dns.test", roots, nil), stop)
	for _, l := range append(kept, gone) {
		l.waitAnswers(t, 20)
	}

	data.Old, data.New = false, true
	d.Rewrite(listenersConfig, data)
	reload(t, d)

	// New listeners answer, on DoT and on Do53 (UDP and TCP).
	c := DialDoT(t, d.Addr("dot_new"), "dns.test", roots, nil)
	if r := ExchangeDoT(t, c, NewQuery(testName, dns.TypeA)); !equalStrings(AnswerStrings(r), testAnswer) {
		t.Errorf("new DoT listener: %v", AnswerStrings(r))
	}
	for _, network := range []string{"udp", "tcp"} {
		if r := MustExchange(t, network, d.Addr("dns_new"), NewQuery(testName, dns.TypeA)); !equalStrings(AnswerStrings(r), testAnswer) {
			t.Errorf("new Do53 listener over %s: %v", network, AnswerStrings(r))
		}
	}
	// The removed listener refuses connections.
	if nc, err := net.DialTimeout("tcp", d.Addr("dot_old"), queryTimeout); err == nil {
		nc.Close()
		t.Errorf("removed listener %s still accepts connections", d.Addr("dot_old"))
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("removed listener: %v, want connection refused", err)
	}
	// Its established connection ended gracefully: close_notify then EOF, after answers.
	select {
	case <-gone.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the removed listener's connection is still open 10s after the reload (drain_timeout 3s)")
	}
	if !errors.Is(gone.err, io.EOF) || isReset(gone.err) {
		t.Errorf("removed listener's connection ended with %v, want a graceful close (EOF)", gone.err)
	}
	// The kept connections go on, without an error.
	for _, l := range kept {
		l.waitAnswers(t, 20)
	}

	// A reload whose new listener cannot bind (the port is taken by a socket without
	// SO_REUSEPORT) is rejected and changes nothing.
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	data.New, data.Busy = false, busy.LocalAddr().(*net.UDPAddr).Port
	d.Rewrite(listenersConfig, data)
	mark := len(d.Log())
	d.Signal(syscall.SIGHUP)
	if !d.WaitLog("reload rejected", mark, 30*time.Second) {
		t.Fatalf("a reload that cannot bind %d was not rejected; log:\n%s", data.Busy, d.Log()[mark:])
	}
	if l := d.Log()[mark:]; !strings.Contains(l, "address already in use") {
		t.Errorf("rejection does not say why:\n%s", l)
	}
	if r := ExchangeDoT(t, c, NewQuery(testName, dns.TypeA)); !equalStrings(AnswerStrings(r), testAnswer) {
		t.Errorf("after a rejected reload, the DoT listener added before: %v", AnswerStrings(r))
	}
	if r := MustExchange(t, "udp", d.Addr("dns_new"), NewQuery(testName, dns.TypeA)); !equalStrings(AnswerStrings(r), testAnswer) {
		t.Errorf("after a rejected reload, the Do53 listener added before: %v", AnswerStrings(r))
	}
	for _, l := range kept {
		l.waitAnswers(t, 5)
	}
	stopAll()
	for _, l := range kept {
		<-l.done
		if l.err != nil {
			t.Errorf("a connection to a kept listener failed: %v", l.err)
		}
	}
}
