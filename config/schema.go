package config

// The schema follows dnsdist 2.x's YAML (shared/reference/dnsdist-settings-definitions.yml):
// where a concept matches, the key name and its unit are dnsdist's (udp_timeout in seconds,
// health-check timeout in milliseconds, ...). Keys that dnsdist does not have use Go durations
// ("24h", "500ms") so that their unit is explicit.

import "github.com/goccy/go-yaml/ast"

// Config is the whole configuration file. It is immutable once Load returns it.
type Config struct {
	// Path is the file the configuration was read from (not a YAML key).
	Path string `yaml:"-"`
	// file is the parsed YAML, to locate keys in errors found after loading (At).
	file *ast.File

	General               General               `yaml:"general"`
	ACL                   []string              `yaml:"acl"`
	Binds                 []Bind                `yaml:"binds"`
	Backends              []Backend             `yaml:"backends"`
	Pools                 []Pool                `yaml:"pools"`
	LoadBalancingPolicies LoadBalancingPolicies `yaml:"load_balancing_policies"`
	PacketCaches          []PacketCache         `yaml:"packet_caches"`
	Webserver             Webserver             `yaml:"webserver"`
	OCSP                  OCSPSettings          `yaml:"ocsp"`
	DemoBackend           *DemoBackend          `yaml:"demo_backend"`
	DevPKI                *DevPKI               `yaml:"dev_pki"`
	Tuning                Tuning                `yaml:"tuning"`
	Fleet                 *Fleet                `yaml:"fleet"`          // fleet.go; nil: this instance acts alone
	DDR                   *DDR                  `yaml:"ddr"`            // ddr.go; nil: no DDR answers
	ProxyProtocol         ProxyProtocol         `yaml:"proxy_protocol"` // proxy.go
	RemoteLogging         RemoteLogging         `yaml:"remote_logging"` // dnstap.go

	// edns_client_subnet (ecs.go).
	EDNSClientSubnet EDNSClientSubnet `yaml:"edns_client_subnet"`

	// Rules holds query_rules, response_rules, cache_hit_response_rules,
	// self_answered_response_rules, dynamic_rules and dynamic_rules_settings (rules.go).
	Rules `yaml:",inline"`
}

// General holds process-wide settings.
type General struct {
	// EventLoops is the number of gnet event loops; 0 means one per core.
	EventLoops int `yaml:"event_loops"`
	// ServerID is reported by the admin API (dnsdist's server_id).
	ServerID string `yaml:"server_id"`
	// DrainTimeout bounds how long a stopping server waits for queries in flight.
	DrainTimeout Duration `yaml:"drain_timeout"`
	// UDPTimeout is the default backend timeout in seconds (dnsdist's tuning.udp.timeout);
	// a backend's udp_timeout overrides it.
	UDPTimeout int `yaml:"udp_timeout"`
	// TCPIdleTimeout closes client TCP/DoT connections that sent nothing for this long.
	TCPIdleTimeout Duration `yaml:"tcp_idle_timeout"`
	// MaxTCPInFlight bounds the queries in flight on one client stream connection.
	MaxTCPInFlight int `yaml:"max_tcp_in_flight"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `yaml:"log_level"`
	// GCPercent is how much the heap may grow, as a percentage of the live heap, before
	// the collector runs (GOGC) once the heap is large; GCMinHeadroom is the least it may
	// grow by, which rules while the heap is small. -1 turns the collector off.
	// The GOGC environment variable, when set, wins.
	GCPercent     int      `yaml:"gc_percent"`
	GCMinHeadroom ByteSize `yaml:"gc_min_headroom"`
	// MemoryLimit is the runtime's soft memory limit: bytes, a percentage of the cgroup's
	// or the machine's memory, or off. The GOMEMLIMIT environment variable, when set, wins.
	MemoryLimit MemoryLimit `yaml:"memory_limit"`
}

// Bind is one listening address (dnsdist's bind).
type Bind struct {
	ListenAddress string `yaml:"listen_address"`
	// Protocol is Do53 (UDP and TCP), DoT or DoH.
	Protocol string `yaml:"protocol"`
	// Pool names the backend pool that serves this bind ("" is the default pool).
	Pool string   `yaml:"pool"`
	TLS  *BindTLS `yaml:"tls"`
	DoH  *BindDoH `yaml:"doh"`
	TCP  *BindTCP `yaml:"tcp"`

	// DoQ and DoH3 (quic.go).
	QUIC *BindQUIC `yaml:"quic"`
	DoQ  *BindDoQ  `yaml:"doq"`
	// PadResponses pads every answer to a query with EDNS on an encrypted transport
	// (RFC 7830), not only answers to padded queries.
	PadResponses bool             `yaml:"pad_responses"`
	BindProxy    `yaml:",inline"` // enable_proxy_protocol (proxy.go)
}

// BindTCP tunes the stream side of a bind.
type BindTCP struct {
	MaxConcurrentConnections int `yaml:"max_concurrent_connections"`
}

// BindTLS is dnsdist's incoming_tls.
type BindTLS struct {
	Certificates      []Certificate `yaml:"certificates"`
	OCSPResponseFiles []string      `yaml:"ocsp_response_files"`
	MinimumVersion    string        `yaml:"minimum_version"`
	// Ciphers lists TLS 1.2 cipher suites by their Go/IANA names, separated by ':' or ','.
	Ciphers string `yaml:"ciphers"`
	// ECDHECurves lists key exchanges (X25519MLKEM768, X25519, P-256, P-384, P-521).
	ECDHECurves              string `yaml:"ecdhe_curves"`
	SessionTickets           *bool  `yaml:"session_tickets"`
	NumberOfTicketsKeys      int    `yaml:"number_of_tickets_keys"`
	TicketsKeysRotationDelay int    `yaml:"tickets_keys_rotation_delay"`
	TicketKeyFile            string `yaml:"ticket_key_file"`
	KeyLogFile               string `yaml:"key_log_file"`
	// Handshake limits (not in dnsdist, whose OpenSSL handshakes run inline).
	MaxConcurrentHandshakes int      `yaml:"max_concurrent_handshakes"`
	HandshakeQueue          int      `yaml:"handshake_queue_size"`
	HandshakeTimeout        Duration `yaml:"handshake_timeout"`
	MaxHandshakesPerClient  int      `yaml:"max_handshakes_per_client"`
	ProxyProtocolOutsideTLS bool     `yaml:"proxy_protocol_outside_tls"` // proxy.go
}

// Certificate is one certificate/key pair (dnsdist's incoming_tls_certificate_key_pair),
// with the source of its OCSP staple.
type Certificate struct {
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
	// Issuer is the PEM certificate of the CA that issued the leaf, for validating its
	// staples when the chain file does not carry it (not sent to clients).
	Issuer string    `yaml:"issuer"`
	OCSP   *CertOCSP `yaml:"ocsp"`
}

// CertOCSP chooses how a certificate's staple is obtained besides ocsp_response_files.
type CertOCSP struct {
	// Fetch asks the CA's responder (the certificate's AIA OCSP URL, or Responder).
	Fetch     bool          `yaml:"fetch"`
	Responder string        `yaml:"responder"`
	Generate  *OCSPGenerate `yaml:"generate"`
}

// OCSPGenerate mints staples with a local CA key (dnsdist's generateOCSPResponse, kept fresh).
type OCSPGenerate struct {
	CACertificate string   `yaml:"ca_certificate"`
	CAKey         string   `yaml:"ca_key"`
	Validity      Duration `yaml:"validity"`
}

// BindDoH is dnsdist's incoming_doh.
type BindDoH struct {
	Paths                   []string       `yaml:"paths"`
	ExactPathMatching       *bool          `yaml:"exact_path_matching"`
	IdleTimeout             int            `yaml:"idle_timeout"`
	CustomResponseHeaders   []HeaderConfig `yaml:"custom_response_headers"`
	SendCacheControlHeaders *bool          `yaml:"send_cache_control_headers"`
	TrustForwardedForHeader bool           `yaml:"trust_forwarded_for_header"`
	MaxConcurrentStreams    int            `yaml:"max_concurrent_streams"`
	MaxBodySize             int            `yaml:"max_body_size"`
	// Limits and abuse defences (docs/doh.md); 0 takes the doh package's default.
	MaxHeaderListSize     int `yaml:"max_header_list_size"`
	MaxConnectionMemory   int `yaml:"max_connection_memory"`
	AbuseWindow           int `yaml:"abuse_window"` // seconds
	MaxRapidResets        int `yaml:"max_rapid_resets"`
	MaxSettingsFrames     int `yaml:"max_settings_frames"`
	MaxPingFrames         int `yaml:"max_ping_frames"`
	MaxContinuationFrames int `yaml:"max_continuation_frames"`
}

// HeaderConfig is one custom HTTP response header.
type HeaderConfig struct {
	Key   string `yaml:"key"`
	Value string `yaml:"value"`
}

// Backend is one downstream resolver (dnsdist's backend).
type Backend struct {
	Address string   `yaml:"address"`
	Name    string   `yaml:"name"`
	Weight  int      `yaml:"weight"`
	Order   int      `yaml:"order"`
	Pools   []string `yaml:"pools"`
	TCPOnly bool     `yaml:"tcp_only"`
	// UDPTimeout in seconds; 0 uses general.udp_timeout.
	UDPTimeout            int              `yaml:"udp_timeout"`
	MaxOutstandingQueries int              `yaml:"max_outstanding_queries"`
	HealthChecks          HealthChecks     `yaml:"health_checks"`
	BackendProxy          `yaml:",inline"` // use_proxy_protocol, proxy_protocol_advertise_tls (proxy.go)
	BackendECS            `yaml:",inline"` // use_client_subnet, disable_zero_scope (ecs.go)
}

// HealthChecks is dnsdist's health_check.
type HealthChecks struct {
	// Mode is auto (periodic checks), up or down (forced).
	Mode        string `yaml:"mode"`
	QName       string `yaml:"qname"`
	QType       string `yaml:"qtype"`
	QClass      string `yaml:"qclass"`
	MustResolve bool   `yaml:"must_resolve"`
	// Interval in seconds, Timeout in milliseconds (dnsdist's units).
	Interval    int  `yaml:"interval"`
	Timeout     int  `yaml:"timeout"`
	MaxFailures int  `yaml:"max_failures"`
	Rise        int  `yaml:"rise"`
	UseTCP      bool `yaml:"use_tcp"`
}

// Pool groups backends behind one policy and optional packet cache.
type Pool struct {
	Name        string `yaml:"name"`
	Policy      string `yaml:"policy"`
	PacketCache string `yaml:"packet_cache"`
}

// LoadBalancingPolicies holds the default policy.
type LoadBalancingPolicies struct {
	DefaultPolicy string `yaml:"default_policy"`
}

// PacketCache is dnsdist's packet_cache.
type PacketCache struct {
	Name                string `yaml:"name"`
	Size                int    `yaml:"size"`
	MaxTTL              *int   `yaml:"max_ttl"`
	MinTTL              int    `yaml:"min_ttl"`
	TemporaryFailureTTL *int   `yaml:"temporary_failure_ttl"`
	MaxNegativeTTL      *int   `yaml:"max_negative_ttl"`
	DontAge             bool   `yaml:"dont_age"`
	Shards              int    `yaml:"shards"`
	MaximumEntrySize    int    `yaml:"maximum_entry_size"`
}

// Webserver is the admin HTTP server (dnsdist's webserver).
type Webserver struct {
	ListenAddresses []string `yaml:"listen_addresses"`
	APIKey          string   `yaml:"api_key"`
	ACL             []string `yaml:"acl"`
}

// OCSPSettings are the process-wide knobs of the staple life cycle.
type OCSPSettings struct {
	CacheDir        string   `yaml:"cache_dir"`
	MinRefreshDelay Duration `yaml:"min_refresh_delay"`
	MaxRefreshDelay Duration `yaml:"max_refresh_delay"`
	BackoffCap      Duration `yaml:"backoff_cap"`
	RequestTimeout  Duration `yaml:"request_timeout"`
	MaxResponseSize int      `yaml:"max_response_size"`
	HTTPProxy       string   `yaml:"http_proxy"`
}

// DemoBackend starts an in-process authoritative server for dnsfront.test, so that a
// development setup answers without internet. It is reached through an ordinary backend entry.
type DemoBackend struct {
	ListenAddress string `yaml:"listen_address"`
}

// DevPKI creates a development CA, certificates and OCSP responses in Directory at start
// when they are missing or stale; the binds then name those files like any others.
type DevPKI struct {
	Directory string `yaml:"directory"`
}
