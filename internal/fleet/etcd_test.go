package fleet

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// etcdCluster is Debian's etcd (etcd-server) run on loopback ports in a
// temporary directory: one member, or three for failover tests.
type etcdCluster struct {
	t     testing.TB
	bin   string
	nodes []*etcdNode
	httpc *http.Client // for /health: a TLS client when etcd serves https
}

type etcdNode struct {
	name, dir, client, peer string
	args                    []string
	log                     string
	cmd                     *exec.Cmd
	exited                  chan struct{}
}

func startEtcd(t testing.TB, n int) *etcdCluster {
	t.Helper()
	return startEtcdWith(t, n, "http", http.DefaultClient)
}

// startEtcdWith starts n members whose client URLs use scheme, with extra
// flags (TLS files), checking health through httpc.
func startEtcdWith(t testing.TB, n int, scheme string, httpc *http.Client, extra ...string) *etcdCluster {
	t.Helper()
	c := &etcdCluster{t: t, bin: testutil.Tool(t, "etcd"), httpc: httpc}
	base := t.TempDir()
	var initial []string
	for i := range n {
		nd := &etcdNode{
			name:   fmt.Sprintf("e%d", i),
			client: fmt.Sprintf("%s://127.0.0.1:%d", scheme, testutil.FreePort(t, "127.0.0.1")),
			peer:   fmt.Sprintf("http://127.0.0.1:%d", testutil.FreePort(t, "127.0.0.1")),
		}
		nd.dir = filepath.Join(base, nd.name)
		nd.log = filepath.Join(base, nd.name+".log")
		initial = append(initial, nd.name+"="+nd.peer)
		c.nodes = append(c.nodes, nd)
	}
	for _, nd := range c.nodes {
		nd.args = []string{
			"--name", nd.name, "--data-dir", nd.dir,
			"--listen-client-urls", nd.client, "--advertise-client-urls", nd.client,
			"--listen-peer-urls", nd.peer, "--initial-advertise-peer-urls", nd.peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "dnsfront-test",
			// Fast elections on loopback; the minimum lease TTL follows
			// (3/2 election timeout), so tests can use 2 s sessions.
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--log-level", "warn", "--logger", "zap",
		}
		nd.args = append(nd.args, extra...)
		c.start(nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.stop(nd)
		}
	})
	for _, nd := range c.nodes {
		c.waitHealthy(nd)
	}
	return c
}

func (c *etcdCluster) endpoints() []string {
	var eps []string
	for _, nd := range c.nodes {
		eps = append(eps, nd.client)
	}
	return eps
}

func (c *etcdCluster) start(nd *etcdNode) {
	c.t.Helper()
	logf, err := os.OpenFile(nd.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.cmd = exec.Command(c.bin, nd.args...)
	nd.cmd.Stdout, nd.cmd.Stderr = logf, logf
	nd.cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH=")
	if err := nd.cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("etcd %s: %v", nd.name, err)
	}
	nd.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}(nd.cmd, nd.exited)
}

// stop ends one etcd member (SIGTERM, then SIGKILL after 10 s).
func (c *etcdCluster) stop(nd *etcdNode) {
	if nd.cmd == nil {
		return
	}
	_ = nd.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-nd.exited:
	case <-time.After(10 * time.Second):
		_ = nd.cmd.Process.Kill()
		<-nd.exited
	}
	nd.cmd = nil
}

func (c *etcdCluster) waitHealthy(nd *etcdNode) {
	c.t.Helper()
	ok := testutil.Poll(30*time.Second, func() bool {
		select {
		case <-nd.exited:
			return false
		default:
		}
		resp, err := c.httpc.Get(nd.client + "/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"true"`)
	})
	if !ok {
		b, _ := os.ReadFile(nd.log)
		c.t.Fatalf("etcd %s did not become healthy; its log:\n%s", nd.name, tail(string(b), 4000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
