package server

import (
	"net"
	"net/netip"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/miekg/dns"
)

// ddrTTL is the TTL of the DDR records: they change only with the binds.
const ddrTTL = 300

// buildDDR derives the DDR answer (RFC 9462) from the encrypted binds: one SVCB record
// per DoT, DoH, DoQ and DoH3 bind, in bind order, with its ALPN, port, DoH path and the
// listen address as a hint (a wildcard address gives no hint). nil when no bind is
// encrypted.
func buildDDR(cfg *config.Config) (*engine.DDR, error) {
	var recs []*dns.SVCB
	for _, b := range cfg.Binds {
		var alpn []string
		switch b.Protocol {
		case "DoT":
			alpn = []string{"dot"}
		case "DoH":
			if b.TLS == nil {
				continue // cleartext DoH is not an encrypted endpoint
			}
			alpn = []string{"h2", "http/1.1"}
		case "DoQ":
			alpn = []string{"doq"}
		case "DoH3":
			alpn = []string{"h3"}
		default:
			continue
		}
		ap, err := netip.ParseAddrPort(b.ListenAddress)
		if err != nil {
			continue
		}
		r := &dns.SVCB{Priority: uint16(len(recs) + 1), Target: "."}
		r.Value = append(r.Value, &dns.SVCBAlpn{Alpn: alpn}, &dns.SVCBPort{Port: ap.Port()})
		if a := ap.Addr().Unmap(); !a.IsUnspecified() {
			if a.Is4() {
				r.Value = append(r.Value, &dns.SVCBIPv4Hint{Hint: []net.IP{a.AsSlice()}})
			} else {
				r.Value = append(r.Value, &dns.SVCBIPv6Hint{Hint: []net.IP{a.AsSlice()}})
			}
		}
		if b.Protocol == "DoH" || b.Protocol == "DoH3" {
			path := "/dns-query"
			if b.DoH != nil && len(b.DoH.Paths) > 0 {
				path = b.DoH.Paths[0]
			}
			r.Value = append(r.Value, &dns.SVCBDoHPath{Template: path + "{?dns}"})
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return nil, nil
	}
	return engine.NewDDR(nil, recs, ddrTTL)
}
