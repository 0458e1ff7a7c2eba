package e2e

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// pipelineRecords gives q0.pipe.test … q{n-1}.pipe.test distinct A records.
func pipelineRecords(n int) []string {
	out := make([]string, n)
	for i := range n {
		out[i] = fmt.Sprintf("q%d.pipe.test. 60 IN A 10.%d.%d.%d", i, i>>16&0xff, i>>8&0xff, i&0xff)
	}
	return out
}

// pipelineResult is what one pipelined run observed.
type pipelineResult struct {
	order []int // query index of each answer, in arrival order
}

// runPipeline writes n queries in one write on one TCP connection and reads n answers,
// matching each to its query by ID and checking its question and record.
func runPipeline(t *testing.T, addr string, n int) pipelineResult {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	byID := map[uint16]int{}
	var buf []byte
	for i := range n {
		q := NewQuery(fmt.Sprintf("q%d.pipe.test", i), dns.TypeA)
		q.Id = uint16(1000 + i*7)
		byID[q.Id] = i
		wire, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(wire)))
		buf = append(buf, wire...)
	}
	if _, err := conn.Write(buf); err != nil {
		t.Fatal(err)
	}
	var res pipelineResult
	seen := map[uint16]bool{}
	for range n {
		var hdr [2]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			t.Fatalf("after %d answers: %v", len(res.order), err)
		}
		frame := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(conn, frame); err != nil {
			t.Fatalf("after %d answers: %v", len(res.order), err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(frame); err != nil {
			t.Fatalf("answer %d does not unpack: %v", len(res.order), err)
		}
		i, ok := byID[r.Id]
		if !ok || seen[r.Id] {
			t.Fatalf("answer with unknown or repeated ID %d", r.Id)
		}
		seen[r.Id] = true
		want := fmt.Sprintf("q%d.pipe.test.", i)
		if len(r.Question) != 1 || r.Question[0].Name != want {
			t.Errorf("answer ID %d has question %v, want %s", r.Id, r.Question, want)
		}
		if a := AnswerStrings(r); len(a) != 1 || a[0] != fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff) {
			t.Errorf("answer ID %d (%s): %q", r.Id, want, a)
		}
		res.order = append(res.order, i)
	}
	return res
}

// TestPipelinedTCP: 100 queries in one write on one connection are all answered.
func TestPipelinedTCP(t *testing.T) {
	t.Parallel()
	const n = 100
	be := StartBackend(t, BackendOptions{Records: pipelineRecords(n)})
	d := startFE(t, do53FE(be.Addr))
	runPipeline(t, d.Addr("dns"), n)
	if got := be.Count(""); got != n {
		t.Errorf("backend saw %d queries, want %d", got, n)
	}
}

// TestPipelinedTCPOutOfOrder: the backend answers with random delays, so answers come
// back in another order than the queries; each still reaches its query.
func TestPipelinedTCPOutOfOrder(t *testing.T) {
	t.Parallel()
	const n = 100
	be := StartBackend(t, BackendOptions{Records: pipelineRecords(n), Jitter: 50 * time.Millisecond})
	d := startFE(t, do53FE(be.Addr))
	res := runPipeline(t, d.Addr("dns"), n)
	inOrder := true
	for i, q := range res.order {
		if q != i {
			inOrder = false
			break
		}
	}
	if inOrder {
		t.Error("answers came back in query order although the backend delayed them at random: the test did not exercise reordering")
	}
}

// TestPipelinedTCPBeyondInFlightLimit: 300 queries in one write, three times the default
// max_tcp_in_flight (100): reading pauses at the limit and resumes as answers leave, so
// every query is answered.
func TestPipelinedTCPBeyondInFlightLimit(t *testing.T) {
	t.Parallel()
	const n = 300
	be := StartBackend(t, BackendOptions{Records: pipelineRecords(n), Jitter: 5 * time.Millisecond})
	d := startFE(t, do53FE(be.Addr))
	runPipeline(t, d.Addr("dns"), n)
	if got := be.Count(""); got != n {
		t.Errorf("backend saw %d queries, want %d", got, n)
	}
}
