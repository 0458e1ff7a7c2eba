package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// startTimeout bounds how long dnsfront may take to report that it serves.
const startTimeout = 30 * time.Second

// stopTimeout bounds how long a stopping dnsfront may take; it is above the default
// drain timeout (5 s) so that a slow drain shows as a wrong exit rather than a kill.
const stopTimeout = 20 * time.Second

// readyLine is what dnsfront logs once its listeners and admin API are up.
const readyLine = "dnsfront started"

// Dnsfront is one dnsfront process serving a configuration in a temporary directory.
type Dnsfront struct {
	t       testing.TB
	Dir     string // the temporary directory holding the configuration
	Config  string // the configuration file
	PIDFile string

	tmpl  string
	ports *ports
	cmd   *exec.Cmd
	log   *logBuffer

	exited   chan struct{}
	exitCode int
	stopOnce sync.Once
}

// Start writes the configuration template tmpl (rendered with data and {{port "name"}})
// into a new temporary directory, starts `dnsfront serve` on it and waits until it
// serves. The process is stopped with SIGTERM in t.Cleanup, which checks it exits with 0;
// its log goes to the test log when the test fails.
func Start(t testing.TB, tmpl string, data any) *Dnsfront {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	// A port found free may be taken before dnsfront binds it: retry with new ports.
	for attempt := range 3 {
		d := &Dnsfront{
			t: t, Dir: dir, tmpl: tmpl,
			Config:  filepath.Join(dir, "dnsfront.yaml"),
			PIDFile: filepath.Join(dir, "dnsfront.pid"),
			ports:   &ports{byName: map[string]int{}},
		}
		if err := d.write(tmpl, data); err != nil {
			t.Fatal(err)
		}
		err := d.start()
		if err == nil {
			return d
		}
		lastErr = err
		if !strings.Contains(d.Log(), "address already in use") {
			break
		}
		t.Logf("dnsfront start attempt %d: port conflict, retrying with new ports", attempt+1)
	}
	t.Fatal(lastErr)
	return nil
}

// StartFile starts dnsfront on an existing configuration file (examples/dev.yaml),
// with its pid file in a temporary directory. known names the ports the file uses
// ("dns", "admin"), for Addr and the admin helpers.
func StartFile(t testing.TB, path string, known map[string]int) *Dnsfront {
	t.Helper()
	dir := t.TempDir()
	d := &Dnsfront{
		t: t, Dir: dir, Config: path,
		PIDFile: filepath.Join(dir, "dnsfront.pid"),
		ports:   &ports{byName: map[string]int{}},
	}
	for name, port := range known {
		d.ports.byName[name] = port
	}
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
	return d
}

// write renders tmpl with the process's ports into its configuration file.
func (d *Dnsfront) write(tmpl string, data any) error {
	b, err := render(tmpl, data, d.ports)
	if err != nil {
		return err
	}
	return os.WriteFile(d.Config, b, 0o644)
}

// Rewrite replaces the configuration file with tmpl rendered with data, keeping the
// ports already allocated; a reload then applies it.
func (d *Dnsfront) Rewrite(tmpl string, data any) {
	d.t.Helper()
	if err := d.write(tmpl, data); err != nil {
		d.t.Fatal(err)
	}
}

// WriteRaw replaces the configuration file with content as is (a broken file).
func (d *Dnsfront) WriteRaw(content string) {
	d.t.Helper()
	WriteFile(d.t, d.Config, []byte(content))
}

// WriteFile writes data to path with mode 0644, failing the test on error.
func WriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (d *Dnsfront) start() error {
	d.log = &logBuffer{}
	d.exited = make(chan struct{})
	d.cmd = exec.Command(Binary(d.t), "serve", "--config", d.Config, "--pid-file", d.PIDFile)
	d.cmd.Dir = d.Dir
	d.cmd.Stdout = d.log
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start dnsfront: %w", err)
	}
	go func() {
		err := d.cmd.Wait()
		d.exitCode = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			d.exitCode = ee.ExitCode()
		} else if err != nil {
			d.exitCode = -1
		}
		close(d.exited)
	}()
	deadline := time.After(startTimeout)
	for !strings.Contains(d.log.String(), readyLine) {
		select {
		case <-d.exited:
			return fmt.Errorf("dnsfront exited with code %d before serving; its log:\n%s", d.exitCode, d.Log())
		case <-deadline:
			d.kill()
			return fmt.Errorf("dnsfront did not report %q within %v; its log:\n%s", readyLine, startTimeout, d.Log())
		case <-time.After(10 * time.Millisecond):
		}
	}
	d.t.Cleanup(func() {
		if d.t.Failed() {
			d.t.Logf("dnsfront log (%s):\n%s", d.Config, d.Log())
		}
	})
	d.t.Cleanup(func() { d.Stop() })
	return nil
}

func (d *Dnsfront) kill() {
	_ = d.cmd.Process.Kill()
	<-d.exited
}

// Stop sends SIGTERM and waits for the process to exit; it fails the test unless the exit
// code is 0. It is idempotent and runs in t.Cleanup anyway.
func (d *Dnsfront) Stop() {
	d.t.Helper()
	d.stopOnce.Do(func() {
		d.Signal(syscall.SIGTERM)
		if code := d.Wait(stopTimeout); code != 0 {
			d.t.Errorf("dnsfront exited with code %d after SIGTERM, want 0", code)
		}
	})
}

// Signal sends sig to the process.
func (d *Dnsfront) Signal(sig syscall.Signal) {
	d.t.Helper()
	select {
	case <-d.exited:
		return
	default:
	}
	if err := d.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		d.t.Errorf("signal %v to dnsfront: %v", sig, err)
	}
}

// reload sends SIGHUP and waits for the "reloaded" log line, then checks that
// dnsfront_reloads_total went up; a rejected reload fails the test.
func reload(t testing.TB, d *Dnsfront) {
	t.Helper()
	before := d.Metric("dnsfront_reloads_total")
	mark := len(d.Log())
	d.Signal(syscall.SIGHUP)
	var l string
	if !testutil.Poll(30*time.Second, func() bool {
		l = d.Log()[mark:]
		return strings.Contains(l, "msg=reloaded") || strings.Contains(l, "reload rejected")
	}) {
		t.Fatalf("no reload within 30s; log since SIGHUP:\n%s", l)
	}
	if !strings.Contains(l, "msg=reloaded") {
		t.Fatalf("reload rejected:\n%s", l)
	}
	// The counter goes up before the line is logged.
	if v := d.Metric("dnsfront_reloads_total"); v <= before {
		t.Fatalf("dnsfront_reloads_total = %v after a reload, was %v", v, before)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code; on timeout
// it kills the process, fails the test and returns -1.
func (d *Dnsfront) Wait(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.exited:
		return d.exitCode
	case <-time.After(timeout):
		d.t.Errorf("dnsfront did not exit within %v; killing it", timeout)
		d.kill()
		return -1
	}
}

// Port returns the port allocated under name by the configuration template.
func (d *Dnsfront) Port(name string) int {
	d.t.Helper()
	n, ok := d.ports.byName[name]
	if !ok {
		d.t.Fatalf("the configuration allocated no port named %q", name)
	}
	return n
}

// Addr returns "127.0.0.1:port" (or "[::1]:port" for names ending in 6) for the port
// allocated under name.
func (d *Dnsfront) Addr(name string) string {
	d.t.Helper()
	host := "127.0.0.1"
	if strings.HasSuffix(name, "6") {
		host = "::1"
	}
	return net.JoinHostPort(host, strconv.Itoa(d.Port(name)))
}

// Log returns everything the process wrote to stdout and stderr so far.
func (d *Dnsfront) Log() string { return d.log.String() }

// WaitLog waits up to timeout for substr to appear in the log after its first skip bytes
// and reports whether it did.
func (d *Dnsfront) WaitLog(substr string, skip int, timeout time.Duration) bool {
	return testutil.Poll(timeout, func() bool {
		l := d.Log()
		return len(l) >= skip && strings.Contains(l[skip:], substr)
	})
}

// logBuffer collects the process's output; the test reads it while the process writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// RunCLI runs the dnsfront binary with args (check-config, version) and returns its
// combined output and exit code.
func RunCLI(t testing.TB, args ...string) (string, int) {
	t.Helper()
	out, err := runToolErr(Binary(t), args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	default:
		t.Fatalf("dnsfront %s: %v", strings.Join(args, " "), err)
		return "", -1
	}
}
