package server

import (
	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine"
)

// ecsOptions are the engine's edns_client_subnet settings. They live in the State, so a
// reload changes them for the queries that follow, as dnsdist's runtime setters do.
func ecsOptions(cfg *config.Config) engine.ECSOptions {
	e := cfg.EDNSClientSubnet
	o := engine.ECSOptions{Override: e.OverrideExisting, SourcePrefixV4: config.DefaultECSSourcePrefixV4, SourcePrefixV6: config.DefaultECSSourcePrefixV6}
	if e.SourcePrefixV4 != nil {
		o.SourcePrefixV4 = *e.SourcePrefixV4
	}
	if e.SourcePrefixV6 != nil {
		o.SourcePrefixV6 = *e.SourcePrefixV6
	}
	return o
}

// backendECS are a backend's ECS settings for the engine.
func backendECS(b config.Backend) engine.BackendECS {
	return engine.BackendECS{UseClientSubnet: b.UseClientSubnet, DisableZeroScope: b.DisableZeroScope}
}
