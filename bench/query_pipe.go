package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// pipeConn drives one UDP socket, TCP connection or DoT connection with up
// to inflight queries outstanding: a writer goroutine sends a query for every
// free slot (all free slots in one write on streams), a reader matches
// answers to pending queries by ID, and a sweeper counts queries unanswered
// after the timeout as lost and frees their slots.
//
// The pending table is shared by the three goroutines behind mu; the
// histogram and rcodes belong to the reader.
type pipeConn struct {
	queryWorker
	conn    net.Conn
	framed  bool // 2-byte length prefix (TCP, DoT); datagrams otherwise
	qs      []wireQuery
	timeout time.Duration
	slots   chan struct{} // free slots: a token per query that may be sent

	mu      sync.Mutex
	pending map[uint16]pendingQuery
}

type pendingQuery struct {
	sent time.Time
	q    int32 // index into qs
}

func dialPipe(ctx context.Context, o QueryOptions, cfg *tls.Config, qs []wireQuery) (*pipeConn, error) {
	network := "tcp"
	if o.Proto == "udp" {
		network = "udp"
	}
	d := net.Dialer{Timeout: o.Timeout}
	conn, err := d.DialContext(ctx, network, o.Target)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		tc := tls.Client(conn, cfg)
		tc.SetDeadline(time.Now().Add(o.Timeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, err
		}
		tc.SetDeadline(time.Time{})
		conn = tc
	}
	c := &pipeConn{
		conn:    conn,
		framed:  network == "tcp",
		qs:      qs,
		timeout: o.Timeout,
		slots:   make(chan struct{}, o.Inflight),
		pending: make(map[uint16]pendingQuery, o.Inflight),
	}
	for range o.Inflight {
		c.slots <- struct{}{}
	}
	if err := c.warm(); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// warm sends one query and waits for its answer before the clock starts, so
// that the run measures warm connections and a broken target fails at once
// with its real error.
func (c *pipeConn) warm() error {
	q := &c.qs[0]
	id := uint16(rand.Uint32())
	b := c.appendQuery(nil, id, q)
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := c.conn.Write(b); err != nil {
		return err
	}
	var resp []byte
	if c.framed {
		var lb [2]byte
		if _, err := io.ReadFull(c.conn, lb[:]); err != nil {
			return err
		}
		resp = make([]byte, binary.BigEndian.Uint16(lb[:]))
		if _, err := io.ReadFull(c.conn, resp); err != nil {
			return err
		}
	} else {
		resp = make([]byte, 65535)
		n, err := c.conn.Read(resp)
		if err != nil {
			return err
		}
		resp = resp[:n]
	}
	if _, kind := checkAnswer(resp, id, q); kind != "" {
		return errors.New("first answer: " + kind)
	}
	return nil
}

func (c *pipeConn) appendQuery(b []byte, id uint16, q *wireQuery) []byte {
	if c.framed {
		b = append(b, byte(len(q.msg)>>8), byte(len(q.msg)))
	}
	off := len(b)
	b = append(b, q.msg...)
	binary.BigEndian.PutUint16(b[off:], id)
	return b
}

func (c *pipeConn) workers() []*queryWorker { return []*queryWorker{&c.queryWorker} }

func (c *pipeConn) stop() { c.conn.Close() }

func (c *pipeConn) run(ctx context.Context, end time.Time) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.read(end)
	}()
	go func() {
		defer wg.Done()
		c.sweep(ctx)
	}()
	c.write(ctx, end)
	wg.Wait()
}

func (c *pipeConn) write(ctx context.Context, end time.Time) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	next := rng.IntN(len(c.qs))
	limit := cap(c.slots)
	buf := make([]byte, 0, limit*(len(c.qs[0].msg)+2))
	var sizes []int // datagram sizes, for UDP
	for {
		select {
		case <-c.slots:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < limit {
			select {
			case <-c.slots:
				n++
			default:
				break more
			}
		}
		now := time.Now()
		if !now.Before(end) {
			return
		}
		buf, sizes = buf[:0], sizes[:0]
		c.mu.Lock()
		for range n {
			id := uint16(rng.Uint32())
			for {
				if _, busy := c.pending[id]; !busy {
					break
				}
				id = uint16(rng.Uint32())
			}
			c.pending[id] = pendingQuery{sent: now, q: int32(next)}
			before := len(buf)
			buf = c.appendQuery(buf, id, &c.qs[next])
			sizes = append(sizes, len(buf)-before)
			next++
			if next == len(c.qs) {
				next = 0
			}
		}
		c.mu.Unlock()
		c.sent += uint64(n)
		if c.framed {
			if _, err := c.conn.Write(buf); err != nil {
				if time.Now().Before(end) {
					c.fail(errorKind(err))
				}
				return // the sweeper will not matter: the stream is gone
			}
			continue
		}
		off := 0
		for _, sz := range sizes {
			// A failed datagram is left pending: the sweeper counts it lost.
			if _, err := c.conn.Write(buf[off : off+sz]); err != nil && time.Now().Before(end) {
				c.fail("send: " + errorKind(err))
			}
			off += sz
		}
	}
}

func (c *pipeConn) read(end time.Time) {
	var msg []byte
	var br *bufio.Reader
	if c.framed {
		br = bufio.NewReaderSize(c.conn, 64<<10)
	} else {
		msg = make([]byte, 65535)
	}
	var lb [2]byte
	for {
		var resp []byte
		var err error
		if c.framed {
			if _, err = io.ReadFull(br, lb[:]); err == nil {
				n := int(binary.BigEndian.Uint16(lb[:]))
				if cap(msg) < n {
					msg = make([]byte, n)
				}
				resp = msg[:n]
				_, err = io.ReadFull(br, resp)
			}
		} else {
			var n int
			n, err = c.conn.Read(msg)
			resp = msg[:n]
		}
		now := time.Now()
		if now.After(end) {
			return
		}
		if err != nil {
			c.fail("read: " + errorKind(err))
			if c.framed || errors.Is(err, net.ErrClosed) {
				return
			}
			continue // UDP: an ICMP error reported on a connected socket
		}
		if len(resp) < 2 {
			c.fail("short answer")
			continue
		}
		id := binary.BigEndian.Uint16(resp)
		c.mu.Lock()
		p, ok := c.pending[id]
		if ok {
			delete(c.pending, id)
		}
		c.mu.Unlock()
		if !ok {
			// No such query outstanding: a wrong ID, a duplicate, or an
			// answer that came after its query was counted lost.
			c.fail("unexpected id")
			continue
		}
		rcode, kind := checkAnswer(resp, id, &c.qs[p.q])
		c.slots <- struct{}{}
		if rcode != "" {
			c.answered(rcode)
		}
		if kind != "" {
			c.fail(kind)
			continue
		}
		c.hist.record(now.Sub(p.sent))
		c.ok.Add(1)
	}
}

func (c *pipeConn) sweep(ctx context.Context) {
	every := max(c.timeout/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			var lost int
			c.mu.Lock()
			for id, p := range c.pending {
				if now.Sub(p.sent) > c.timeout {
					delete(c.pending, id)
					lost++
				}
			}
			c.mu.Unlock()
			for range lost {
				c.fail("timeout")
				c.slots <- struct{}{}
			}
		}
	}
}
