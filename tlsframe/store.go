package tlsframe

import (
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
)

// maxPlaintext is the largest plaintext of one TLS record.
const maxPlaintext = 16384

// Store holds the current Snapshot of one TLS bind for each event loop.
//
// Concurrency: Publish, Current and Close are safe for concurrent use. Each
// loop reads only its own slot (an atomic pointer), and the scratch buffers
// of a slot are used only by that loop's goroutine.
type Store struct {
	mu      sync.Mutex // serialises Publish and ticket key updates
	cur     atomic.Pointer[Snapshot]
	tickets *TicketKeys
	loops   []loopSlot
}

// loopView is what a loop's handshakes use: a snapshot and that loop's own
// clone of its tls.Config, so crypto/tls's per-config locks (ticket keys)
// are not shared between cores.
type loopView struct {
	snap *Snapshot
	cfg  *tls.Config
}

type loopSlot struct {
	view atomic.Pointer[loopView]
	// Loop-only scratch: decrypted plaintext of a read pass, and the records
	// of a write pass gathered into one socket write.
	plain []byte
	out   []byte
	_     [64]byte // keep slots of different loops off one cache line
}

// NewStore makes a store for a bind served by loops event loops, numbered
// 0..loops-1 by the caller. Nothing is served until the first Publish.
func NewStore(loops int) *Store {
	if loops < 1 {
		loops = 1
	}
	return &Store{loops: make([]loopSlot, loops)}
}

// Loops is the number of loop slots.
func (st *Store) Loops() int { return len(st.loops) }

// Publish makes s the snapshot for new handshakes on every loop. Handshakes
// in flight and established connections keep the one they started with.
func (st *Store) Publish(s *Snapshot) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s.tickets != st.tickets {
		if st.tickets != nil {
			st.tickets.unsubscribe(st)
		}
		st.tickets = s.tickets
		if st.tickets != nil {
			st.tickets.subscribe(st)
		}
	}
	var keys [][32]byte
	if s.tickets != nil {
		keys = s.tickets.Keys()
	}
	for i := range st.loops {
		cfg := s.config.Clone()
		if keys != nil {
			cfg.SetSessionTicketKeys(keys)
		}
		st.loops[i].view.Store(&loopView{snap: s, cfg: cfg})
	}
	st.cur.Store(s)
}

// Current is the last published snapshot (nil before the first Publish).
func (st *Store) Current() *Snapshot { return st.cur.Load() }

// Close detaches the store from its ticket key ring (for a removed bind).
func (st *Store) Close() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.tickets != nil {
		st.tickets.unsubscribe(st)
		st.tickets = nil
	}
}

func (st *Store) applyTicketKeys(keys [][32]byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := range st.loops {
		if v := st.loops[i].view.Load(); v != nil {
			v.cfg.SetSessionTicketKeys(keys)
		}
	}
}

func (st *Store) slot(loop int) (*loopSlot, error) {
	if loop < 0 || loop >= len(st.loops) {
		return nil, fmt.Errorf("tlsframe: loop %d out of range [0,%d)", loop, len(st.loops))
	}
	return &st.loops[loop], nil
}
