package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dnsfront/dnsfront/internal/testutil"
)

// Drain ends an idle Do53 TCP connection with a lingering close: the client reads EOF,
// what it sends afterwards is discarded rather than reset, and once it closes its side
// the drain ends at once (not at the linger bound), leaving no goroutine behind.
func TestDrainLingers(t *testing.T) {
	base := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		goleak.VerifyNone(t, base, goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*goWorker).run.func1"))
	})
	acl, err := NewACL([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t, "127.0.0.1")
	e := startTestEngine(t, newTestState(acl, nil, nil), 1, BindOptions{Addr: addr, Protocol: "Do53"})

	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The connection is open on the loop once a query on it is answered (SERVFAIL: the
	// pool has no backend).
	if _, err := c.Write(dotFrame(t, 1)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if _, err := io.ReadFull(c, make([]byte, binary.BigEndian.Uint16(hdr[:]))); err != nil {
		t.Fatalf("no answer: %v", err)
	}

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- e.Drain(ctx)
	}()
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("waiting for the server's FIN: %v", err)
		}
	}
	for i := range 2 {
		if _, err := c.Write(dotFrame(t, 2)); err != nil {
			t.Fatalf("write %d after the server's FIN: %v", i+1, err)
		}
	}
	start := time.Now()
	c.Close()
	select {
	case err := <-drained:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return")
	}
	if d := time.Since(start); d >= lingerTimeout {
		t.Errorf("Drain returned %v after the client closed: it waited for the linger bound", d)
	}
}
