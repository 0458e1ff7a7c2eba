package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// Etcd is Debian's etcd (package etcd-server) serving one member on loopback ports in a
// temporary directory, for fleet mode.
type Etcd struct {
	t       testing.TB
	URL     string // the client URL
	cmd     *exec.Cmd
	exited  chan struct{}
	log     string
	args    []string
	stopped bool
}

// StartEtcd starts etcd and waits until it reports healthy; t.Cleanup stops it.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	bin := testutil.Tool(t, "etcd")
	dir := t.TempDir()
	client, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	peer, err := FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e := &Etcd{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", client), exited: make(chan struct{}), log: filepath.Join(dir, "etcd.log")}
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	e.args = []string{"--name", "e0", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", e.URL, "--advertise-client-urls", e.URL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e0=" + peerURL, "--initial-cluster-state", "new",
		// Fast elections on loopback.
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--log-level", "warn", "--logger", "zap"}
	e.start(bin)
	t.Cleanup(e.Stop)
	e.waitHealthy()
	return e
}

// Restart starts a stopped etcd again on the same ports and data and waits until it is
// healthy.
func (e *Etcd) Restart() {
	e.t.Helper()
	e.exited, e.stopped = make(chan struct{}), false
	e.start(testutil.Tool(e.t, "etcd"))
	e.waitHealthy()
}

func (e *Etcd) start(bin string) {
	e.t.Helper()
	logf, err := os.OpenFile(e.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	e.cmd = exec.Command(bin, e.args...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		logf.Close()
		e.t.Fatalf("etcd: %v", err)
	}
	exited := e.exited
	go func(cmd *exec.Cmd) {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}(e.cmd)
}

func (e *Etcd) waitHealthy() {
	e.t.Helper()
	if !testutil.Poll(30*time.Second, func() bool {
		select {
		case <-e.exited:
			return false
		default:
		}
		resp, err := http.Get(e.URL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		b, _ := os.ReadFile(e.log)
		e.t.Fatalf("etcd did not become healthy within 30s; its log:\n%s", b)
	}
}

// Stop ends etcd (SIGTERM, then SIGKILL after 10 s). It is idempotent.
func (e *Etcd) Stop() {
	if e.stopped {
		return
	}
	e.stopped = true
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
	}
}
