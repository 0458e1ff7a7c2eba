package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"time"

	"github.com/dnsfront/dnsfront/doh"
	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// Listeners. Every address of a bind has one socket per event loop and network (TCP for
// every bind, UDP too for Do53), opened by the engine (listen_socket.go) and polled by its
// loop. The set follows the binds: a reload prepares the sockets of new addresses beside
// the running ones (so that a bind error changes nothing) and commits by handing them to
// the loops and taking back those of the addresses gone; connections of a bind removed or
// replaced end gracefully, those of unchanged binds are not touched. At a binary upgrade
// the sockets are handed to the successor (Sockets), which adopts them (Options.Inherit).

// listenKey is one address of one network ("tcp" or "udp").
type listenKey struct {
	network string
	addr    netip.AddrPort
}

func (k listenKey) String() string { return k.network + "://" + k.addr.String() }

// listenSock is a socket polled by event loop loop.
type listenSock struct {
	key  listenKey
	fd   int
	loop int
}

// bindTable is the set of binds in force, read by the loops through an atomic pointer.
type bindTable struct {
	list   []*BindOptions
	byAddr map[netip.AddrPort]*BindOptions
	// cache maps a listener's address value (gnet hands the same net.Addr for every
	// connection of a listener) to its bind, per loop: each loop uses only its own map.
	cache []map[net.Addr]*BindOptions
}

func newBindTable(list []*BindOptions, loops int) *bindTable {
	t := &bindTable{list: list, byAddr: map[netip.AddrPort]*BindOptions{}, cache: make([]map[net.Addr]*BindOptions, loops)}
	for _, b := range list {
		t.byAddr[unmapped(b.Addr)] = b
	}
	for i := range t.cache {
		t.cache[i] = map[net.Addr]*BindOptions{}
	}
	return t
}

func unmapped(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// BindPlan is a set of binds prepared beside the running ones: the sockets of its new
// addresses are open. Commit it with CommitBinds, or Abort it.
type BindPlan struct {
	binds []*BindOptions
	open  []listenSock // opened (or inherited), for the loops at commit
	// inherited are the descriptors of open that came from Options.Inherit, reclaimed
	// those that were draining (a removed bind's address added again): Abort puts them
	// back.
	inherited map[int]listenKey
	reclaimed map[int]drainingSock
	close     []listenSock   // sockets of addresses no bind has any more
	removed   []*BindOptions // binds whose connections end
	keep      map[listenKey]bool
	e         *Engine
	committed bool
}

// Added lists the addresses the plan starts listening on.
func (p *BindPlan) Added() []string { return keyNames(p.open) }

// Removed lists the addresses the plan stops listening on.
func (p *BindPlan) Removed() []string { return keyNames(p.close) }

func keyNames(socks []listenSock) []string {
	var out []string
	seen := map[listenKey]bool{}
	for _, s := range socks {
		if !seen[s.key] {
			seen[s.key] = true
			out = append(out, s.key.String())
		}
	}
	return out
}

// Abort closes what the plan opened; the running binds are untouched.
func (p *BindPlan) Abort() {
	if p == nil || p.committed {
		return
	}
	p.e.listenMu.Lock()
	defer p.e.listenMu.Unlock()
	p.abort()
}

func (p *BindPlan) abort() {
	p.committed = true
	over := map[int]bool{}
	for _, s := range p.open {
		if k, ok := p.inherited[s.fd]; ok && p.e.inherit != nil {
			p.e.inherit[k] = append(p.e.inherit[k], s.fd)
			continue
		}
		if d, ok := p.reclaimed[s.fd]; ok {
			if d.drain.over {
				over[s.fd] = true // its drain ended meanwhile and left it to the plan
				continue
			}
			p.e.udpDrain[s.key] = append(p.e.udpDrain[s.key], d)
			continue
		}
		_ = unix.Close(s.fd)
	}
	p.e.closeListeners(over)
}

// A UDP socket of a removed bind is no longer read but stays open for drain_timeout: the
// answers to the queries it brought leave from it. While it is open it stays in the
// kernel's SO_REUSEPORT group of its address, which hands it a share of the datagrams
// sent there, so a bind added again on the address takes it back (prepareBinds) rather
// than open new sockets beside it that would leave that share unread.

// udpDrain is the drain of the UDP sockets a commit removed; over once it ended (listenMu).
type udpDrain struct{ over bool }

// drainingSock is a UDP socket of a removed bind, open until its drain ends.
type drainingSock struct {
	listenSock
	drain *udpDrain
}

// endUDPDrain closes the sockets of drain d that no plan took back.
func (e *Engine) endUDPDrain(d *udpDrain) {
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	d.over = true
	fds := map[int]bool{}
	for k, list := range e.udpDrain {
		keep := list[:0]
		for _, s := range list {
			if s.drain == d {
				fds[s.fd] = true
			} else {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 {
			delete(e.udpDrain, k)
		} else {
			e.udpDrain[k] = keep
		}
	}
	e.closeListeners(fds)
}

// closeListeners closes UDP listeners the loops no longer read, once every loop has made
// them unanswerable (forgetListeners): an answer still to come for a query they brought is
// dropped rather than sent on a number the kernel may give to another socket.
func (e *Engine) closeListeners(fds map[int]bool) {
	if len(fds) == 0 {
		return
	}
	e.onLoops(func(l *loop) { l.forgetListeners(fds) })
	for fd := range fds {
		_ = unix.Close(fd)
	}
}

// setupBind checks a bind and builds what its connections are made with.
func (e *Engine) setupBind(b *BindOptions) error {
	switch b.Protocol {
	case "Do53":
	case "DoT":
		if b.TLSStore == nil || b.Handshaker == nil {
			return fmt.Errorf("engine: DoT bind %s has no certificates", b.Addr)
		}
		if b.TLSStore.Loops() != e.opts.Loops {
			return fmt.Errorf("engine: bind %s: TLS store built for %d loops, engine has %d", b.Addr, b.TLSStore.Loops(), e.opts.Loops)
		}
		b.newStream = newDoTStream(b)
	case "DoH":
		if b.DoH == nil {
			b.DoH = doh.DefaultOptions()
		}
		// A stream is a query in flight: max_tcp_in_flight bounds the streams a
		// connection may open (REFUSED_STREAM beyond, announced in SETTINGS) and
		// the HTTP/1.1 pipelining depth, as it bounds DoT and Do53 TCP.
		if o := *b.DoH; o.MaxConcurrentStreams == 0 || int64(o.MaxConcurrentStreams) > int64(e.opts.MaxTCPInFlight) {
			o.MaxConcurrentStreams = uint32(e.opts.MaxTCPInFlight)
			b.DoH = &o
		}
		if b.TLSStore != nil && b.TLSStore.Loops() != e.opts.Loops {
			return fmt.Errorf("engine: bind %s: TLS store built for %d loops, engine has %d", b.Addr, b.TLSStore.Loops(), e.opts.Loops)
		}
		b.newStream = newDoHStream(b)
	default:
		return fmt.Errorf("engine: bind %s: protocol %q is not served by the event loops", b.Addr, b.Protocol)
	}
	return nil
}

// sameBind reports whether a running bind a serves what b describes: every exported
// field is the same (a field added to BindOptions counts without a change here). Pointers
// are the same object (the TLS store and handshaker of an unchanged TLS bind are kept),
// except the DoH options, which the server builds anew at each reload.
func sameBind(a, b *BindOptions) bool {
	if !sameExported(a.DoH, b.DoH) {
		return false
	}
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if !f.IsExported() || f.Name == "DoH" {
			continue
		}
		x, y := va.Field(i), vb.Field(i)
		if f.Type.Kind() == reflect.Pointer {
			if x.Pointer() != y.Pointer() {
				return false
			}
			continue
		}
		if !reflect.DeepEqual(x.Interface(), y.Interface()) {
			return false
		}
	}
	return true
}

// sameExported compares two option structs by their exported fields: the unexported
// ones are caches filled on use (doh.Options resolves its defaults once).
func sameExported[T any](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range va.NumField() {
		if !va.Type().Field(i).IsExported() {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}

func bindKeys(b *BindOptions) []listenKey {
	ap := unmapped(b.Addr)
	if b.Protocol == "Do53" {
		return []listenKey{{"udp", ap}, {"tcp", ap}}
	}
	return []listenKey{{"tcp", ap}}
}

// PrepareBinds opens the sockets of the addresses binds adds to the running ones and
// checks every bind; nothing served changes. A bind that is unchanged keeps its
// connections; one that is new, changed or gone is reported by the plan.
func (e *Engine) PrepareBinds(binds []BindOptions) (*BindPlan, error) {
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	return e.prepareBinds(binds)
}

func (e *Engine) prepareBinds(binds []BindOptions) (*BindPlan, error) {
	cur := e.binds.Load()
	p := &BindPlan{e: e, inherited: map[int]listenKey{}, reclaimed: map[int]drainingSock{}, keep: map[listenKey]bool{}}
	seen := map[netip.AddrPort]bool{}
	for i := range binds {
		nb := binds[i]
		if seen[unmapped(nb.Addr)] {
			return nil, fmt.Errorf("engine: two binds on %s", nb.Addr)
		}
		seen[unmapped(nb.Addr)] = true
		if err := e.setupBind(&nb); err != nil {
			return nil, err
		}
		b := &nb
		if cur != nil {
			if old := cur.byAddr[unmapped(nb.Addr)]; old != nil && sameBind(old, b) {
				b = old
			}
		}
		p.binds = append(p.binds, b)
	}
	running := map[listenKey]bool{}
	for _, s := range e.socks {
		running[s.key] = true
	}
	fail := func(err error) (*BindPlan, error) {
		p.abort()
		return nil, err
	}
	for _, b := range p.binds {
		for _, k := range bindKeys(b) {
			p.keep[k] = true
			if running[k] {
				continue
			}
			running[k] = true
			// Every inherited or draining socket of the address is served (what is
			// queued on it is read), spread over the loops; loops left without one get
			// a new one.
			inh := e.inherit[k]
			delete(e.inherit, k)
			for j, fd := range inh {
				p.inherited[fd] = k
				p.open = append(p.open, listenSock{key: k, fd: fd, loop: j % e.opts.Loops})
			}
			n := len(inh)
			for _, d := range e.udpDrain[k] {
				p.reclaimed[d.fd] = d
				p.open = append(p.open, listenSock{key: k, fd: d.fd, loop: n % e.opts.Loops})
				n++
			}
			delete(e.udpDrain, k)
			for i := n; i < e.opts.Loops; i++ {
				fd, err := openSocket(k.network, k.addr)
				if err != nil {
					return fail(err)
				}
				p.open = append(p.open, listenSock{key: k, fd: fd, loop: i})
			}
		}
	}
	for _, s := range e.socks {
		if !p.keep[s.key] {
			p.close = append(p.close, s)
		}
	}
	if cur != nil {
		kept := map[*BindOptions]bool{}
		for _, b := range p.binds {
			kept[b] = true
		}
		for _, b := range cur.list {
			if !kept[b] {
				p.removed = append(p.removed, b)
			}
		}
	}
	return p, nil
}

// CommitBinds puts a prepared plan in force: the sockets of addresses gone stop being
// polled and close, the new binds take over, the new sockets are polled, and the
// connections of binds removed or replaced end gracefully (their queries in flight are
// answered, then close_notify, GOAWAY or FIN): drain bounds the wait, after which the
// remaining ones are closed. done, when not nil, runs once they are all gone. It cannot
// fail: a socket a loop refuses is logged and closed.
func (e *Engine) CommitBinds(p *BindPlan, drain time.Duration, done func()) {
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	e.commitBinds(p, drain, done)
}

func (e *Engine) commitBinds(p *BindPlan, drain time.Duration, done func()) {
	p.committed = true
	ctx := context.Background()
	// A TCP listener closes at once, so that new connections are refused. A UDP socket
	// only stops being read: the answers to the queries it brought are sent from it, so
	// it closes with the drain.
	var udp []listenSock
	for _, s := range p.close {
		if s.key.network == "udp" {
			udp = append(udp, s)
		}
		switch {
		case !e.listening:
			_ = unix.Close(s.fd)
		case s.key.network == "udp":
			if err := e.eng.DetachListener(ctx, s.loop, s.fd); err != nil {
				e.log.Warn("detaching a listener", "listener", s.key.String(), "err", err)
			}
		default:
			if err := e.eng.RemoveListener(ctx, s.loop, s.fd); err != nil {
				e.log.Warn("closing a listener", "listener", s.key.String(), "err", err)
			}
		}
	}
	if !e.listening {
		udp = nil
	}
	socks := e.socks[:0:0]
	for _, s := range e.socks {
		if p.keep[s.key] {
			socks = append(socks, s)
		}
	}
	e.binds.Store(newBindTable(p.binds, e.opts.Loops))
	refused := map[int]bool{}
	for _, s := range p.open {
		if e.listening {
			if err := e.eng.AddListener(ctx, s.loop, s.fd); err != nil {
				e.log.Error("a loop refused a listener", "listener", s.key.String(), "loop", s.loop, "err", err)
				if _, ok := p.reclaimed[s.fd]; ok {
					refused[s.fd] = true // queries in flight may still name it
				} else {
					_ = unix.Close(s.fd)
				}
				continue
			}
		}
		socks = append(socks, s)
	}
	e.socks = socks
	e.closeListeners(refused)
	var d *udpDrain
	if len(udp) > 0 {
		d = &udpDrain{}
		if e.udpDrain == nil {
			e.udpDrain = map[listenKey][]drainingSock{}
		}
		for _, s := range udp {
			e.udpDrain[s.key] = append(e.udpDrain[s.key], drainingSock{s, d})
		}
	}
	e.endBinds(p.removed, d != nil, drain, func() {
		if d != nil {
			e.endUDPDrain(d)
		}
		if done != nil {
			done()
		}
	})
}

// endBinds ends the connections of binds gone: gracefully at once, and closed at drain;
// done runs then, off the caller's goroutine when there was anything to wait for (wait:
// UDP sockets to close).
func (e *Engine) endBinds(gone []*BindOptions, wait bool, drain time.Duration, done func()) {
	if len(gone) == 0 && !wait {
		done()
		return
	}
	set := map[*BindOptions]bool{}
	for _, b := range gone {
		set[b] = true
	}
	e.onLoops(func(l *loop) {
		for c := range l.clients {
			if set[c.bind] && !c.closed && !c.lingering {
				c.closing = true
				l.markDirty(c)
			}
		}
	})
	go func() {
		t := time.NewTimer(drain)
		defer t.Stop()
		select {
		case <-t.C:
		case <-e.ctx.Done():
		}
		e.onLoops(func(l *loop) {
			for c := range l.clients {
				if set[c.bind] && !c.closed {
					c.closeNow()
				}
			}
		})
		if done != nil {
			done()
		}
	}()
}

// onLoops runs f on every loop, inside a pass, and waits until each has run it.
func (e *Engine) onLoops(f func(l *loop)) {
	for _, l := range e.loopList() {
		ran := make(chan struct{})
		err := l.el.Execute(context.Background(), gnet.RunnableFunc(func(context.Context) error {
			defer close(ran)
			outer := l.begin()
			defer l.end(outer)
			f(l)
			return nil
		}))
		if err != nil {
			continue
		}
		select {
		case <-ran:
		case <-e.stopped:
		}
	}
}

// Socket is a listening socket handed to a successor process.
type Socket struct {
	Network string // "tcp" (listening) or "udp"
	Addr    netip.AddrPort
	FD      int // a duplicate, the caller's to close
}

// Sockets duplicates every listening socket, for a successor to adopt. The engine keeps
// serving them until StopListening.
func (e *Engine) Sockets() ([]Socket, error) {
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	var out []Socket
	for _, s := range e.socks {
		fd, err := unix.FcntlInt(uintptr(s.fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			for _, o := range out {
				_ = unix.Close(o.FD)
			}
			return nil, fmt.Errorf("engine: duplicating %s: %w", s.key, err)
		}
		out = append(out, Socket{Network: s.key.network, Addr: s.key.addr, FD: fd})
	}
	return out, nil
}

// StopListening stops polling every listening socket and closes the engine's descriptors
// of them (a successor holding duplicates keeps them open, with what is queued on them).
// Established connections stay; Drain ends them.
func (e *Engine) StopListening() {
	e.listenMu.Lock()
	defer e.listenMu.Unlock()
	if !e.listening {
		return
	}
	e.listening = false
	for _, s := range e.socks {
		if s.key.network == "udp" {
			// Answers to the queries it brought leave from it; it closes at Stop.
			if err := e.eng.DetachListener(context.Background(), s.loop, s.fd); err != nil {
				e.log.Warn("detaching a listener", "listener", s.key.String(), "err", err)
			}
			e.detached = append(e.detached, s.fd)
			continue
		}
		if err := e.eng.RemoveListener(context.Background(), s.loop, s.fd); err != nil {
			e.log.Warn("closing a listener", "listener", s.key.String(), "err", err)
		}
	}
	e.socks = nil
}

// Handover ends the engine's work once its listeners went to a successor
// (StopListening): every stream connection ends gracefully (its queries in flight are
// answered, then close_notify, GOAWAY or FIN; a client retries what it sent after that
// on a new connection, which the successor accepts), every query in flight (UDP ones
// too) is answered, then the loops stop. ctx bounds the wait (drain_timeout).
func (e *Engine) Handover(ctx context.Context) error {
	e.goodbye(ctx)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for e.Stats().Outstanding > 0 || e.connections() > 0 {
		select {
		case <-ctx.Done():
			e.log.Warn("drain timeout: stopping with queries in flight or connections open",
				"outstanding", e.Stats().Outstanding, "connections", e.connections())
			return e.Stop()
		case <-tick.C:
		}
	}
	return e.Stop()
}

// adoptInherited sorts the sockets of a predecessor by address, for prepareBinds.
func (e *Engine) adoptInherited(fds []int) {
	e.inherit = map[listenKey][]int{}
	for _, fd := range fds {
		network, ap, err := socketInfo(fd)
		if err != nil {
			e.log.Warn("inherited descriptor is not a listener; closed", "fd", fd, "err", err)
			_ = unix.Close(fd)
			continue
		}
		k := listenKey{network, ap}
		e.inherit[k] = append(e.inherit[k], fd)
	}
}

// closeUnclaimed closes the inherited sockets no bind took: their addresses are gone.
func (e *Engine) closeUnclaimed() {
	for k, fds := range e.inherit {
		for _, fd := range fds {
			e.log.Info("inherited listener not in the configuration; closed", "listener", k.String())
			_ = unix.Close(fd)
		}
	}
	e.inherit = nil
}
