package server

import (
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine"
)

// buildState turns the configuration's ACL, backends and pools into the engine's State.
func buildState(cfg *config.Config) (*engine.State, error) {
	acl, err := engine.NewACL(cfg.ACL)
	if err != nil {
		return nil, err
	}
	var backends []*engine.Backend
	pools := map[string]*engine.Pool{}
	for _, b := range cfg.Backends {
		addr, err := config.ParseBackendAddress(b.Address)
		if err != nil {
			return nil, err
		}
		eb := &engine.Backend{
			Key:            b.Name + "|" + addr.String(),
			Name:           b.Name,
			Addr:           addr,
			Timeout:        time.Duration(b.UDPTimeout) * time.Second,
			TCPOnly:        b.TCPOnly,
			MaxOutstanding: b.MaxOutstandingQueries,
		}
		backends = append(backends, eb)
		for _, p := range b.Pools {
			if pools[p] == nil {
				pools[p] = &engine.Pool{Name: p}
			}
			pools[p].Backends = append(pools[p].Backends, eb)
		}
	}
	return engine.NewState(acl, backends, pools), nil
}
