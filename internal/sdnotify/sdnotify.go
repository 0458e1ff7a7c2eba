// Package sdnotify tells the service manager about the life of the process, as
// sd_notify(3) does, without libsystemd: one datagram per state change on the unix
// socket named by $NOTIFY_SOCKET. Outside systemd (no $NOTIFY_SOCKET) every call is a
// no-op, so the server calls it unconditionally.
//
// Concurrency: a Notifier is immutable and safe for concurrent use.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to the socket of $NOTIFY_SOCKET.
type Notifier struct {
	addr *net.UnixAddr // nil: not started by a service manager that listens
}

// New reads $NOTIFY_SOCKET. It does not unset it: the process starts no children
// that should talk to systemd on its behalf.
func New() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &Notifier{}
	}
	// A leading '@' names a socket in the abstract namespace; Go's unix addresses
	// use the same convention, so the name is passed on as it is.
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.addr != nil }

// Notify sends one state message ("READY=1", "STATUS=…", lines joined by '\n').
func (n *Notifier) Notify(state ...string) error {
	if !n.Enabled() {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %s: %w", n.addr.Name, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(state, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: %s: %w", n.addr.Name, err)
	}
	return nil
}

// Ready: start-up (or a reload) is complete and the service answers.
func (n *Notifier) Ready(status string) error {
	return n.Notify("READY=1", "STATUS="+status)
}

// Reloading: a reload has begun; Ready ends it. MONOTONIC_USEC lets systemd ≥ 253 tell
// this reload from an earlier one.
func (n *Notifier) Reloading() error {
	return n.Notify("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping: the service is draining and will exit.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// Status sets the free-form status line that `systemctl status` shows.
func (n *Notifier) Status(status string) error { return n.Notify("STATUS=" + status) }

// Watchdog tells the service manager the process is alive (WatchdogSec=).
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// WatchdogInterval is how often to call Watchdog: half of $WATCHDOG_USEC, so that one
// late tick does not get the process killed (sd_watchdog_enabled(3) advises the same).
// It is zero when the watchdog is off, or when $WATCHDOG_PID names another process.
func WatchdogInterval() (time.Duration, error) {
	s := os.Getenv("WATCHDOG_USEC")
	if s == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	usec, err := strconv.ParseUint(s, 10, 63)
	if err != nil || usec == 0 {
		return 0, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", s)
	}
	return time.Duration(usec) * time.Microsecond / 2, nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd compares
// MONOTONIC_USEC with.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1e3
}
