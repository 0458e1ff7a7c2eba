package doh

import (
	"testing"
	"time"
)

// FuzzSessionFeed feeds arbitrary bytes, split at arbitrary points, to both
// protocols. The session must never panic, must keep within its memory
// bound, and answers must be accepted at any time.
func FuzzSessionFeed(f *testing.F) {
	f.Add(h2Requests(f, "a.example"), uint8(3), uint8(0))
	f.Add(h1Requests(f, "a.example"), uint8(1), uint8(1))
	f.Add(h1Requests(f, "b.example"), uint8(0), uint8(2))
	f.Add([]byte("GET /dns-query?dns=AAABAAABAAAAAAAAAWEHZXhhbXBsZQAAAQAB HTTP/1.1\r\n\r\n"), uint8(5), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, step uint8, proto uint8) {
		opts := DefaultOptions()
		opts.MaxConnMemory = 64 << 10
		now := time.Unix(0, 0)
		s := NewSession(opts, Proto(proto%3), func() time.Time { return now })
		var qs []Query
		var out []byte
		n := int(step) + 1
		for len(in) > 0 && !s.Closed() {
			k := min(n, len(in))
			qs = qs[:0]
			s.Feed(in[:k], func(q Query) { qs = append(qs, q) })
			in = in[k:]
			for i, q := range qs {
				if err := validateQuery(q.Msg); err != nil {
					t.Fatalf("emitted an invalid query: %v", err)
				}
				if i%2 == 0 {
					s.Respond(q.ID, q.Msg)
				} else {
					s.Fail(q.ID, 504)
				}
			}
			if m := s.memory(); m > 2*opts.MaxConnMemory {
				t.Fatalf("memory %d over bound", m)
			}
			out = s.AppendOutput(out[:0])
			now = now.Add(time.Second)
		}
		s.Shutdown()
		s.Expire()
		s.AppendOutput(out[:0])
	})
}
