// Package config holds dnsfront's YAML schema (shaped like dnsdist 2.x's YAML),
// its defaults, validation with file:line:column errors, and the difference
// between an old and a new configuration for reloads.
//
// Concurrency rule: a *Config is immutable once Load returns it.
package config
