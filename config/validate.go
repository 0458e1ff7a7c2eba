package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dnsfront/dnsfront/engine/lb"
	"github.com/dnsfront/dnsfront/tlsframe"
	"github.com/miekg/dns"
)

// CanonicalPolicy returns our name of a load-balancing policy (ours or dnsdist's, in
// any case: "leastOutstanding" → "least_outstanding"), or "" if the name is unknown. It
// reads the table the load balancer reads, so that check-config accepts exactly what starts.
func CanonicalPolicy(name string) string {
	p, err := lb.CanonicalPolicy(name)
	if err != nil {
		return ""
	}
	return p
}

func (c *Config) validate(v *validator) {
	if len(c.Binds) == 0 {
		v.errorf("binds", "at least one bind is required")
	}
	for i, a := range c.ACL {
		if _, err := ParsePrefix(a); err != nil {
			v.errorf(fmt.Sprintf("acl[%d]", i), "%v", err)
		}
	}
	if c.General.EventLoops < 0 || c.General.EventLoops > 1024 {
		v.errorf("general.event_loops", "must be between 0 (one per core) and 1024, got %d", c.General.EventLoops)
	}
	switch c.General.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		v.errorf("general.log_level", "must be debug, info, warn or error, got %q", c.General.LogLevel)
	}
	if g := c.General.GCPercent; g < -1 || g > 0 && g < 10 {
		v.errorf("general.gc_percent", "must be -1 (collector off) or at least 10, got %d", g)
	}
	if c.General.MaxTCPInFlight < 1 {
		v.errorf("general.max_tcp_in_flight", "must be at least 1")
	}
	seen := map[string]int{}
	for i := range c.Binds {
		c.validateBind(v, i, seen)
	}
	c.validateBackends(v)
	c.validateFleet(v, c.Fleet)
	c.validateDDR(v)
	c.validateRemoteLogging(v)
	c.validateECS(v)
	c.validateProxyProtocol(v)
	for i, a := range c.Webserver.ListenAddresses {
		if _, err := netip.ParseAddrPort(a); err != nil {
			v.errorf(fmt.Sprintf("webserver.listen_addresses[%d]", i), "%q is not an IP:port", a)
		}
	}
	for i, a := range c.Webserver.ACL {
		if _, err := ParsePrefix(a); err != nil {
			v.errorf(fmt.Sprintf("webserver.acl[%d]", i), "%v", err)
		}
	}
	if c.DemoBackend != nil {
		if _, err := netip.ParseAddrPort(c.DemoBackend.ListenAddress); err != nil {
			v.errorf("demo_backend.listen_address", "%q is not an IP:port", c.DemoBackend.ListenAddress)
		}
	}
	if c.DevPKI != nil && c.DevPKI.Directory == "" {
		v.errorf("dev_pki.directory", "is required")
	}
	if c.OCSP.MaxResponseSize < 0 {
		v.errorf("ocsp.max_response_size", "must not be negative")
	}
	c.Rules.validate(v)
	c.Tuning.TCP.validate(v)
}

// validate checks the per-client TLS limits of tuning.tcp.
func (t *TCPTuning) validate(v *validator) {
	if t.MaxTLSNewSessionRatePerClient < 0 {
		v.errorf("tuning.tcp.max_tls_new_session_rate_per_client", "must not be negative")
	}
	if t.MaxTLSResumedSessionRatePerClient < 0 {
		v.errorf("tuning.tcp.max_tls_resumed_session_rate_per_client", "must not be negative")
	}
	if b := t.BanDurationForExceedingTCPTLSRate; b != nil && *b < 1 {
		v.errorf("tuning.tcp.ban_duration_for_exceeding_tcp_tls_rate", "must be at least 1 second, got %d", *b)
	}
	if m := t.ConnectionsMaskV4; m != nil && (*m < 1 || *m > 32) {
		v.errorf("tuning.tcp.connections_mask_v4", "must be between 1 and 32, got %d", *m)
	}
	if m := t.ConnectionsMaskV6; m != nil && (*m < 1 || *m > 128) {
		v.errorf("tuning.tcp.connections_mask_v6", "must be between 1 and 128, got %d", *m)
	}
}

func (c *Config) validateBind(v *validator, i int, seen map[string]int) {
	b := &c.Binds[i]
	p := fmt.Sprintf("binds[%d]", i)
	ap, err := netip.ParseAddrPort(b.ListenAddress)
	if err != nil {
		v.errorf(p+".listen_address", "%q is not an IP:port (e.g. \"127.0.0.1:53\" or \"[::1]:53\")", b.ListenAddress)
	} else {
		for _, key := range bindKeys(b.Protocol, ap) {
			if j, dup := seen[key]; dup {
				v.errorf(p+".listen_address", "%s is already used by binds[%d]", key, j)
			}
			seen[key] = i
		}
	}
	switch b.Protocol {
	case "Do53":
		if b.TLS != nil {
			v.errorf(p+".tls", "protocol Do53 takes no tls block (use DoT or DoH)")
		}
	case "DoT":
		if b.TLS == nil {
			v.errorf(p+".tls", "protocol DoT needs a tls block with certificates")
		}
	case "DoH", "DoQ", "DoH3":
	default:
		v.errorf(p+".protocol", "unknown protocol %q (want Do53, DoT, DoH, DoQ or DoH3)", b.Protocol)
	}
	validateQUICBind(v, p, b)
	if b.DoH != nil && b.Protocol != "DoH" && b.Protocol != "DoH3" {
		v.errorf(p+".doh", "a doh block needs protocol DoH")
	}
	if t := b.TLS; t != nil {
		validateTLS(v, p+".tls", t)
	}
	if d := b.DoH; d != nil {
		for j, path := range d.Paths {
			if !strings.HasPrefix(path, "/") {
				v.errorf(fmt.Sprintf("%s.doh.paths[%d]", p, j), "%q must start with /", path)
			}
		}
		if d.MaxConcurrentStreams < 1 {
			v.errorf(p+".doh.max_concurrent_streams", "must be at least 1")
		}
		if d.MaxBodySize < 12 || d.MaxBodySize > 65535 {
			v.errorf(p+".doh.max_body_size", "must be between 12 and 65535")
		}
		for key, val := range map[string]int{"max_header_list_size": d.MaxHeaderListSize, "max_connection_memory": d.MaxConnectionMemory,
			"abuse_window": d.AbuseWindow, "max_rapid_resets": d.MaxRapidResets, "max_settings_frames": d.MaxSettingsFrames,
			"max_ping_frames": d.MaxPingFrames, "max_continuation_frames": d.MaxContinuationFrames} {
			if val < 0 {
				v.errorf(p+".doh."+key, "must not be negative")
			}
		}
		for j, h := range d.CustomResponseHeaders {
			if h.Key == "" || strings.ContainsAny(h.Key, " :\r\n") || strings.ContainsAny(h.Value, "\r\n") {
				v.errorf(fmt.Sprintf("%s.doh.custom_response_headers[%d]", p, j), "invalid header %q", h.Key)
			}
		}
	}
	if b.Pool != "" && !c.poolHasBackend(b.Pool) {
		v.errorf(p+".pool", "pool %q has no backend", b.Pool)
	}
}

func validateTLS(v *validator, p string, t *BindTLS) {
	if len(t.Certificates) == 0 {
		v.errorf(p+".certificates", "at least one certificate is required")
	}
	for j, ct := range t.Certificates {
		cp := fmt.Sprintf("%s.certificates[%d]", p, j)
		if ct.Certificate == "" {
			v.errorf(cp+".certificate", "is required")
		}
		if ct.Key == "" {
			v.errorf(cp+".key", "is required")
		}
		if o := ct.OCSP; o != nil {
			if o.Responder != "" && !strings.HasPrefix(o.Responder, "http://") && !strings.HasPrefix(o.Responder, "https://") {
				v.errorf(cp+".ocsp.responder", "%q is not an http(s) URL", o.Responder)
			}
			if g := o.Generate; g != nil {
				if g.CACertificate == "" {
					v.errorf(cp+".ocsp.generate.ca_certificate", "is required")
				}
				if g.CAKey == "" {
					v.errorf(cp+".ocsp.generate.ca_key", "is required")
				}
				if g.Validity.D() < 60e9 {
					v.errorf(cp+".ocsp.generate.validity", "must be at least 1m")
				}
			}
		}
	}
	if len(t.OCSPResponseFiles) > len(t.Certificates) {
		v.errorf(p+".ocsp_response_files", "%d files for %d certificates (one per certificate, same order)",
			len(t.OCSPResponseFiles), len(t.Certificates))
	}
	if _, err := tlsframe.ParseVersion(t.MinimumVersion); err != nil {
		v.errorf(p+".minimum_version", "%v", err)
	}
	if _, err := tlsframe.ParseCipherSuites(t.Ciphers); err != nil {
		v.errorf(p+".ciphers", "%v", err)
	}
	if _, err := tlsframe.ParseCurves(t.ECDHECurves); err != nil {
		v.errorf(p+".ecdhe_curves", "%v", err)
	}
	if t.NumberOfTicketsKeys < 1 || t.NumberOfTicketsKeys > 64 {
		v.errorf(p+".number_of_tickets_keys", "must be between 1 and 64")
	}
	if t.TicketsKeysRotationDelay < 1 {
		v.errorf(p+".tickets_keys_rotation_delay", "must be at least 1 second")
	}
	if t.MaxConcurrentHandshakes < 1 {
		v.errorf(p+".max_concurrent_handshakes", "must be at least 1")
	}
	if t.HandshakeQueue < 0 {
		v.errorf(p+".handshake_queue_size", "must not be negative")
	}
}

func (c *Config) validateBackends(v *validator) {
	names := map[string]int{}
	for i := range c.Backends {
		b := &c.Backends[i]
		p := fmt.Sprintf("backends[%d]", i)
		if _, err := ParseBackendAddress(b.Address); err != nil {
			v.errorf(p+".address", "%v", err)
		}
		if j, dup := names[b.Name]; dup {
			v.errorf(p+".name", "%q is already the name of backends[%d]", b.Name, j)
		}
		names[b.Name] = i
		if b.Weight < 1 {
			v.errorf(p+".weight", "must be at least 1")
		}
		if b.UDPTimeout < 1 || b.UDPTimeout > 255 {
			v.errorf(p+".udp_timeout", "must be between 1 and 255 seconds")
		}
		h := &b.HealthChecks
		hp := p + ".health_checks"
		switch h.Mode {
		case "auto", "up", "down":
		default:
			v.errorf(hp+".mode", "must be auto, up or down, got %q", h.Mode)
		}
		if _, ok := dns.StringToType[strings.ToUpper(h.QType)]; !ok {
			v.errorf(hp+".qtype", "unknown type %q", h.QType)
		}
		if _, ok := dns.StringToClass[strings.ToUpper(h.QClass)]; !ok {
			v.errorf(hp+".qclass", "unknown class %q", h.QClass)
		}
		if _, ok := dns.IsDomainName(h.QName); !ok {
			v.errorf(hp+".qname", "%q is not a domain name", h.QName)
		}
		if h.Interval < 1 {
			v.errorf(hp+".interval", "must be at least 1 second")
		}
		if h.Timeout < 1 {
			v.errorf(hp+".timeout", "must be at least 1 millisecond")
		}
	}
	if CanonicalPolicy(c.LoadBalancingPolicies.DefaultPolicy) == "" {
		v.errorf("load_balancing_policies.default_policy", "unknown policy %q (want %s)", c.LoadBalancingPolicies.DefaultPolicy, lb.PolicyNames)
	}
	caches := map[string]bool{}
	for i, pc := range c.PacketCaches {
		p := fmt.Sprintf("packet_caches[%d]", i)
		if pc.Name == "" {
			v.errorf(p+".name", "is required")
		}
		if caches[pc.Name] {
			v.errorf(p+".name", "%q is defined twice", pc.Name)
		}
		caches[pc.Name] = true
		if pc.Size < 1 {
			v.errorf(p+".size", "must be at least 1 entry")
		}
		if pc.Shards < 1 {
			v.errorf(p+".shards", "must be at least 1")
		}
	}
	for i, pl := range c.Pools {
		p := fmt.Sprintf("pools[%d]", i)
		if pl.Policy != "" && CanonicalPolicy(pl.Policy) == "" {
			v.errorf(p+".policy", "unknown policy %q (want %s)", pl.Policy, lb.PolicyNames)
		}
		if pl.PacketCache != "" && !caches[pl.PacketCache] {
			v.errorf(p+".packet_cache", "no packet cache named %q", pl.PacketCache)
		}
	}
}

func (c *Config) poolHasBackend(pool string) bool {
	for _, b := range c.Backends {
		for _, p := range b.Pools {
			if p == pool {
				return true
			}
		}
	}
	return false
}

// ParsePrefix accepts a CIDR prefix or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a network (e.g. 192.0.2.0/24)", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or network", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// ParseBackendAddress accepts IP:port, or an IP alone (port 53).
func ParseBackendAddress(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 53), nil
	}
	if host, port, err := net.SplitHostPort(s); err == nil {
		if _, perr := strconv.Atoi(port); perr == nil {
			return netip.AddrPort{}, fmt.Errorf("%q: backends are addresses, not names (%q)", s, host)
		}
	}
	return netip.AddrPort{}, fmt.Errorf("%q is not an IP:port", s)
}
