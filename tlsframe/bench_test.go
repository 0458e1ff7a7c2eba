package tlsframe

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

func threadCPU() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return time.Duration(ts.Nano())
}

func processCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var benchCurves = []struct {
	name   string
	curves []tls.CurveID
}{
	{"X25519", []tls.CurveID{tls.X25519}},
	{"X25519MLKEM768", nil}, // Go's default
}

// BenchmarkHandshakeInMemory is the crypto floor: full TLS 1.3 handshakes
// (ECDSA P-256) between a client and a server goroutine over net.Pipe, each
// locked to its own thread so that thread CPU time separates their costs.
func BenchmarkHandshakeInMemory(b *testing.B) {
	bp := newBothPKI(b)
	for _, cv := range benchCurves {
		b.Run(cv.name, func(b *testing.B) {
			scfg := bp.snap.config.Clone()
			scfg.CurvePreferences = cv.curves
			scfg.SessionTicketsDisabled = true
			ccfg := bp.pki.clientConfig("both.test")
			ccfg.CurvePreferences = cv.curves
			ccfg.MinVersion = tls.VersionTLS13
			conns := make(chan net.Conn)
			serverCPU := make(chan time.Duration)
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var total time.Duration
				for c := range conns {
					start := threadCPU()
					if err := tls.Server(c, scfg).Handshake(); err != nil {
						panic(err)
					}
					total += threadCPU() - start
					c.Close()
				}
				serverCPU <- total
			}()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var clientCPU time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			procStart := processCPU()
			for range b.N {
				cc, sc := net.Pipe()
				conns <- sc
				start := threadCPU()
				if err := tls.Client(cc, ccfg).Handshake(); err != nil {
					b.Fatal(err)
				}
				clientCPU += threadCPU() - start
				cc.Close()
			}
			close(conns)
			srv := <-serverCPU
			total := processCPU() - procStart
			b.StopTimer()
			// server-µs/hs counts the server thread only; the adapter
			// benchmark cannot separate it, so both also report the process
			// CPU minus the client thread (GC included): server+gc-µs/hs.
			b.ReportMetric(float64(srv.Microseconds())/float64(b.N), "server-µs/hs")
			b.ReportMetric(float64((total-clientCPU).Microseconds())/float64(b.N), "server+gc-µs/hs")
			b.ReportMetric(float64(clientCPU.Microseconds())/float64(b.N), "client-µs/hs")
		})
	}
}

// BenchmarkHandshakeAdapter runs the same handshakes against the adapter on
// a real gnet loop over loopback (plus one DoT-sized echo, so the server has
// finished). Server CPU is the process CPU minus the client's thread CPU.
func BenchmarkHandshakeAdapter(b *testing.B) {
	bp := newBothPKI(b)
	for _, cv := range benchCurves {
		b.Run(cv.name, func(b *testing.B) {
			tk, _ := NewTicketKeys(1, 0, "")
			snap, err := BuildSnapshot([]CertSpec{bp.ecdsa.spec(nil)},
				Options{CurvePreferences: cv.curves, NextProtos: []string{"dot"}}, tk)
			if err != nil {
				b.Fatal(err)
			}
			s := startServer(b, snap, NewHandshaker(HandshakerOptions{}), 1)
			ccfg := bp.pki.clientConfig("both.test")
			ccfg.CurvePreferences = cv.curves
			ccfg.MinVersion = tls.VersionTLS13
			q := frame("0123456789012345678901234567890123456789")
			resp := make([]byte, len(q))
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var clientCPU time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			procStart := processCPU()
			for range b.N {
				start := threadCPU()
				raw, err := net.Dial("tcp", s.addr)
				if err != nil {
					b.Fatal(err)
				}
				c := tls.Client(raw, ccfg)
				if _, err := c.Write(q); err != nil {
					b.Fatal(err)
				}
				if _, err := readFullTLS(c, resp); err != nil {
					b.Fatal(err)
				}
				c.Close()
				clientCPU += threadCPU() - start
			}
			total := processCPU() - procStart
			b.StopTimer()
			b.ReportMetric(float64((total-clientCPU).Microseconds())/float64(b.N), "server+gc-µs/hs")
			b.ReportMetric(float64(clientCPU.Microseconds())/float64(b.N), "client-µs/hs")
		})
	}
}

func readFullTLS(c *tls.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// BenchmarkIdleConnMemory measures the server heap held per idle established
// DoT connection over 5,000 connections (target <= 10 kB). The clients run
// in a child process so that their memory is not counted. Run it with
// -benchtime=1x: one measurement per run.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 5000
	bp := newBothPKI(b)
	s := startServer(b, bp.snap, NewHandshaker(HandshakerOptions{PerClient: -1}), 2)
	// Warm the loops' scratch buffers and pools before the baseline.
	c := dialTLS(b, s.addr, bp.pki.clientConfig("both.test"))
	echo(b, c, "warm")
	c.Close()
	testutil.Eventually(b, 10*time.Second, "warm-up closed", func() bool { return s.closed.Load() == s.opened.Load() })

	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperIdleClients$", "-test.v")
	cmd.Env = append(os.Environ(), "TLSFRAME_IDLE_ADDR="+s.addr, "TLSFRAME_IDLE_N="+strconv.Itoa(n),
		"TLSFRAME_IDLE_CA="+string(bp.pki.caPEM))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		if sc.Text() == "ready" {
			ready = true
			break
		}
	}
	if !ready {
		b.Fatal("client process did not connect")
	}
	testutil.Eventually(b, 10*time.Second, "all established", func() bool { return s.opened.Load()-s.closed.Load() == n })
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	perConn := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / n
	for range b.N {
	}
	b.ReportMetric(perConn, "bytes/conn")
	b.ReportMetric(0, "ns/op")
}

// TestHelperIdleClients is the child process of BenchmarkIdleConnMemory.
func TestHelperIdleClients(t *testing.T) {
	addr := os.Getenv("TLSFRAME_IDLE_ADDR")
	if addr == "" {
		t.Skip("child process of BenchmarkIdleConnMemory")
	}
	n, _ := strconv.Atoi(os.Getenv("TLSFRAME_IDLE_N"))
	pool := x509Pool([]byte(os.Getenv("TLSFRAME_IDLE_CA")))
	cfg := &tls.Config{RootCAs: pool, ServerName: "both.test", NextProtos: []string{"dot"},
		ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	conns := make([]net.Conn, 0, n)
	for i := range n {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatalf("conn %d: %v", i, err)
		}
		if _, err := c.Write(frame("idle")); err != nil {
			t.Fatal(err)
		}
		if _, err := readFrame(c); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadByte() // until the parent closes stdin
	for _, c := range conns {
		c.Close()
	}
}
