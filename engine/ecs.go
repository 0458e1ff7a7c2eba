package engine

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/dnsfront/dnsfront/internal/dnswire"
)

// EDNS Client Subnet (RFC 7871), as dnsdist does it:
//   - A query bound for a backend with use_client_subnet carries the client's address
//     truncated to edns_client_subnet.source_prefix_v4 or _v6 bits (rules may change the
//     length, set a fixed subnet or turn it off). A client's own option is kept, or
//     replaced when override_existing says so.
//   - The answer goes back as the client asked: an option the client did not send is
//     removed (the whole OPT record when the client had none), and a client whose option
//     was replaced gets its own back, with the backend's scope.
//   - The packet cache keys on the subnet (packetcache/ecs.go), and shares an answer with
//     scope 0 among all clients unless a backend of the pool has disable_zero_scope. An
//     answer whose option names another subnet than the one sent is not the answer for
//     it (RFC 7871 §7.3): the cache refuses it and counts it, the client still gets it
//     (as from dnsdist), without that option.
//
// The decision is made once per query, before the cache (prepareECS), for the pool: the
// cache is consulted before a backend is picked, so a pool with any backend that uses ECS
// keys its cache on the subnet. A backend of that pool without use_client_subnet gets the
// query without the option; its answer is still cached for the subnet only, which never
// mixes answers, it only shares less. (dnsdist picks the backend first when a pool's
// backends disagree; here the cache lookup stays ahead of the picker, whose state a cache
// hit must not move.)

// ECSOptions are the edns_client_subnet settings (State.ECS).
type ECSOptions struct {
	// SourcePrefixV4 and SourcePrefixV6 are how many bits of the client's address are
	// sent (dnsdist's defaults: 24 and 56).
	SourcePrefixV4 uint8
	SourcePrefixV6 uint8
	// Override replaces an ECS option the client sent; otherwise it goes as sent.
	Override bool
}

// BackendECS are a backend's ECS settings (Backend.ECS).
type BackendECS struct {
	// UseClientSubnet adds the client's subnet to queries for this backend.
	UseClientSubnet bool
	// DisableZeroScope keeps answers with scope 0 per subnet in the cache of the pools
	// this backend belongs to, instead of sharing them.
	DisableZeroScope bool
}

// poolECS is what a pool's backends say about ECS (NewState).
type poolECS struct {
	use       bool // some backend of the pool uses ECS
	zeroScope bool // no backend that uses it disabled zero scope
}

func newPoolECS(backends []*Backend) poolECS {
	pe := poolECS{zeroScope: true}
	for _, b := range backends {
		if b.ECS.UseClientSubnet {
			pe.use = true
			pe.zeroScope = pe.zeroScope && !b.ECS.DisableZeroScope
		}
	}
	return pe
}

// ecsQuery is what prepareECS decided for one query (pending.ecs); the zero value is
// "no ECS handling", which is what every query of a pool without ECS keeps.
type ecsQuery struct {
	on bool // sub goes to backends that use ECS, and the cache keys on it
	// zeroScope: the client sent no subnet, an answer with scope 0 is shared.
	zeroScope bool
	// clientECS: the client sent an option (orig), which sub replaces.
	clientECS bool
	sub       dnswire.ECS
	orig      dnswire.ECS
}

// subnetCache is a Cache that keys on an added client subnet (packetcache.Cache is one).
// A pool whose cache is not one is not cached while ECS is in use.
type subnetCache interface {
	GetSubnet(query []byte, sub dnswire.ECS, zeroScope bool, dst []byte, now time.Time) ([]byte, bool)
	InsertSubnet(query, response []byte, sub dnswire.ECS, zeroScope bool, now time.Time, tempFailTTL int64)
}

// clientAddr is the address the query came from, as the ACL and the rules see it: the
// one a PROXY header carried (a stream's peer is replaced by it, proxy.go), or the
// forwarded one behind a trusted DoH proxy.
func (l *loop) clientAddr(p *pending) netip.Addr {
	switch {
	case p.pol.ruled:
		return p.pol.client
	case p.proto == protoUDP:
		return p.pp.src.Addr() // the peer, or the client a PROXY header named (proxy.go)
	case l.forwardedFor.IsValid():
		return l.forwardedFor
	case p.client != nil:
		return p.client.peer.Addr()
	}
	return netip.Addr{}
}

// prepareECS decides, before the cache, whether and which subnet the query in msg
// carries to the backends of pool (p.ecs).
func (l *loop) prepareECS(st *State, pool *Pool, msg []byte, q question, p *pending) {
	if pool == nil || !pool.ecs.use || p.pol.ecs.Disable {
		return
	}
	r := &p.pol.ecs
	override := st.ECS.Override
	if r.HasOverride {
		override = r.Override
	}
	var e ecsQuery
	if q.optOff >= 0 {
		h, _, err := dnswire.ReadRR(msg, q.optOff)
		if err != nil {
			return
		}
		orig, found, err := dnswire.ReadECS(msg, h)
		if err != nil {
			return // the backend judges a malformed option; it goes as sent
		}
		if found && !override {
			return // the client's subnet goes as sent, and the cache keys on it
		}
		e.clientECS, e.orig = found, orig
	}
	a := l.clientAddr(p).Unmap()
	if !a.IsValid() {
		return
	}
	switch {
	case r.Set != nil:
		e.sub = r.Set.For(a)
	case a.Is4():
		bits := st.ECS.SourcePrefixV4
		if r.HasPrefixLength {
			bits = r.PrefixV4
		}
		e.sub = dnswire.ECSFromAddr(a, bits)
	default:
		bits := st.ECS.SourcePrefixV6
		if r.HasPrefixLength {
			bits = r.PrefixV6
		}
		e.sub = dnswire.ECSFromAddr(a, bits)
	}
	e.on = true
	e.zeroScope = !e.clientECS && pool.ecs.zeroScope
	p.ecs = e
}

// cacheGet looks the query in msg up in the pool's cache c, for the subnet it will carry.
func (l *loop) cacheGet(c Cache, msg []byte, p *pending) ([]byte, bool) {
	if !p.ecs.on {
		return c.Get(msg, l.resp[:0], time.Now())
	}
	if sc, ok := c.(subnetCache); ok {
		return sc.GetSubnet(msg, p.ecs.sub, p.ecs.zeroScope, l.resp[:0], time.Now())
	}
	return l.resp[:0], false
}

// insertSubnet stores the answer m to a query that carried a subnet; it reports false
// when the query did not (the caller inserts as usual).
func (l *loop) insertSubnet(p *pending, m []byte, now time.Time) bool {
	if !p.ecs.on {
		return false
	}
	if sc, ok := p.pool.Cache.(subnetCache); ok {
		tf := int64(-1)
		if p.pol.hasTempFailTTL {
			tf = int64(p.pol.tempFailTTL)
		}
		sc.InsertSubnet(p.query, m, p.ecs.sub, p.ecs.zeroScope, now, tf)
	}
	return true
}

// appendECS adds the subnet of p to the backend query in out (after hdr bytes of TCP
// prefix), in place of the client's own option when it replaces one. The OPT record is
// the one appendOPT added or the client's; when the client's is not the last record (a
// TSIG after it, which the change would break anyway) the query goes unchanged.
func appendECS(out []byte, hdr int, p *pending) []byte {
	m := out[hdr:]
	ol := p.ecs.sub.OptionLen()
	if p.addOPT {
		// Our OPT record is the last 11 bytes, with no options yet.
		if len(m)+ol > maxMsgLen {
			return out
		}
		out = p.ecs.sub.AppendOption(out)
		binary.BigEndian.PutUint16(out[len(out)-ol-2:], uint16(ol))
		return out
	}
	if p.q.optOff < 0 {
		return out // no OPT record, and too long for one: it goes without a subnet
	}
	h, _, err := dnswire.ReadRR(m, p.q.optOff)
	if err != nil || h.End() != len(m) {
		return out
	}
	if p.ecs.clientECS {
		off, n, err := dnswire.FindOption(m, h, dnswire.OptionECS)
		if err != nil || off < 0 {
			return out
		}
		m = dnswire.RemoveOption(m, h, off, n)
		h.RDLen -= n
		out = out[:hdr+len(m)]
	}
	if len(m)+ol > maxMsgLen || h.RDLen+ol > 0xffff {
		return out
	}
	out = p.ecs.sub.AppendOption(out)
	binary.BigEndian.PutUint16(out[hdr+h.RDOff-2:], uint16(h.RDLen+ol))
	return out
}

// ecsAnswer gives the client of p the ECS view it asked for in the answer m: no option if
// it sent none (the whole OPT record goes later, in finish, when it sent no OPT record),
// its own subnet with the backend's scope if its option was replaced. Every ECS option
// of the backend's goes, not only the first: a second one would name the subnet sent as
// well. It works in place when the length does not change, else in the loop's ecs
// buffer. m is returned as it is when its OPT record is not the last record.
func (l *loop) ecsAnswer(p *pending, m []byte) []byte {
	if !p.ecs.on || p.addOPT {
		return m
	}
	start, h, err := dnswire.FindOPT(m)
	if err != nil || start < 0 || h.End() != len(m) {
		return m
	}
	off, n, err := dnswire.FindOption(m, h, dnswire.OptionECS)
	if err != nil || off < 0 {
		return m
	}
	if !p.ecs.clientECS {
		m, _, _ = dnswire.RemoveOptions(m, h, dnswire.OptionECS, off)
		return m
	}
	// The backend's scope is for the subnet dnsfront sent; it says something of the
	// client's own only when it is the answer for that subnet (RFC 7871 §7.3) and both
	// are of one family, and never more than its bits. Else the answer is given for the
	// client's whole source prefix.
	own := p.ecs.orig
	own.Scope = own.Source
	if p.ecs.sub.Family == own.Family {
		if a := dnswire.CheckECSAnswer(m, h, p.ecs.sub); !a.Mismatch && a.Count == 1 {
			own.Scope = min(m[off+7], ecsMaxBits(own.Family))
		}
	}
	// The options after the first go, then the first becomes the client's own.
	m, h, _ = dnswire.RemoveOptions(m, h, dnswire.OptionECS, off+n)
	if own.OptionLen() == n {
		own.AppendOption(m[off:off])
		return m
	}
	if len(m)-n+own.OptionLen() > maxMsgLen {
		// The client's option is longer than the one it replaces and the answer has no
		// room for it: the answer goes without one rather than past a TCP frame's length.
		return dnswire.RemoveOption(m, h, off, n)
	}
	b := append(l.ecsBuf[:0], m[:off]...)
	b = own.AppendOption(b)
	b = append(b, m[off+n:]...)
	binary.BigEndian.PutUint16(b[h.RDOff-2:], uint16(h.RDLen-n+own.OptionLen()))
	l.ecsBuf = b
	return b
}

// ecsMaxBits is the longest prefix of an ECS address family.
func ecsMaxBits(family uint16) uint8 {
	if family == dnswire.FamilyIPv4 {
		return 32
	}
	return 128
}
