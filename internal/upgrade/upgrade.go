// Package upgrade hands a running dnsfront's listening sockets to a new process (a binary
// upgrade, as nginx's SIGUSR2): the predecessor starts its successor with the sockets as
// inherited descriptors (fd passing through exec), the successor serves them from its own
// event loops and says it is ready over a control socket, and only then does the
// predecessor stop reading them. The sockets never close in between, so nothing queued on
// them (a datagram, a connection in the accept backlog) is lost.
//
// Concurrency rule: Spawn blocks its caller until the successor is ready or has failed;
// nothing here is shared between goroutines.
package upgrade

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// envFDs tells a successor what its inherited descriptors are:
// "ctl=3;engine=4,5,6;admin=7@127.0.0.1:8080,8@[::1]:8080".
const envFDs = "DNSFRONT_UPGRADE_FDS"

// Sockets are the listening sockets handed over: the engine's (every bind, UDP and TCP)
// and the admin API's, by listen address.
type Sockets struct {
	Engine []int
	Admin  map[string]int
}

// Spawn starts the successor: the executable this process was started from (which is
// the new binary once it replaced the old one on disk), with the same arguments, the
// descriptors of socks and the environment. It returns the successor's process ID once
// the successor reports that it serves, or an error when it exits first or ctx ends.
// When ctx ends the successor is asked to give up ("abort" on the control socket): one
// whose loops do not read the sockets yet answers "aborted" and is killed; one whose loops
// do answers "serving" and hands its connections and queries back gracefully before it
// exits, since a kill would lose them. The descriptors of socks stay the caller's.
func Spawn(ctx context.Context, socks Sockets) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("upgrade: %w", err)
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("upgrade: control socket: %w", err)
	}
	ours := os.NewFile(uintptr(pair[0]), "upgrade-control")
	defer ours.Close()
	theirs := os.NewFile(uintptr(pair[1]), "upgrade-control-successor")
	files := []*os.File{theirs}
	var desc strings.Builder
	desc.WriteString("ctl=3;engine=")
	add := func(fd int) (int, error) {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		files = append(files, os.NewFile(uintptr(d), "listener"))
		return 2 + len(files), nil // ExtraFiles[i] is descriptor 3+i
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i, fd := range socks.Engine {
		n, err := add(fd)
		if err != nil {
			return 0, fmt.Errorf("upgrade: %w", err)
		}
		if i > 0 {
			desc.WriteByte(',')
		}
		desc.WriteString(strconv.Itoa(n))
	}
	desc.WriteString(";admin=")
	first := true
	for addr, fd := range socks.Admin {
		n, err := add(fd)
		if err != nil {
			return 0, fmt.Errorf("upgrade: %w", err)
		}
		if !first {
			desc.WriteByte(',')
		}
		first = false
		fmt.Fprintf(&desc, "%d@%s", n, addr)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(withoutFDs(os.Environ()), envFDs+"="+desc.String())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("upgrade: starting %s: %w", exe, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // reaps it if it fails; a successor outlives us otherwise
		close(exited)
	}()
	theirs.Close()
	files = files[1:]
	// Each answer ends the exchange: the reader stops after one, so it never blocks on a
	// channel nobody reads.
	lines := make(chan string, 1)
	go func() {
		defer close(lines)
		s, err := bufio.NewReader(ours).ReadString('\n')
		if err == nil {
			lines <- strings.TrimSpace(s)
		}
	}()
	pid := cmd.Process.Pid
	done := ctx.Done()
	var grace <-chan time.Time
	for {
		select {
		case s, ok := <-lines:
			switch {
			case !ok:
				<-exited
				return 0, fmt.Errorf("upgrade: the successor (pid %d) exited before it served: %v (its log says why)", pid, cmd.ProcessState)
			case s == "ready":
				return pid, nil
			case s == "aborted":
				// It promised never to read the sockets: nothing of theirs is lost.
				_ = cmd.Process.Kill()
				return 0, fmt.Errorf("upgrade: the successor (pid %d) did not serve in time: %w", pid, ctx.Err())
			case s == "serving":
				// It reads the sockets already: killing it would lose what it accepted
				// and read. It hands them back (engine.Handover) and exits on its own.
				return 0, fmt.Errorf("upgrade: the successor (pid %d) did not finish its start in time (%w); it hands its connections back and exits", pid, ctx.Err())
			default:
				<-exited
				return 0, fmt.Errorf("upgrade: the successor (pid %d) said %q and exited: %v", pid, s, cmd.ProcessState)
			}
		case <-done:
			// Ask rather than kill: only the successor knows whether its loops read the
			// sockets yet. It answers at once, from a goroutine of its own.
			done = nil
			grace = time.After(abortGrace)
			_ = ours.SetWriteDeadline(time.Now().Add(abortGrace))
			_, _ = io.WriteString(ours, "abort\n")
		case <-grace:
			// No answer at all: a binary that does not run, or one from before this
			// protocol, which says nothing until it is ready.
			_ = cmd.Process.Kill()
			return 0, fmt.Errorf("upgrade: the successor (pid %d) did not serve in time and did not answer: %w", pid, ctx.Err())
		}
	}
}

// abortGrace bounds the wait for the successor's answer to "abort": it comes from a
// goroutine that does nothing else, so a live successor answers within milliseconds.
const abortGrace = 5 * time.Second

func withoutFDs(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, envFDs+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// Successor is what a process started by Spawn inherited.
//
// Concurrency rule: phase and aborted are guarded by mu, which is held while the control
// socket is written, so that the predecessor's "abort" and this process's start are
// ordered: either the loops start reading the sockets first (the answer is "serving"),
// or the abort comes first and they never do.
type Successor struct {
	Sockets
	ctl *os.File

	mu      sync.Mutex
	phase   phase
	aborted bool
}

type phase int

const (
	starting phase = iota // the loops do not read the sockets yet
	serving               // they do; the predecessor has not been told
	ready                 // the predecessor was told
)

// ErrAborted is returned by Serving and Ready once the predecessor gave up waiting.
var ErrAborted = errors.New("upgrade: the predecessor gave up waiting for this process")

// Inherited returns what the predecessor handed over, or nil when this process was not
// started by an upgrade. It clears the environment variable, so that a later upgrade of
// this process does not see it.
func Inherited() (*Successor, error) {
	v, ok := os.LookupEnv(envFDs)
	if !ok {
		return nil, nil
	}
	_ = os.Unsetenv(envFDs)
	s := &Successor{Sockets: Sockets{Admin: map[string]int{}}}
	for _, part := range strings.Split(v, ";") {
		key, val, _ := strings.Cut(part, "=")
		for _, item := range strings.Split(val, ",") {
			if item == "" {
				continue
			}
			num, addr, _ := strings.Cut(item, "@")
			fd, err := strconv.Atoi(num)
			if err != nil || fd < 3 {
				return nil, fmt.Errorf("upgrade: %s=%q: bad descriptor %q", envFDs, v, item)
			}
			unix.CloseOnExec(fd)
			switch key {
			case "ctl":
				s.ctl = os.NewFile(uintptr(fd), "upgrade-control")
			case "engine":
				s.Engine = append(s.Engine, fd)
			case "admin":
				s.Admin[addr] = fd
			default:
				return nil, fmt.Errorf("upgrade: %s=%q: unknown part %q", envFDs, v, key)
			}
		}
	}
	if s.ctl == nil {
		return nil, fmt.Errorf("upgrade: %s=%q: no control socket", envFDs, v)
	}
	go s.listen()
	return s, nil
}

// listen answers the predecessor's "abort". An end of file (the predecessor stopped) is
// no abort: this process goes on starting and serves alone.
func (s *Successor) listen() {
	r := bufio.NewReader(s.ctl)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimSpace(line) != "abort" {
			continue
		}
		s.mu.Lock()
		if s.phase != ready {
			s.aborted = true
			answer := "aborted\n"
			if s.phase == serving {
				answer = "serving\n"
			}
			_ = s.ctl.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(s.ctl, answer)
		}
		s.mu.Unlock()
	}
}

// Serving is called just before the loops start reading the inherited sockets: it
// returns ErrAborted, and they must not start, once the predecessor gave up waiting.
func (s *Successor) Serving() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborted {
		return ErrAborted
	}
	s.phase = serving
	return nil
}

// Ready tells the predecessor that this process serves: it stops reading the sockets and
// drains. announce runs first (the pid file, systemd's MAINPID), and only when the
// predecessor still waits: after ErrAborted this process must hand the sockets back
// (they are the predecessor's again) and exit.
func (s *Successor) Ready(announce func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborted {
		return ErrAborted
	}
	announce()
	s.phase = ready
	_ = s.ctl.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := io.WriteString(s.ctl, "ready\n")
	s.ctl.Close() // ends listen
	if err != nil {
		return fmt.Errorf("upgrade: telling the predecessor: %w", err)
	}
	return nil
}

// Fail tells the predecessor that this process will not serve (it keeps serving).
func (s *Successor) Fail() { s.ctl.Close() }

// ErrRefused is wrapped by the reasons a running server refuses an upgrade.
var ErrRefused = errors.New("upgrade refused")
