package config

import (
	"fmt"
	"net/netip"

	"github.com/miekg/dns"
)

// DDR configures Discovery of Designated Resolvers (RFC 9462): SVCB and HTTPS answers at
// _dns.resolver.arpa and _dns.<resolver name>. Without parameters, the records are
// derived from the encrypted binds (DoT, DoH over TLS, DoQ, DoH3).
type DDR struct {
	Enabled bool `yaml:"enabled"`
	// ResolverNames are answered at _dns.<name> too; the derived records name the first
	// as their target (the name the certificates are for), "." without one.
	ResolverNames []string `yaml:"resolver_names"`
	// TTL of the records; 0: 300 seconds.
	TTL uint32 `yaml:"ttl"`
	// IPv4Hints and IPv6Hints replace the derived records' hints (which a bind on a
	// wildcard address cannot give).
	IPv4Hints []string `yaml:"ipv4_hints"`
	IPv6Hints []string `yaml:"ipv6_hints"`
	// Parameters, when set, are the records as written, and nothing is derived
	// (dnsdist's SpoofSVC parameters).
	Parameters []SVCRecordParameters `yaml:"parameters"`
}

// SVCRecordParameters is one SVCB record, with dnsdist's SVCRecordParameters keys.
type SVCRecordParameters struct {
	Priority         uint16            `yaml:"priority"`
	Target           string            `yaml:"target"`
	MandatoryParams  []string          `yaml:"mandatory_params"`
	ALPNs            []string          `yaml:"alpns"`
	NoDefaultALPN    bool              `yaml:"no_default_alpn"`
	Port             uint16            `yaml:"port"`
	IPv4Hints        []string          `yaml:"ipv4_hints"`
	IPv6Hints        []string          `yaml:"ipv6_hints"`
	AdditionalParams []SVCAdditionalKV `yaml:"additional_params"`
}

// SVCAdditionalKV is a further SvcParam by number (7 is dohpath).
type SVCAdditionalKV struct {
	Key   uint16 `yaml:"key"`
	Value string `yaml:"value"`
}

// DDRTTL is the TTL of the DDR records.
func (d *DDR) DDRTTL() uint32 {
	if d.TTL == 0 {
		return 300
	}
	return d.TTL
}

// SVCB builds the record that p describes (owner and class are the engine's).
func (p *SVCRecordParameters) SVCB() (*dns.SVCB, error) {
	r := &dns.SVCB{Priority: p.Priority, Target: dns.Fqdn(p.Target)}
	if p.Target == "" {
		r.Target = "."
	}
	if len(p.MandatoryParams) > 0 {
		m := &dns.SVCBMandatory{}
		for _, k := range p.MandatoryParams {
			key := dns.SVCBKey(0)
			for ; key < 8; key++ {
				if key.String() == k {
					break
				}
			}
			if key >= 8 {
				return nil, fmt.Errorf("mandatory_params: unknown key %q", k)
			}
			m.Code = append(m.Code, key)
		}
		r.Value = append(r.Value, m)
	}
	if len(p.ALPNs) > 0 {
		r.Value = append(r.Value, &dns.SVCBAlpn{Alpn: p.ALPNs})
	}
	if p.NoDefaultALPN {
		r.Value = append(r.Value, &dns.SVCBNoDefaultAlpn{})
	}
	if p.Port != 0 {
		r.Value = append(r.Value, &dns.SVCBPort{Port: p.Port})
	}
	if v4, v6, err := parseHints(p.IPv4Hints, p.IPv6Hints); err != nil {
		return nil, err
	} else {
		r.Value = append(r.Value, v4...)
		r.Value = append(r.Value, v6...)
	}
	for _, kv := range p.AdditionalParams {
		if kv.Key == 7 {
			r.Value = append(r.Value, &dns.SVCBDoHPath{Template: kv.Value})
			continue
		}
		r.Value = append(r.Value, &dns.SVCBLocal{KeyCode: dns.SVCBKey(kv.Key), Data: []byte(kv.Value)})
	}
	return r, nil
}

// parseHints turns hint lists into SVCB values (none for an empty list).
func parseHints(v4s, v6s []string) (v4, v6 []dns.SVCBKeyValue, err error) {
	h4 := &dns.SVCBIPv4Hint{}
	for _, s := range v4s {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, nil, fmt.Errorf("ipv4_hints: %q is not an IPv4 address", s)
		}
		h4.Hint = append(h4.Hint, a.AsSlice())
	}
	h6 := &dns.SVCBIPv6Hint{}
	for _, s := range v6s {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is6() {
			return nil, nil, fmt.Errorf("ipv6_hints: %q is not an IPv6 address", s)
		}
		h6.Hint = append(h6.Hint, a.AsSlice())
	}
	if len(h4.Hint) > 0 {
		v4 = append(v4, h4)
	}
	if len(h6.Hint) > 0 {
		v6 = append(v6, h6)
	}
	return v4, v6, nil
}

// DDRHints are the configured hints as SVCB values.
func (d *DDR) DDRHints() (v4, v6 []dns.SVCBKeyValue) {
	v4, v6, _ = parseHints(d.IPv4Hints, d.IPv6Hints)
	return v4, v6
}

func (c *Config) validateDDR(v *validator) {
	d := c.DDR
	if d == nil {
		return
	}
	for i, n := range d.ResolverNames {
		if _, ok := dns.IsDomainName(n); !ok || n == "" {
			v.errorf(fmt.Sprintf("ddr.resolver_names[%d]", i), "%q is not a domain name", n)
		}
	}
	if _, _, err := parseHints(d.IPv4Hints, d.IPv6Hints); err != nil {
		v.errorf("ddr", "%v", err)
	}
	for i := range d.Parameters {
		p := fmt.Sprintf("ddr.parameters[%d]", i)
		r, err := d.Parameters[i].SVCB()
		if err == nil {
			r.Hdr = dns.RR_Header{Name: ".", Rrtype: dns.TypeSVCB, Class: dns.ClassINET}
			_, err = dns.PackRR(r, make([]byte, 65535), 0, nil, false)
		}
		if err != nil {
			v.errorf(p, "%v", err)
		}
	}
}
