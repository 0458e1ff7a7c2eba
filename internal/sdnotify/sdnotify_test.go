package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen is a service manager's end: a unixgram socket at path, read with a deadline.
func listen(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4096)
	n, err := c.Read(b)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	return string(b[:n])
}

func TestNotifyMessages(t *testing.T) {
	for _, name := range []string{"path", "abstract"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "notify.sock")
			if name == "abstract" {
				path = "@dnsfront-sdnotify-test-" + strconv.Itoa(os.Getpid())
			}
			srv := listen(t, path)
			t.Setenv("NOTIFY_SOCKET", path)
			n := New()
			if !n.Enabled() {
				t.Fatal("NOTIFY_SOCKET set, notifier disabled")
			}
			if err := n.Ready("serving 2 binds"); err != nil {
				t.Fatal(err)
			}
			if got := recv(t, srv); got != "READY=1\nSTATUS=serving 2 binds" {
				t.Errorf("ready: %q", got)
			}
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			got := recv(t, srv)
			lines := strings.Split(got, "\n")
			if len(lines) != 2 || lines[0] != "RELOADING=1" || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
				t.Fatalf("reloading: %q", got)
			}
			if usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64); err != nil || usec <= 0 {
				t.Errorf("reloading: MONOTONIC_USEC %q", lines[1])
			}
			for _, tc := range []struct {
				send func() error
				want string
			}{
				{n.Watchdog, "WATCHDOG=1"},
				{n.Stopping, "STOPPING=1"},
				{func() error { return n.Status("reload failed") }, "STATUS=reload failed"},
			} {
				if err := tc.send(); err != nil {
					t.Fatal(err)
				}
				if got := recv(t, srv); got != tc.want {
					t.Errorf("got %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestNotifyWithoutSocketIsNoOp(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n := New()
	if n.Enabled() {
		t.Fatal("enabled without NOTIFY_SOCKET")
	}
	if err := n.Ready("x"); err != nil {
		t.Errorf("Ready without socket: %v", err)
	}
	var nilN *Notifier
	if err := nilN.Stopping(); err != nil {
		t.Errorf("nil notifier: %v", err)
	}
}

func TestNotifyReportsMissingSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "absent.sock"))
	if err := New().Ready("x"); err == nil || !strings.Contains(err.Error(), "absent.sock") {
		t.Errorf("want an error naming the socket, got %v", err)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	cases := []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 15 * time.Second, false},
		{"30000000", self, 15 * time.Second, false},
		{"30000000", "1", 0, false}, // meant for another process
		{"zero", "", 0, true},
		{"0", "", 0, true},
	}
	for _, tc := range cases {
		t.Setenv("WATCHDOG_USEC", tc.usec)
		t.Setenv("WATCHDOG_PID", tc.pid)
		got, err := WatchdogInterval()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, %v; want %v, error %v", tc.usec, tc.pid, got, err, tc.want, tc.err)
		}
	}
}
