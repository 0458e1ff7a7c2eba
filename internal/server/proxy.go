package server

import (
	"fmt"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/dnsfront/dnsfront/engine/lb"
)

// proxyState builds the reloadable proxy protocol settings: the incoming ACL and limits,
// and each backend's use_proxy_protocol (ebs follows cfg.Backends' order).
func proxyState(cfg *config.Config, ebs []*engine.Backend) (*engine.ProxyProtocol, error) {
	for i, b := range cfg.Backends {
		ebs[i].Proxy = engine.BackendProxy{Use: b.UseProxyProtocol, AdvertiseTLS: b.ProxyProtocolAdvertiseTLS}
	}
	pp := cfg.ProxyProtocol
	if len(pp.ACL) == 0 {
		return nil, nil
	}
	acl, err := engine.NewACL(pp.ACL)
	if err != nil {
		return nil, fmt.Errorf("%s: proxy_protocol.acl: %w", cfg.Path, err)
	}
	return &engine.ProxyProtocol{ACL: acl, MaxSize: pp.MaximumPayloadSize, ApplyACLToProxied: pp.ApplyACLToProxiedClients}, nil
}

// proxyHealthChecks makes the health checks of use_proxy_protocol backends start with a
// LOCAL header, as dnsdist's do: such a backend drops a query without a header.
func proxyHealthChecks(cfg *config.Config, lbcfgs []lb.BackendConfig) {
	for i, b := range cfg.Backends {
		lbcfgs[i].ProxyProtocol = b.UseProxyProtocol
	}
}

// bindProxy is a bind's incoming proxy protocol setting, fixed at start.
func bindProxy(b config.Bind) engine.BindProxy {
	return engine.BindProxy{Enabled: b.ProxyProtocolEnabled(), OutsideTLS: b.TLS != nil && b.TLS.ProxyProtocolOutsideTLS}
}

// proxyBindChanges names the bind's proxy protocol keys that changed: a bind whose keys
// changed is replaced by a reload (listeners.go).
func proxyBindChanges(p string, a, b config.Bind) []string {
	if a.IsQUIC() && b.IsQUIC() {
		return nil // DoQ and DoH3 read no header (as in dnsdist)
	}
	var out []string
	if a.ProxyProtocolEnabled() != b.ProxyProtocolEnabled() {
		out = append(out, p+".enable_proxy_protocol")
	}
	if bindProxy(a).OutsideTLS != bindProxy(b).OutsideTLS {
		out = append(out, p+".tls.proxy_protocol_outside_tls")
	}
	return out
}
