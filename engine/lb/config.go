package lb

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// BackendConfig is one entry of the YAML `backends` list. Zero values mean
// the documented default (see docs/backends.md), so a config loader can map
// absent keys to zero.
type BackendConfig struct {
	Name    string // name; default: Address as written
	Address string // address: "ip", "ip:port", "[ipv6]:port"; port 53 by default
	Weight  int    // weight; default 1
	Order   int    // order; default 1
	Pools   []string
	TCPOnly bool // tcp_only
	// MaxOutstanding is max_outstanding_queries: 0 means unlimited. The
	// engine enforces it; policies do not look at it.
	MaxOutstanding int
	HealthCheck    HealthCheckConfig // health_checks
	ProxyProtocol  bool              // use_proxy_protocol: probes start with a LOCAL header (proxyprobe.go)
}

// HealthCheckConfig is a backend's `health_checks` block.
type HealthCheckConfig struct {
	Mode        string        // "auto" (default), "up", "down"
	QName       string        // default "a.root-servers.net."
	QType       uint16        // default A
	QClass      uint16        // default IN
	MustResolve bool          // NXDOMAIN and REFUSED count as failures too
	Interval    time.Duration // default 1s
	Timeout     time.Duration // default 1s
	MaxFailures int           // consecutive failures before down; default 1
	Rise        int           // consecutive successes before up; default 1
	UseTCP      bool          // probe over TCP (always for tcp_only backends)
}

// Health-check modes.
const (
	ModeAuto = "auto"
	ModeUp   = "up"
	ModeDown = "down"
)

// DefaultHealthCheckQName is dnsdist's health-check name.
const DefaultHealthCheckQName = "a.root-servers.net."

// withDefaults returns c with zero values replaced by defaults, or an error
// naming the backend and the offending key.
func (c BackendConfig) withDefaults() (BackendConfig, netip.AddrPort, error) {
	ap, err := parseAddress(c.Address)
	if err != nil {
		return c, ap, fmt.Errorf("lb: backend %q: address %q: %w", c.Name, c.Address, err)
	}
	if c.Name == "" {
		c.Name = c.Address
	}
	if c.Weight == 0 {
		c.Weight = 1
	}
	if c.Order == 0 {
		c.Order = 1
	}
	if len(c.Pools) == 0 {
		c.Pools = []string{""}
	}
	if c.Weight < 1 || c.Weight > 1<<31-1 {
		return c, ap, fmt.Errorf("lb: backend %s: weight %d: must be between 1 and 2147483647", c.Name, c.Weight)
	}
	if c.Order < 0 || c.MaxOutstanding < 0 {
		return c, ap, fmt.Errorf("lb: backend %s: order %d and max_outstanding_queries %d must not be negative", c.Name, c.Order, c.MaxOutstanding)
	}
	h := &c.HealthCheck
	if h.Mode == "" {
		h.Mode = ModeAuto
	}
	if h.QName == "" {
		h.QName = DefaultHealthCheckQName
	}
	h.QName = dns.Fqdn(h.QName)
	if _, ok := dns.IsDomainName(h.QName); !ok {
		return c, ap, fmt.Errorf("lb: backend %s: health_checks.qname %q is not a domain name", c.Name, h.QName)
	}
	if h.QType == 0 {
		h.QType = dns.TypeA
	}
	if h.QClass == 0 {
		h.QClass = dns.ClassINET
	}
	if h.Interval == 0 {
		h.Interval = time.Second
	}
	if h.Timeout == 0 {
		h.Timeout = time.Second
	}
	if h.MaxFailures == 0 {
		h.MaxFailures = 1
	}
	if h.Rise == 0 {
		h.Rise = 1
	}
	if c.TCPOnly {
		h.UseTCP = true
	}
	switch {
	case h.Mode != ModeAuto && h.Mode != ModeUp && h.Mode != ModeDown:
		return c, ap, fmt.Errorf("lb: backend %s: health_checks.mode %q: want auto, up or down", c.Name, h.Mode)
	case h.Interval < 0 || h.Timeout < 0 || h.MaxFailures < 0 || h.Rise < 0:
		return c, ap, fmt.Errorf("lb: backend %s: health_checks interval, timeout, max_failures and rise must not be negative", c.Name)
	}
	return c, ap, nil
}

func parseAddress(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(trimBrackets(s))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("want ip or ip:port")
	}
	return netip.AddrPortFrom(a, 53), nil
}

func trimBrackets(s string) string {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		return s[1 : len(s)-1]
	}
	return s
}

// String renders the address for logs and labels.
func (c BackendConfig) String() string {
	return c.Name + "(" + c.Address + ")"
}
