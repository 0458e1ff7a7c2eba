package config

// EDNSClientSubnet is dnsdist's edns_client_subnet: what a query bound for a backend with
// use_client_subnet carries (RFC 7871). Defaults: DefaultECSSourcePrefixV4 and V6.
type EDNSClientSubnet struct {
	// OverrideExisting replaces an ECS option the client sent; otherwise it goes as sent.
	OverrideExisting bool `yaml:"override_existing"`
	// SourcePrefixV4 and SourcePrefixV6 are how many bits of the client's address are
	// sent. 0 is allowed: it tells the backend nothing about the client.
	SourcePrefixV4 *uint8 `yaml:"source_prefix_v4"`
	SourcePrefixV6 *uint8 `yaml:"source_prefix_v6"`
}

// BackendECS are the ECS keys of a backend (inline in Backend, as in dnsdist's backend).
type BackendECS struct {
	// UseClientSubnet adds the client's subnet to the queries sent to this backend.
	UseClientSubnet bool `yaml:"use_client_subnet"`
	// DisableZeroScope keeps answers with scope 0 per subnet in the packet cache of the
	// backend's pools, instead of sharing them among all clients.
	DisableZeroScope bool `yaml:"disable_zero_scope"`
}

func (e *EDNSClientSubnet) applyDefaults() {
	if e.SourcePrefixV4 == nil {
		v := uint8(DefaultECSSourcePrefixV4)
		e.SourcePrefixV4 = &v
	}
	if e.SourcePrefixV6 == nil {
		v := uint8(DefaultECSSourcePrefixV6)
		e.SourcePrefixV6 = &v
	}
}

func (c *Config) validateECS(v *validator) {
	e := &c.EDNSClientSubnet
	if p := e.SourcePrefixV4; p != nil && *p > 32 {
		v.errorf("edns_client_subnet.source_prefix_v4", "must be between 0 and 32, got %d", *p)
	}
	if p := e.SourcePrefixV6; p != nil && *p > 128 {
		v.errorf("edns_client_subnet.source_prefix_v6", "must be between 0 and 128, got %d", *p)
	}
	// disable_zero_scope without use_client_subnet has no effect, and is accepted as
	// dnsdist accepts it: a migrated configuration must load.
}
