package engine

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/miekg/dns"
)

// Discovery of Designated Resolvers (RFC 9462): queries for SVCB (and HTTPS) at
// _dns.resolver.arpa, or _dns.<resolver name>, are answered on the loop with the
// encrypted endpoints of this server. The records are packed once, when the State is
// built; a query copies them after its question.

const (
	typeSVCB  = 64
	typeHTTPS = 65
)

// DDR is the packed answer to DDR queries.
type DDR struct {
	names [][]byte // owner names answered, wire format, lower case
	// rrs holds each record from its class to the end of its RDATA (class, TTL,
	// RDLENGTH, RDATA); the owner is a pointer to the question and the type is the
	// query's (SVCB and HTTPS share the RDATA format).
	rrs [][]byte
}

// NewDDR packs records (their owner and type are ignored), answered at
// _dns.resolver.arpa and at _dns.<name> for each of the resolver's names.
func NewDDR(names []string, records []*dns.SVCB, ttl uint32) (*DDR, error) {
	d := &DDR{}
	owners := []string{"_dns.resolver.arpa."}
	for _, n := range names {
		owners = append(owners, "_dns."+n)
	}
	for _, n := range owners {
		buf := make([]byte, 256)
		off, err := dns.PackDomainName(dns.Fqdn(strings.ToLower(n)), buf, 0, nil, false)
		if err != nil {
			return nil, fmt.Errorf("ddr: name %q: %w", n, err)
		}
		d.names = append(d.names, buf[:off])
	}
	for _, r := range records {
		rr := *r
		rr.Hdr = dns.RR_Header{Name: ".", Rrtype: typeSVCB, Class: dns.ClassINET, Ttl: ttl}
		buf := make([]byte, 65535)
		off, err := dns.PackRR(&rr, buf, 0, nil, false)
		if err != nil {
			return nil, fmt.Errorf("ddr: record %s: %w", r.String(), err)
		}
		// Skip the root owner (1 octet) and the type (2).
		d.rrs = append(d.rrs, append([]byte(nil), buf[3:off]...))
	}
	return d, nil
}

// match reports whether the wire name (as sent, any case) is one of d's names.
func (d *DDR) match(name []byte) bool {
	for _, n := range d.names {
		if len(n) != len(name) {
			continue
		}
		ok := true
		for i := range n {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != n[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// answerDDR answers the query in msg from d when it is a DDR query, and reports whether
// it did (p is delivered and recycled then).
func (l *loop) answerDDR(d *DDR, msg []byte, q question, p *pending) bool {
	if q.qtype != typeSVCB && q.qtype != typeHTTPS || q.end < 17 || msg[2]&0x78 != 0 ||
		binary.BigEndian.Uint16(msg[q.end-2:]) != dns.ClassINET || !d.match(msg[12:q.end-4]) {
		return false
	}
	r := append(l.resp[:0], msg[:12]...)
	r[2] = 0x80 | 0x04 | msg[2]&0x01 // QR, AA, the query's RD
	r[3] = 0x80                      // RA, NOERROR
	binary.BigEndian.PutUint16(r[4:], 1)
	binary.BigEndian.PutUint16(r[6:], uint16(len(d.rrs)))
	binary.BigEndian.PutUint16(r[8:], 0)
	binary.BigEndian.PutUint16(r[10:], 0)
	r = append(r, msg[12:q.end]...)
	for _, rr := range d.rrs {
		r = append(r, 0xc0, 0x0c, byte(q.qtype>>8), byte(q.qtype))
		r = append(r, rr...)
	}
	if q.optOff >= 0 {
		var do byte
		if q.do {
			do = 0x80
		}
		// OPT: root owner, type 41, our UDP size, no extended rcode, version 0, DO echoed.
		r = append(r, 0, 0, 41, byte(ddrUDPSize>>8), byte(ddrUDPSize&0xff), 0, 0, do, 0, 0, 0)
		binary.BigEndian.PutUint16(r[10:], 1)
	}
	l.resp = r
	p.q = q
	if p.proto == protoUDP && len(r) > int(q.udpSize) {
		r = truncateTo(r, q.end)
		l.stats.truncated.Add(1)
	}
	l.deliver(p, r, failNone)
	return true
}

const ddrUDPSize = 1232
