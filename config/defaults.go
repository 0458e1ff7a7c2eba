package config

import (
	"path/filepath"
	"strings"
	"time"
)

// DefaultACL is dnsdist's default: loopback and the private and link-local ranges.
var DefaultACL = []string{
	"127.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "192.168.0.0/16",
	"172.16.0.0/12", "::1/128", "fc00::/7", "fe80::/10",
}

// Defaults of keys dnsfront adds to dnsdist's schema, and of dnsdist keys whose dnsdist default
// does not suit a Go server. Each is documented in docs/configuration.md.
const (
	DefaultDrainTimeout   = 5 * time.Second
	DefaultUDPTimeout     = 2 // seconds, dnsdist's tuning.udp.timeout
	DefaultTCPIdleTimeout = 10 * time.Second
	DefaultMaxTCPInFlight = 100
	// DefaultGCPercent and DefaultGCMinHeadroom pace the collector (internal/memtune): the
	// heap may grow by max(live × gc_percent/100, gc_min_headroom) before a collection.
	// A TLS handshake allocates tens of short-lived kilobytes; while the heap is small
	// (a burst of handshakes, few idle connections) the 16 MiB floor lets the collector
	// run once per few hundred handshakes, which is what gc_percent 400 bought before
	// (1.25× more handshakes per server-CPU-second than Go's pacing, docs/benchmarks.md).
	// Once connections pile up the heap is paced by 100%, so the process peaks at about
	// twice its live heap, not five times: that is what an operator sizes a machine by.
	DefaultGCPercent     = 100
	DefaultGCMinHeadroom = 16 << 20
	// DefaultMemoryLimitPercent is a soft bound for the whole process. Below it the
	// pacing above rules; as the process nears it the collector runs more often instead
	// of letting the heap grow. 70% of the cgroup's (else the machine's) memory leaves 30%
	// for what the runtime does not count: the kernel's socket buffers (tens of kilobytes
	// per busy connection), page cache and other processes; the limit is soft, so a live
	// heap above it is slowed, not killed.
	DefaultMemoryLimitPercent = 70
	DefaultMinimumTLS         = "tls1.2" // dnsdist says tls1.0; TLS 1.0/1.1 are deprecated (RFC 8996)
	DefaultTicketKeys         = 5
	DefaultTicketRotation     = 43200 // seconds
	DefaultHandshakes         = 1024
	DefaultHandshakeQueue     = 4096
	DefaultHandshakeTimeout   = 5 * time.Second
	DefaultHandshakesPerIP    = 128
	DefaultDoHPath            = "/dns-query"
	DefaultDoHIdleTimeout     = 30 // seconds
	DefaultDoHStreams         = 100
	DefaultDoHBodySize        = 65535
	DefaultHealthQName        = "a.root-servers.net."
	DefaultPolicy             = "leastOutstanding"
	DefaultOCSPValidity       = 24 * time.Hour
	// DefaultECSSourcePrefixV4 and V6 are dnsdist's edns_client_subnet.source_prefix_v4/v6.
	DefaultECSSourcePrefixV4 = 24
	DefaultECSSourcePrefixV6 = 56
	// DefaultProxyProtocolMaxSize is dnsdist's proxy_protocol.maximum_payload_size.
	DefaultProxyProtocolMaxSize = 512
	// The QUIC keys of DoQ and DoH3 binds (config/quic.go).
	DefaultQUICIdleTimeout      = 5 // seconds, dnsdist's
	DefaultQUICCongestion       = "reno"
	DefaultQUICRetryThreshold   = 64
	DefaultDoQQueriesPerConnect = 65535 // dnsdist's
)

func boolPtr(b bool) *bool { return &b }

// orDefault sets *v to d when the key was absent (left at its zero value).
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}
func intPtr(i int) *int { return &i }

func (c *Config) applyDefaults() {
	g := &c.General
	orDefault(&g.DrainTimeout, Duration(DefaultDrainTimeout))
	orDefault(&g.UDPTimeout, DefaultUDPTimeout)
	orDefault(&g.TCPIdleTimeout, Duration(DefaultTCPIdleTimeout))
	orDefault(&g.MaxTCPInFlight, DefaultMaxTCPInFlight)
	orDefault(&g.MemoryLimit, MemoryLimit{Percent: DefaultMemoryLimitPercent})
	orDefault(&g.LogLevel, "info")
	orDefault(&g.GCPercent, DefaultGCPercent)
	orDefault(&g.GCMinHeadroom, ByteSize(DefaultGCMinHeadroom))
	c.Fleet.applyDefaults(filepath.Dir(c.Path))
	c.RemoteLogging.applyDefaults()
	c.EDNSClientSubnet.applyDefaults()
	if c.ACL == nil {
		c.ACL = append([]string(nil), DefaultACL...)
	}
	for i := range c.Binds {
		b := &c.Binds[i]
		orDefault(&b.Protocol, "Do53")
		b.Protocol = canonicalProtocol(b.Protocol)
		applyQUICDefaults(b)
		if b.TLS != nil {
			t := b.TLS
			orDefault(&t.MinimumVersion, DefaultMinimumTLS)
			orDefault(&t.SessionTickets, boolPtr(true))
			orDefault(&t.NumberOfTicketsKeys, DefaultTicketKeys)
			orDefault(&t.TicketsKeysRotationDelay, DefaultTicketRotation)
			orDefault(&t.MaxConcurrentHandshakes, DefaultHandshakes)
			orDefault(&t.HandshakeQueue, DefaultHandshakeQueue)
			orDefault(&t.HandshakeTimeout, Duration(DefaultHandshakeTimeout))
			orDefault(&t.MaxHandshakesPerClient, DefaultHandshakesPerIP)
			for j := range t.Certificates {
				if g := t.Certificates[j].OCSP; g != nil && g.Generate != nil && g.Generate.Validity == 0 {
					g.Generate.Validity = Duration(DefaultOCSPValidity)
				}
			}
		}
		if b.Protocol == "DoH" && b.DoH == nil {
			b.DoH = &BindDoH{}
		}
		if d := b.DoH; d != nil {
			if len(d.Paths) == 0 {
				d.Paths = []string{DefaultDoHPath}
			}
			orDefault(&d.ExactPathMatching, boolPtr(true))
			orDefault(&d.IdleTimeout, DefaultDoHIdleTimeout)
			orDefault(&d.SendCacheControlHeaders, boolPtr(true))
			orDefault(&d.MaxConcurrentStreams, DefaultDoHStreams)
			orDefault(&d.MaxBodySize, DefaultDoHBodySize)
		}
	}
	for i := range c.Backends {
		b := &c.Backends[i]
		orDefault(&b.Name, b.Address)
		orDefault(&b.Weight, 1)
		orDefault(&b.Order, 1)
		orDefault(&b.UDPTimeout, g.UDPTimeout)
		if len(b.Pools) == 0 {
			b.Pools = []string{""}
		}
		h := &b.HealthChecks
		orDefault(&h.Mode, "auto")
		orDefault(&h.QName, DefaultHealthQName)
		orDefault(&h.QType, "A")
		orDefault(&h.QClass, "IN")
		orDefault(&h.Interval, 1)
		orDefault(&h.Timeout, 1000)
		orDefault(&h.MaxFailures, 1)
		orDefault(&h.Rise, 1)
	}
	orDefault(&c.ProxyProtocol.MaximumPayloadSize, DefaultProxyProtocolMaxSize)
	orDefault(&c.LoadBalancingPolicies.DefaultPolicy, DefaultPolicy)
	for i := range c.PacketCaches {
		p := &c.PacketCaches[i]
		orDefault(&p.MaxTTL, intPtr(86400))
		orDefault(&p.TemporaryFailureTTL, intPtr(60))
		orDefault(&p.MaxNegativeTTL, intPtr(3600))
		orDefault(&p.Shards, 20)
		orDefault(&p.MaximumEntrySize, 4096)
	}
	if c.Webserver.ACL == nil {
		c.Webserver.ACL = []string{"127.0.0.1", "::1"}
	}
	c.resolvePaths()
}

// canonicalProtocol accepts any case ("dot", "DOT") and returns dnsdist's spelling.
func canonicalProtocol(p string) string {
	switch strings.ToLower(p) {
	case "do53":
		return "Do53"
	case "dot":
		return "DoT"
	case "doh":
		return "DoH"
	}
	return p
}

// resolvePaths makes every file path absolute, relative to the configuration file's
// directory, so that the server behaves the same whatever its working directory.
func (c *Config) resolvePaths() {
	if c.Path == "" {
		return
	}
	dir := filepath.Dir(c.Path)
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) && *p != "/dev/null" {
			*p = filepath.Join(dir, *p)
		}
	}
	for i := range c.Binds {
		t := c.Binds[i].TLS
		if t == nil {
			continue
		}
		for j := range t.Certificates {
			ct := &t.Certificates[j]
			abs(&ct.Certificate)
			abs(&ct.Key)
			abs(&ct.Issuer)
			if ct.OCSP != nil && ct.OCSP.Generate != nil {
				abs(&ct.OCSP.Generate.CACertificate)
				abs(&ct.OCSP.Generate.CAKey)
			}
		}
		for j := range t.OCSPResponseFiles {
			abs(&t.OCSPResponseFiles[j])
		}
		abs(&t.TicketKeyFile)
		abs(&t.KeyLogFile)
	}
	abs(&c.OCSP.CacheDir)
	if c.DevPKI != nil {
		abs(&c.DevPKI.Directory)
	}
}
