package e2e

import (
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// notifySocket is the service manager's end of $NOTIFY_SOCKET: every datagram the
// process sends, in order.
type notifySocket struct {
	path string
	msgs chan string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, msgs: make(chan string, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			k, err := c.Read(b)
			if err != nil {
				return
			}
			n.msgs <- string(b[:k])
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return n
}

// await returns the first message that starts with prefix, skipping others (watchdog
// pings interleave with state changes), and fails the test after timeout.
func (n *notifySocket) await(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-n.msgs:
			if strings.HasPrefix(m, prefix) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %q notification within %v", prefix, timeout)
			return ""
		}
	}
}

// count returns how many messages that start with prefix arrive within window,
// dropping the others.
func (n *notifySocket) count(prefix string, window time.Duration) int {
	end := time.After(window)
	k := 0
	for {
		select {
		case m := <-n.msgs:
			if strings.HasPrefix(m, prefix) {
				k++
			}
		case <-end:
			return k
		}
	}
}

// TestSystemdNotify runs the real binary as systemd would with Type=notify and
// WatchdogSec: READY=1 once it serves, WATCHDOG=1 at half the watchdog period,
// RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	n := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", n.path)
	t.Setenv("WATCHDOG_USEC", "400000") // pings every 200 ms
	t.Setenv("WATCHDOG_PID", "")
	be := StartTestBackend(t)
	launched := time.Now()
	d := startFE(t, do53FE(be.Addr))

	// Start returns once the ready line is logged, which is just before READY=1.
	if m := n.await(t, "READY=1", 5*time.Second); !strings.Contains(m, "STATUS=serving") {
		t.Errorf("READY without status: %q", m)
	}
	MustExchange(t, "udp", d.Addr("dns"), NewQuery(testName, 1))
	// Pings keep coming, one per 200 ms: about 10 arrive in 2 s. However late they are
	// delivered, no more can have arrived than the ticker made since the process was
	// launched (one per 200 ms, plus one it holds).
	pings := n.count("WATCHDOG=1", 2*time.Second)
	most := int(time.Since(launched)/(200*time.Millisecond)) + 1
	if pings < 2 || pings > most {
		t.Errorf("%d watchdog pings in 2 s, %v after launch: want one per 200 ms (2 to %d)", pings, time.Since(launched).Round(time.Millisecond), most)
	}

	d.Signal(syscall.SIGHUP)
	if m := n.await(t, "RELOADING=1", 5*time.Second); !strings.Contains(m, "MONOTONIC_USEC=") {
		t.Errorf("RELOADING without MONOTONIC_USEC: %q", m)
	}
	if m := n.await(t, "READY=1", 5*time.Second); !strings.Contains(m, "STATUS=serving") {
		t.Errorf("READY after reload: %q", m)
	}

	// A rejected reload still ends the reload for systemd, and says why.
	d.Rewrite("binds: [}\n", nil)
	d.Signal(syscall.SIGHUP)
	n.await(t, "RELOADING=1", 5*time.Second)
	if m := n.await(t, "READY=1", 5*time.Second); !strings.Contains(m, "STATUS=reload failed") {
		t.Errorf("READY after a rejected reload: %q", m)
	}
	MustExchange(t, "udp", d.Addr("dns"), NewQuery(testName, 1))

	d.Stop()
	n.await(t, "STOPPING=1", 5*time.Second)
}
