package rules

import (
	"fmt"
	"net/netip"
	"time"
)

// snapshot is one second of counts, merged across loops.
type snapshot struct {
	clients  []clientCount
	suffixes []suffixEntry
}

type suffixEntry struct {
	key   suffixKey
	count uint32
}

type suffixKey struct {
	rule int
	name string // lower-case wire form
}

// windowSum is the running sum of the last `seconds` snapshots: each second the newest
// snapshot is added and the one that left the window subtracted, so a rule's window costs
// the clients seen in two seconds, not in all of them.
type windowSum struct {
	seconds  int
	clients  map[clientKey]clientCount
	suffixes map[suffixKey]uint32
}

// Evaluate takes one second of counts from every loop, updates the windows, expires blocks,
// applies the rules and publishes the block set if it changed. Run calls it once a second;
// tests call it directly with a manual clock.
func (d *DynBlocks) Evaluate() {
	now := d.clock.Nanos()
	c := d.cfg.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	snap := d.collect()
	changed := d.expire(now)
	if c != nil {
		// Seconds without an evaluation (a stalled ticker, a test's clock jump) count as
		// seconds without traffic, so that a window never holds more than its seconds.
		if d.lastEval > 0 {
			missed := int((now-d.lastEval+int64(time.Second/2))/int64(time.Second)) - 1
			for i := 0; i < min(missed, c.maxSeconds+1); i++ {
				d.push(c, snapshot{})
			}
		}
		d.push(c, snap)
		for gi := range c.groups {
			if d.evalGroup(c, &c.groups[gi], now) {
				changed = true
			}
		}
	}
	d.lastEval = now
	if changed {
		d.publish()
	}
}

// collect swaps every loop's window for an empty one and merges what they counted.
func (d *DynBlocks) collect() snapshot {
	var s snapshot
	idx := map[clientKey]int{}
	sidx := map[suffixKey]int{}
	for i := range d.loops {
		lc := &d.loops[i]
		lc.mu.Lock()
		w := lc.cur
		lc.cur, lc.spare = lc.spare, lc.cur
		lc.mu.Unlock()
		d.stats.untracked.Add(w.untracked)
		for j := range w.clients {
			cc := &w.clients[j]
			if k, ok := idx[cc.key]; ok {
				s.clients[k].add(cc)
				continue
			}
			idx[cc.key] = len(s.clients)
			s.clients = append(s.clients, *cc)
		}
		for j := range w.suffixes {
			sc := &w.suffixes[j]
			key := suffixKey{rule: sc.rule, name: string(w.arena[sc.nameAt : sc.nameAt+sc.nameLn])}
			if k, ok := sidx[key]; ok {
				s.suffixes[k].count += sc.count
				continue
			}
			sidx[key] = len(s.suffixes)
			s.suffixes = append(s.suffixes, suffixEntry{key: key, count: sc.count})
		}
		w.reset()
	}
	return s
}

// push adds a second to the history and to every window sum.
func (d *DynBlocks) push(c *dynConfig, s snapshot) {
	size := c.maxSeconds + 1
	if len(d.history) != size {
		d.history, d.head, d.filled = make([]snapshot, size), 0, 0
		d.sums = map[int]*windowSum{}
	}
	for _, w := range c.windows {
		ws := d.sums[w]
		if ws == nil {
			ws = &windowSum{seconds: w, clients: map[clientKey]clientCount{}, suffixes: map[suffixKey]uint32{}}
			d.sums[w] = ws
		}
		for i := range s.clients {
			cc := &s.clients[i]
			sum := ws.clients[cc.key]
			sum.key = cc.key
			sum.add(cc)
			ws.clients[cc.key] = sum
		}
		for _, e := range s.suffixes {
			ws.suffixes[e.key] += e.count
		}
		if d.filled >= w {
			old := &d.history[(d.head-w+size)%size]
			for i := range old.clients {
				cc := &old.clients[i]
				sum := ws.clients[cc.key]
				sum.sub(cc)
				if sum.zero() {
					delete(ws.clients, cc.key)
				} else {
					ws.clients[cc.key] = sum
				}
			}
			for _, e := range old.suffixes {
				if n := ws.suffixes[e.key] - e.count; n == 0 {
					delete(ws.suffixes, e.key)
				} else {
					ws.suffixes[e.key] = n
				}
			}
		}
	}
	d.history[d.head] = s
	d.head = (d.head + 1) % size
	d.filled = min(d.filled+1, size)
}

// expire drops the blocks whose time is up and reports whether any was.
func (d *DynBlocks) expire(now int64) bool {
	changed := false
	for k, b := range d.blocks {
		if b.Until <= now {
			delete(d.blocks, k)
			d.stats.expired(b)
			if !b.Warning {
				d.log.Info("dynamic block expired", "block", k, "group", b.Group, "rule", b.Rule, "hits", b.Hits())
			}
			changed = true
		}
	}
	return changed
}

// evalGroup applies a group's rules to the window sums and reports whether a block changed.
func (d *DynBlocks) evalGroup(c *dynConfig, g *dynGroup, now int64) bool {
	changed := false
	byWindow := map[int]map[clientKey]clientCount{}
	for ri := range g.rules {
		r := &g.rules[ri]
		ws := d.sums[r.seconds]
		if ws == nil {
			continue
		}
		if r.typ == "suffix-match" {
			for key, n := range ws.suffixes {
				if key.rule != r.suffix {
					continue
				}
				if g.excludeDomains != nil && g.excludeDomains.Match([]byte(key.name)) {
					continue
				}
				if warn, hit := exceeds(uint64(n), r.rate, r.warnRate, r.seconds); hit || warn {
					b := d.newBlock(g, r, now, !hit)
					b.Suffix = NameString([]byte(key.name))
					changed = d.insert(b, now) || changed
				}
			}
			continue
		}
		clients := byWindow[r.seconds]
		if clients == nil {
			clients = d.aggregate(c, g, ws)
			byWindow[r.seconds] = clients
		}
		var globalHits, globalMisses uint64
		if r.typ == "cache-miss-ratio" && r.minGlobalHit > 0 {
			for _, cc := range ws.clients {
				globalHits += uint64(cc.cacheHits)
				globalMisses += uint64(cc.cacheMisses)
			}
			if globalHits+globalMisses == 0 || float64(globalHits)/float64(globalHits+globalMisses) < r.minGlobalHit {
				continue
			}
		}
		for k, cc := range clients {
			warn, hit := r.check(&cc)
			if !hit && !warn {
				continue
			}
			b := d.newBlock(g, r, now, !hit)
			a := k.addr()
			bits := g.bits6
			if a.Is4() {
				bits = g.bits4
			}
			b.Prefix = netip.PrefixFrom(a, bits).Masked()
			if len(g.ranges.prefixes) > 0 {
				b.except = &g.ranges
			}
			changed = d.insert(b, now) || changed
		}
	}
	return changed
}

// aggregate sums the finest-mask counts into the group's networks, leaving out excluded clients.
func (d *DynBlocks) aggregate(c *dynConfig, g *dynGroup, ws *windowSum) map[clientKey]clientCount {
	if g.bits4 == c.bits4 && g.bits6 == c.bits6 && len(g.ranges.prefixes) == 0 {
		return ws.clients
	}
	out := make(map[clientKey]clientCount, len(ws.clients))
	for k, cc := range ws.clients {
		a := k.addr()
		if inc, found := g.ranges.lookup(a); found && !inc {
			continue
		}
		gk := maskedKey(a, g.bits4, g.bits6)
		sum := out[gk]
		sum.key = gk
		sum.add(&cc)
		out[gk] = sum
	}
	return out
}

// exceeds compares a count over a window with a rate and a warning rate per second.
func exceeds(n, rate, warnRate uint64, seconds int) (warn, hit bool) {
	s := uint64(seconds)
	hit = rate > 0 && n > rate*s
	warn = !hit && warnRate > 0 && n > warnRate*s
	return warn, hit
}

// check applies a client rule to a client's counts.
func (r *dynRule) check(cc *clientCount) (warn, hit bool) {
	switch r.typ {
	case "query-rate":
		return exceeds(uint64(cc.queries), r.rate, r.warnRate, r.seconds)
	case "rcode-rate":
		return exceeds(uint64(cc.rcodes[r.rcode&0xf]), r.rate, r.warnRate, r.seconds)
	case "qtype-rate":
		return exceeds(uint64(cc.qtypes[r.qtypeSlot]), r.rate, r.warnRate, r.seconds)
	case "response-byte-rate":
		return exceeds(cc.bytes, r.rate, r.warnRate, r.seconds)
	}
	if cc.responses == 0 || cc.responses < r.minResponses {
		return false, false
	}
	var n uint32
	switch r.typ {
	case "rcode-ratio":
		n = cc.rcodes[r.rcode&0xf]
	case "cache-miss-ratio":
		n = cc.cacheMisses
	case "allowed-rcodes-ratio":
		n = cc.responses
		for rc, ok := range r.allowed {
			if ok {
				n -= cc.rcodes[rc]
			}
		}
	default:
		return false, false
	}
	ratio := float64(n) / float64(cc.responses)
	hit = ratio > r.ratio
	warn = !hit && r.warnRat > 0 && ratio > r.warnRat
	return warn, hit
}

func (d *DynBlocks) newBlock(g *dynGroup, r *dynRule, now int64, warning bool) *Block {
	b := &Block{Action: r.action, TagName: r.tagName, TagValue: r.tagVal, Reason: r.comment, Group: g.name,
		Rule: r.typ, Warning: warning, Since: now, Until: now + int64(r.duration), hits: make([]hitCounter, len(d.loops))}
	if warning {
		b.Action = BlockNoOp
	}
	return b
}

// insert records a block, or extends the one in force for the same key, and reports
// whether the published set must change. A warning never replaces a block.
func (d *DynBlocks) insert(b *Block, now int64) bool {
	key := b.key()
	old := d.blocks[key]
	if old != nil && old.Until > now {
		switch {
		case b.Warning && !old.Warning:
			return false
		case !b.Warning && old.Warning:
		case b.Until <= old.Until:
			return false
		default:
			// Extend: a published block is immutable, so the longer one replaces it and
			// keeps its counters and start.
			b.hits, b.Since = old.hits, old.Since
			d.blocks[key] = b
			d.notify(b, now)
			return true
		}
	}
	d.blocks[key] = b
	d.stats.inserted(b)
	if b.Warning {
		d.logBlock("dynamic block warning", b, now)
	} else {
		d.logBlock("dynamic block", b, now)
		d.notify(b, now)
	}
	return !b.Warning || old != nil
}

// String describes a rule for logs and tests.
func (r *dynRule) String() string { return fmt.Sprintf("%s %d/s over %ds", r.typ, r.rate, r.seconds) }

func (d *DynBlocks) notify(b *Block, now int64) {
	if d.onBlock != nil && !b.Warning {
		d.onBlock(b.info(now, time.Now()))
	}
}
