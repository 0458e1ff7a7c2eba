package upgrade

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// successorPair is a Successor whose control socket's other end is the test's, as the
// predecessor's is.
func successorPair(t *testing.T) (*Successor, *bufio.Reader, *os.File) {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pred := os.NewFile(uintptr(pair[0]), "predecessor")
	t.Cleanup(func() { pred.Close() })
	s := &Successor{ctl: os.NewFile(uintptr(pair[1]), "successor")}
	go s.listen()
	return s, bufio.NewReader(pred), pred
}

func ask(t *testing.T, pred *os.File, r *bufio.Reader) string {
	t.Helper()
	if _, err := pred.WriteString("abort\n"); err != nil {
		t.Fatal(err)
	}
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to abort: %v", err)
	}
	return strings.TrimSpace(line)
}

// The answer to "abort" tells whether the loops read the sockets, and what the successor
// may do after it: one that did not start them never does, one that did never reports
// ready (it hands the sockets back), and one that reported ready does not answer.
func TestAbort(t *testing.T) {
	t.Run("before the loops start", func(t *testing.T) {
		s, r, pred := successorPair(t)
		if got := ask(t, pred, r); got != "aborted" {
			t.Fatalf("answer %q, want aborted", got)
		}
		if err := s.Serving(); !errors.Is(err, ErrAborted) {
			t.Fatalf("Serving after abort: %v, want ErrAborted", err)
		}
	})
	t.Run("after the loops start", func(t *testing.T) {
		s, r, pred := successorPair(t)
		if err := s.Serving(); err != nil {
			t.Fatal(err)
		}
		if got := ask(t, pred, r); got != "serving" {
			t.Fatalf("answer %q, want serving", got)
		}
		announced := false
		if err := s.Ready(func() { announced = true }); !errors.Is(err, ErrAborted) {
			t.Fatalf("Ready after abort: %v, want ErrAborted", err)
		}
		if announced {
			t.Error("the successor announced itself (pid file, MAINPID) after the predecessor gave up")
		}
	})
	t.Run("after ready", func(t *testing.T) {
		s, r, pred := successorPair(t)
		if err := s.Serving(); err != nil {
			t.Fatal(err)
		}
		announced := false
		if err := s.Ready(func() { announced = true }); err != nil || !announced {
			t.Fatalf("Ready: %v, announced %v", err, announced)
		}
		line, err := r.ReadString('\n')
		if err != nil || line != "ready\n" {
			t.Fatalf("first line %q (%v), want ready", line, err)
		}
		_, _ = pred.WriteString("abort\n") // too late: the control socket may be closed
		if line, err := r.ReadString('\n'); err == nil {
			t.Fatalf("answer %q to an abort after ready, want none", line)
		}
	})
}
