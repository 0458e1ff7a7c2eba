package engine

import (
	"net/netip"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dnsfront/dnsfront/engine/rules"
)

// The rules (engine/rules) run on the loop between the ACL and the cache. The calls into
// the engine's query path are one line each (handleQuery, onBackendAnswer, finish,
// cacheInsert); what the rules decide lives here.

// policyState is what the rules decided for one query and what its answer must carry.
// It lives in the pending entry and is cleared with it.
type policyState struct {
	skipCache bool
	hasMaxTTL bool
	maxTTL    uint32
	ede       *rules.EDE // points into the immutable rule set
	delay     time.Duration
	// hasTempFailTTL: a SetTempFailureCacheTTL rule gave the cache lifetime of a
	// SERVFAIL or REFUSED answer to this query (tempFailTTL).
	hasTempFailTTL bool
	tempFailTTL    uint32
	// tags are the query rules' tags, for the response rules (their strings point into
	// the immutable rule set or the block set).
	tags rules.Tags
	// client is the address the rules saw (the forwarded-for one behind a trusted proxy),
	// for the response rules and the dynamic rules' response counts.
	client netip.Addr
	// ecs is what the EDNS Client Subnet actions decided (ecs.go).
	ecs   rules.ECSPolicy
	ruled bool     // the rules ran on this query
	tap   tapState // dnstap (dnstap.go)
}

// loopPolicy is a loop's rule state: the Query the rules read, reused from query to query,
// its scratch buffers, the delayed answers and the counters.
type loopPolicy struct {
	rq rules.Query
	// stale: rq.Now is read again at the next query; set at the start of each pass, so
	// the clock is read once per pass, not per query.
	stale bool
	ede   []byte // the client's copy of an answer with an Extended DNS Error
	delay delayQueue
	stats policyCounters
}

// policyCounters count the rules' outcomes on one loop; the scraper reads them atomically.
type policyCounters struct {
	drops      atomic.Uint64 // queries dropped by a rule or a block
	answered   atomic.Uint64 // answered by a rule or block (RCode, Spoof, TC)
	httpStatus atomic.Uint64 // DoH answered with a rule's HTTP status
	respDrops  atomic.Uint64 // answers dropped by response rules
	delayed    atomic.Uint64 // UDP answers held on the loop's delay timer
}

var ruleProtos = [protoCount]rules.Protocol{
	protoUDP: rules.DoUDP, protoTCP: rules.DoTCP, protoDoT: rules.DoT, protoDoH: rules.DoH,
	protoDoQ: rules.DoQ, protoDoH3: rules.DoH3,
}

// rulesActive reports whether queries go through the rules at all.
func (l *loop) rulesActive(st *State) bool { return st.Rules != nil || l.e.opts.Dyn != nil }

// decide runs the dynamic blocks and the query rules on the query in msg. It returns the
// pool to use and true to go on (cache, backend), or false when the query was answered or
// dropped here (p is recycled then).
func (l *loop) decide(st *State, bind *BindOptions, msg []byte, p *pending, pool *Pool) (*Pool, bool) {
	rq := &l.pol.rq
	if _, err := rules.ParseQuery(rq, msg); err != nil {
		// The engine's own parser accepted it: let it through unruled.
		return pool, true
	}
	if l.pol.stale || rq.Now == 0 {
		l.pol.stale = false
		if c := l.e.opts.Clock; c != nil {
			rq.Now = c.Nanos()
		}
	}
	rq.Loop = l.idx
	rq.Proto = ruleProtos[p.proto]
	rq.LocalAddr = bind.Addr.Addr()
	rq.LocalPort = bind.Addr.Port()
	rq.SNI, rq.HTTPPath, rq.Headers = "", "", nil
	if p.client != nil {
		rq.SNI = streamSNI(p.client.stream)
	}
	if h := l.dohReq; h != nil && p.proto == protoDoH {
		// Views into the DoH session's buffers, valid while the query is being handed
		// over: the query rules, the only readers, run before it returns.
		rq.HTTPPath, rq.Headers = viewString(h.Path()), h
	}
	if p.proto == protoUDP {
		rq.Client = p.pp.src.Addr()
	} else if l.forwardedFor.IsValid() {
		rq.Client = l.forwardedFor.Unmap()
	} else {
		rq.Client = p.client.peer.Addr().Unmap()
	}
	p.pol.client = rq.Client
	p.pol.ruled = true
	dyn := l.e.opts.Dyn
	if dyn != nil {
		dyn.CountQuery(rq)
	}
	v := rules.Decide(dyn, st.Rules, rq)
	l.tapQuery(st, bind, p, msg, &v)
	switch {
	case v.Kind == rules.KindDrop:
		l.pol.stats.drops.Add(1)
		l.dropQuery(p)
		return nil, false
	case v.Kind.Answers():
		l.pol.stats.answered.Add(1)
		l.resp = rules.WriteAnswer(l.resp[:0], rq, &v)
		p.pol.delay = v.Delay
		if st.Rules != nil && st.Rules.HasSelfAnsweredRules() {
			rq.Resp = l.resp
			sv := st.Rules.EvalSelfAnswered(rq)
			l.tapMark(p, &sv)
			if sv.Kind == rules.KindDrop {
				l.pol.stats.respDrops.Add(1)
				l.dropQuery(p)
				return nil, false
			} else if sv.Delay > 0 {
				p.pol.delay = sv.Delay
			}
		}
		if dyn != nil {
			dyn.CountResponse(rq, int(l.resp[3]&0xf), len(l.resp), true)
		}
		l.deliverRuled(p, l.resp, failNone)
		return nil, false
	case v.Kind == rules.KindHTTPStatus && p.proto == protoDoH && v.HTTP != nil:
		l.pol.stats.httpStatus.Add(1)
		c := p.client
		c.inflight--
		if d, ok := c.stream.(*dohStream); ok && d.s != nil && !c.closed {
			d.s.Fail(p.tag, v.HTTP.Status)
			l.markDirty(c)
		}
		l.putPending(p)
		return nil, false
	}
	if v.NoRecurse {
		rules.ClearRD(msg)
	}
	if v.Pool != "" {
		pool = st.Pools[v.Pool]
	}
	p.pol.skipCache = v.SkipCache
	p.pol.hasMaxTTL, p.pol.maxTTL = v.HasMaxReturnedTTL, v.MaxReturnedTTL
	p.pol.ede = v.EDE
	p.pol.delay = v.Delay
	p.pol.hasTempFailTTL, p.pol.tempFailTTL = v.HasTempFailureTTL, v.TempFailureCacheTTL
	p.pol.tags = rq.Tags
	p.pol.ecs = v.ECS
	return pool, true
}

// dropQuery answers nothing and recycles p. A DoH stream (and a QUIC one) still gets an
// end, as dnsdist does: HTTP 403, rather than a stream left open until the session's
// idle timeout.
func (l *loop) dropQuery(p *pending) {
	if c := p.client; c != nil {
		c.inflight--
		if !c.closed && !c.lingering && c.stream != nil && (c.proto == protoDoH || c.proto >= protoDoQ) {
			c.stream.fail(p.tag, failACL, nil)
		}
		l.markDirty(c) // a connection paused at MaxTCPInFlight may read again
	}
	l.putPending(p)
}

// ruledCacheHit runs cache_hit_response_rules on the cached answer r and counts it for
// the dynamic rules; it reports false when the answer was dropped (p is recycled then).
func (l *loop) ruledCacheHit(st *State, p *pending, r []byte) bool {
	if !p.pol.ruled {
		return true
	}
	rq := &l.pol.rq // still the query being handled: the cache answers synchronously
	if st.Rules != nil && st.Rules.HasCacheHitRules() {
		rq.Resp = r
		v := st.Rules.EvalCacheHit(rq)
		if v.Kind == rules.KindDrop {
			l.pol.stats.respDrops.Add(1)
			l.dropQuery(p)
			return false
		}
		l.applyResponseVerdict(p, &v)
	}
	if dyn := l.e.opts.Dyn; dyn != nil && len(r) >= headerLen {
		dyn.CountResponse(rq, int(r[3]&0xf), len(r), true)
	}
	return true
}

// ruledResponse runs response_rules on a backend's answer m (ID already the client's)
// and counts it for the dynamic rules; it reports false when the answer was dropped.
func (l *loop) ruledResponse(p *pending, m []byte) bool {
	if !p.pol.ruled {
		return true
	}
	st := l.state
	dyn := l.e.opts.Dyn
	if dyn != nil && !dyn.Active() {
		dyn = nil // no dynamic rule counts answers
	}
	hasRules := st != nil && st.Rules != nil && st.Rules.HasResponseRules()
	if !hasRules && dyn == nil {
		return true
	}
	rq := &l.pol.rq
	if _, err := rules.ParseQuery(rq, p.query); err != nil {
		return true
	}
	rq.Client = p.pol.client
	rq.Loop = l.idx
	rq.Proto = ruleProtos[p.proto]
	rq.SNI, rq.HTTPPath, rq.Headers = "", "", nil
	rq.Tags = p.pol.tags // ParseQuery cleared them
	if hasRules {
		rq.Resp = m
		v := st.Rules.EvalResponse(rq)
		if v.Kind == rules.KindDrop {
			l.pol.stats.respDrops.Add(1)
			l.dropQuery(p)
			return false
		}
		l.applyResponseVerdict(p, &v)
		if v.SkipCache {
			p.pol.skipCache = true
		}
	}
	if dyn != nil {
		dyn.CountResponse(rq, int(m[3]&0xf), len(m), false)
	}
	return true
}

// tempFailureCache is a Cache that takes a temporary-failure lifetime for one answer
// (packetcache.Cache does).
type tempFailureCache interface {
	InsertTempFailureTTL(query, response []byte, now time.Time, tempFailTTL uint32)
}

// insertCached stores the backend's answer m to p in its pool's cache, for the
// lifetime a SetTempFailureCacheTTL rule gave a temporary failure.
func (l *loop) insertCached(p *pending, m []byte, now time.Time) {
	if l.insertSubnet(p, m, now) {
		return
	}
	if p.pol.hasTempFailTTL {
		if c, ok := p.pool.Cache.(tempFailureCache); ok {
			c.InsertTempFailureTTL(p.query, m, now, p.pol.tempFailTTL)
			return
		}
	}
	p.pool.Cache.Insert(p.query, m, now)
}

func (l *loop) applyResponseVerdict(p *pending, v *rules.Verdict) {
	l.tapMark(p, v)
	if v.HasMaxReturnedTTL && (!p.pol.hasMaxTTL || v.MaxReturnedTTL < p.pol.maxTTL) {
		p.pol.hasMaxTTL, p.pol.maxTTL = true, v.MaxReturnedTTL
	}
	if v.Delay > 0 {
		p.pol.delay = v.Delay
	}
}

// ruledAnswer adapts the client's copy m of an answer to what the rules asked (TTL cap,
// Extended DNS Error) and delivers it, held on the delay timer when a rule asked for it.
func (l *loop) ruledAnswer(p *pending, m []byte) {
	if p.pol.hasMaxTTL {
		rules.CapTTLs(m, p.pol.maxTTL)
	}
	if p.pol.ede != nil {
		if l.pol.ede == nil {
			l.pol.ede = make([]byte, 0, 65535+64)
		}
		if out, ok := rules.AddEDE(l.pol.ede[:0], m, p.pol.ede); ok && len(out) <= maxMsgLen {
			l.pol.ede = out
			m = out
		}
	}
	l.deliverRuled(p, m, failNone)
}

// deliverRuled delivers m now, or later for a UDP answer that a rule delays.
func (l *loop) deliverRuled(p *pending, m []byte, kind failKind) {
	if p.pol.delay > 0 && p.proto == protoUDP && l.delayDatagram(p, m) {
		l.pol.stats.delayed.Add(1)
		l.tapResponse(p, m) // its response_time is when the delay began
		l.putPending(p)
		return
	}
	l.deliver(p, m, kind)
}

// PolicyStats are the rules' outcomes summed over loops.
type PolicyStats struct {
	Drops, Answered, HTTPStatus, ResponseDrops, Delayed uint64
}

// PolicyStats sums the loops' rule counters.
func (e *Engine) PolicyStats() PolicyStats {
	var s PolicyStats
	for _, l := range e.loopList() {
		c := &l.pol.stats
		s.Drops += c.drops.Load()
		s.Answered += c.answered.Load()
		s.HTTPStatus += c.httpStatus.Load()
		s.ResponseDrops += c.respDrops.Load()
		s.Delayed += c.delayed.Load()
	}
	return s
}

// viewString is b as a string without a copy, for views that outlive no callback.
func viewString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// streamSNI is the TLS server name of a DoT or DoH connection, for SNI selectors.
func streamSNI(s stream) string {
	switch x := s.(type) {
	case *dotStream:
		return x.t.ServerName()
	case *dohStream:
		if x.t != nil {
			return x.t.ServerName()
		}
	}
	return ""
}
