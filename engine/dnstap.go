package engine

import (
	"math/bits"
	"net/netip"
	"time"

	"github.com/dnsfront/dnsfront/engine/rules"
	"github.com/dnsfront/dnsfront/internal/dnstap"
)

// dnstap: DnstapLog rule actions (engine/rules/dnstap.go) mark a query or its response;
// the loop sends the query's message when the query rules are done (tapQuery, from
// decide) and the response's when it is delivered to the client (tapResponse, from
// deliver). Sending is dnstap.Logger.Log: a copy into a bounded queue, never a wait.
// A rule set without DnstapLog actions costs a nil check per query.

// tapState is what a query keeps for the dnstap message of its response; it lives in
// the pending entry's policyState and is cleared with it.
type tapState struct {
	mark  rules.DnstapMark // the response's targets, from the response rules
	qtime int64            // when the query was accepted (Unix nanoseconds)
	bind  *BindOptions     // the listener it arrived on
}

var tapProtos = [protoCount]dnstap.Protocol{
	protoUDP: dnstap.UDP, protoTCP: dnstap.TCP, protoDoT: dnstap.DoT, protoDoH: dnstap.DoH,
	protoDoQ: dnstap.DoQ, protoDoH3: dnstap.DoH,
}

// tapQuery runs when the query rules have decided on the query in msg: it notes what
// the response's message will need and sends the query's to the targets v names.
func (l *loop) tapQuery(st *State, bind *BindOptions, p *pending, msg []byte, v *rules.Verdict) {
	if st.Rules.Dnstap() == nil {
		return
	}
	l.sendQueryTap(bind, p, msg, v.Dnstap)
}

func (l *loop) sendQueryTap(bind *BindOptions, p *pending, msg []byte, m rules.DnstapMark) {
	now := time.Now()
	p.pol.tap.qtime, p.pol.tap.bind = now.UnixNano(), bind
	if m.Bits == 0 {
		return
	}
	ev := dnstap.Event{Kind: dnstap.ClientQuery, Protocol: tapProtos[p.proto], Client: tapClient(p),
		Server: tapServer(p), QueryTime: now, Msg: msg}
	sendTaps(m, &ev)
}

// tapMark records the DnstapLog actions of response rules for the delivery.
func (l *loop) tapMark(p *pending, v *rules.Verdict) {
	if v.Dnstap.Bits != 0 {
		markTap(p, v.Dnstap)
	}
}

func markTap(p *pending, m rules.DnstapMark) {
	if p.pol.tap.mark.Targets != m.Targets {
		p.pol.tap.mark = m // the response rules of a newer rule set (a reload in between)
		return
	}
	p.pol.tap.mark.Bits |= m.Bits
}

// tapResponse sends the dnstap message of the answer m, about to be delivered, when the
// response rules asked for it.
func (l *loop) tapResponse(p *pending, m []byte) {
	if p.pol.tap.mark.Bits != 0 && len(m) > 0 {
		l.sendResponseTap(p, m)
	}
}

func (l *loop) sendResponseTap(p *pending, m []byte) {
	ev := dnstap.Event{Kind: dnstap.ClientResponse, Protocol: tapProtos[p.proto], Client: tapClient(p),
		Server: tapServer(p), ResponseTime: time.Now(), Msg: m}
	if t := p.pol.tap.qtime; t != 0 {
		ev.QueryTime = time.Unix(0, t)
	}
	sendTaps(p.pol.tap.mark, &ev)
}

func sendTaps(m rules.DnstapMark, ev *dnstap.Event) {
	for b := m.Bits; b != 0; b &= b - 1 {
		t := m.Targets.At(bits.TrailingZeros64(b))
		if t.Logger != nil {
			ev.Identity = t.Identity
			t.Logger.Log(ev)
		}
	}
}

// tapClient is the client as the rules saw it: the proxy protocol header's source when a
// proxy spoke for the client, the forwarded address (without a port) behind a trusted
// DoH proxy, else the connection's peer.
func tapClient(p *pending) netip.AddrPort {
	if src := p.pp.src; src.IsValid() {
		return netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	}
	peer := p.peer
	if p.client != nil {
		peer = p.client.peer
	}
	return peer
}

// tapServer is the address the query arrived at: the proxy protocol header's destination,
// else the listener's (its port alone on a wildcard listener). External listeners (DoQ,
// DoH3) give the engine no local address.
func tapServer(p *pending) netip.AddrPort {
	if dst := p.pp.dst; dst.IsValid() {
		return dst
	}
	b := p.pol.tap.bind
	if b == nil || p.proto >= protoDoQ {
		return netip.AddrPort{}
	}
	return b.Addr
}
