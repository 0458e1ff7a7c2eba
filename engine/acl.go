package engine

import (
	"net/netip"

	"github.com/dnsfront/dnsfront/config"
)

// ACL is the set of client networks allowed to query. Like dnsdist, queries from other
// clients are dropped silently (and counted): answering REFUSED would let a spoofed source
// turn the server into a reflector.
type ACL struct {
	v4, v6 []netip.Prefix
}

// NewACL parses prefixes or single addresses.
func NewACL(entries []string) (*ACL, error) {
	a := &ACL{}
	for _, e := range entries {
		p, err := config.ParsePrefix(e)
		if err != nil {
			return nil, err
		}
		if p.Addr().Is4() {
			a.v4 = append(a.v4, p)
		} else {
			a.v6 = append(a.v6, p)
		}
	}
	return a, nil
}

// Allows reports whether addr may query. IPv4-mapped IPv6 addresses match IPv4 entries.
func (a *ACL) Allows(addr netip.Addr) bool {
	addr = addr.Unmap()
	list := a.v6
	if addr.Is4() {
		list = a.v4
	}
	for _, p := range list {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
