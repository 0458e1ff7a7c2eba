package config

import "fmt"

// ProxyProtocol is dnsdist's proxy_protocol: which peers put a PROXY protocol version 2
// header in front of their queries, and what a header may hold.
type ProxyProtocol struct {
	// ACL lists the peers (proxies, load balancers) that must send a header: from them a
	// query or connection without a valid one is dropped. Others must not send one.
	ACL []string `yaml:"acl"`
	// MaximumPayloadSize bounds a header in bytes (dnsdist: 512, at least 16).
	MaximumPayloadSize int `yaml:"maximum_payload_size"`
	// ApplyACLToProxiedClients checks the client address a header carries against the
	// general ACL too, after the proxy's own address.
	ApplyACLToProxiedClients bool `yaml:"apply_acl_to_proxied_clients"`
}

// BindProxy holds a bind's proxy protocol key, inline in Bind.
type BindProxy struct {
	// EnableProxyProtocol: expect a header from peers in proxy_protocol.acl on this bind
	// (dnsdist's default: true). Where it sits relative to TLS is tls.proxy_protocol_outside_tls.
	EnableProxyProtocol *bool `yaml:"enable_proxy_protocol"`
}

// BackendProxy holds a backend's proxy protocol keys, inline in Backend.
type BackendProxy struct {
	// UseProxyProtocol sends a header with the client's address and the address it
	// reached in front of every query (UDP) or connection (TCP) to this backend.
	UseProxyProtocol bool `yaml:"use_proxy_protocol"`
	// ProxyProtocolAdvertiseTLS adds the SSL TLV to the header of queries that arrived
	// over DoT, DoH, DoQ or DoH3.
	ProxyProtocolAdvertiseTLS bool `yaml:"proxy_protocol_advertise_tls"`
}

// ProxyProtocolEnabled reports whether the bind expects headers from proxy_protocol.acl.
func (b *Bind) ProxyProtocolEnabled() bool {
	return b.EnableProxyProtocol == nil || *b.EnableProxyProtocol
}

func (c *Config) validateProxyProtocol(v *validator) {
	pp := &c.ProxyProtocol
	for i, a := range pp.ACL {
		if _, err := ParsePrefix(a); err != nil {
			v.errorf(fmt.Sprintf("proxy_protocol.acl[%d]", i), "%v", err)
		}
	}
	if pp.MaximumPayloadSize < 16 || pp.MaximumPayloadSize > 65535+16 {
		v.errorf("proxy_protocol.maximum_payload_size", "must be between 16 (the fixed part of a header) and 65551, got %d", pp.MaximumPayloadSize)
	}
	for i := range c.Backends {
		b := &c.Backends[i]
		if b.ProxyProtocolAdvertiseTLS && !b.UseProxyProtocol {
			v.errorf(fmt.Sprintf("backends[%d].proxy_protocol_advertise_tls", i), "requires use_proxy_protocol")
		}
	}
	for i := range c.Binds {
		b := &c.Binds[i]
		if b.TLS != nil && b.TLS.ProxyProtocolOutsideTLS && b.Protocol != "DoT" && b.Protocol != "DoH" {
			v.errorf(fmt.Sprintf("binds[%d].tls.proxy_protocol_outside_tls", i), "applies to DoT and DoH binds, not %s", b.Protocol)
		}
	}
}
