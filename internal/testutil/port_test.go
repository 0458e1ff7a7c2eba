package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// A reserved port is free for TCP and UDP, and neither this process nor another can
// reserve it again while this one lives.
func TestReservePortIsExclusive(t *testing.T) {
	p := FreePort(t, "127.0.0.1")
	// Outside the kernel's ephemeral range: no port-0 bind or client can take it.
	if lo, hi := reservedRange(); int(p) < lo || int(p) > hi {
		t.Errorf("reserved port %d is outside %d-%d", p, lo, hi)
	}
	if elo, ehi := ephemeralRange(); int(p) >= elo && int(p) <= ehi {
		t.Errorf("reserved port %d is in the ephemeral range %d-%d", p, elo, ehi)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("reserved port %d is not free for TCP: %v", p, err)
	}
	ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("reserved port %d is not free for UDP: %v", p, err)
	}
	pc.Close()

	if ok, err := lockPort(int(p)); err != nil || ok {
		t.Fatalf("this process reserved port %d twice (ok %v, err %v)", p, ok, err)
	}
	if got := lockInChild(t, int(p)); got != "held" {
		t.Fatalf("another process could reserve port %d: %s", p, got)
	}
	// A port nobody reserved can be taken by the other process.
	other := portNobodyHolds(t)
	if got := lockInChild(t, other); got != "locked" {
		t.Fatalf("another process could not reserve the free port %d: %s", other, got)
	}
}

// portNobodyHolds returns a port whose lock file no process holds, without reserving it.
func portNobodyHolds(t *testing.T) int {
	for port := 20000; port < 30000; port++ {
		if ok, err := lockPort(port); err == nil && ok {
			portLocks.Lock()
			f := portLocks.files[len(portLocks.files)-1]
			portLocks.files = portLocks.files[:len(portLocks.files)-1]
			portLocks.Unlock()
			f.Close() // drops the lock
			return port
		}
	}
	t.Fatal("every lock file from 20000 to 29999 is held")
	return 0
}

// lockInChild runs this test binary again as TestLockPortChild, which tries to lock the
// port and prints "locked" or "held".
func lockInChild(t *testing.T, port int) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockPortChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DNSFRONT_TEST_LOCK_PORT="+strconv.Itoa(port))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "lock: "); ok {
			return v
		}
	}
	t.Fatalf("child process printed no result:\n%s", out)
	return ""
}

// TestLockPortChild is lockInChild's other process; it does nothing in a normal run.
func TestLockPortChild(t *testing.T) {
	v := os.Getenv("DNSFRONT_TEST_LOCK_PORT")
	if v == "" {
		return
	}
	port, err := strconv.Atoi(v)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := lockPort(port)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		fmt.Println("lock: locked")
	} else {
		fmt.Println("lock: held")
	}
}

// A port where a closed server's connection waits in TIME_WAIT is not free: a server
// that binds without SO_REUSEADDR (gnet's default) would fail there with "address
// already in use", though a bind with it (Go's net.Listen) succeeds.
func TestPortInTimeWaitIsNotFree(t *testing.T) {
	p := FreePort(t, "127.0.0.1")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p)))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close() // the server closes first: its side of the connection goes to TIME_WAIT
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the client read data, want EOF")
	}
	c.Close()
	ln.Close()
	free, err := bothFree("127.0.0.1", int(p))
	if err != nil || free {
		t.Fatalf("port %d with a connection in TIME_WAIT: free %v (%v), want not free", p, free, err)
	}
}
