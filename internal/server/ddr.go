package server

import (
	"net"
	"net/netip"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/miekg/dns"
)

// buildDDR builds the DDR answer (RFC 9462) when ddr.enabled: ddr.parameters as written,
// or else derived from the encrypted binds, one SVCB record per DoT, DoH (over TLS), DoQ
// and DoH3 bind, in bind order, with its ALPN, port, DoH path and the listen address as
// a hint (a wildcard address gives none) unless ddr.ipv4_hints/ipv6_hints are set. nil
// when DDR is off or there is nothing to announce.
func buildDDR(cfg *config.Config) (*engine.DDR, error) {
	d := cfg.DDR
	if d == nil || !d.Enabled {
		return nil, nil
	}
	var recs []*dns.SVCB
	if len(d.Parameters) > 0 {
		for i := range d.Parameters {
			r, err := d.Parameters[i].SVCB()
			if err != nil {
				return nil, err
			}
			recs = append(recs, r)
		}
		return engine.NewDDR(d.ResolverNames, recs, d.DDRTTL())
	}
	target := "."
	if len(d.ResolverNames) > 0 {
		target = dns.Fqdn(d.ResolverNames[0])
	}
	h4, h6 := d.DDRHints()
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
		r := &dns.SVCB{Priority: uint16(len(recs) + 1), Target: target}
		r.Value = append(r.Value, &dns.SVCBAlpn{Alpn: alpn}, &dns.SVCBPort{Port: ap.Port()})
		if len(h4)+len(h6) > 0 {
			r.Value = append(append(r.Value, h4...), h6...)
		} else if a := ap.Addr().Unmap(); !a.IsUnspecified() {
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
	return engine.NewDDR(d.ResolverNames, recs, d.DDRTTL())
}
