package server

import (
	"fmt"
	"strings"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/dnsfront/dnsfront/engine/lb"
	"github.com/dnsfront/dnsfront/engine/packetcache"
	"github.com/miekg/dns"
)

// backends is what buildState makes of the configuration's backends, pools and caches:
// the engine's State, the lb.Set behind it (health, policies, per-backend counters) and
// the packet caches by name.
type backends struct {
	state  *engine.State
	set    *lb.Set
	caches map[string]*cacheEntry
}

type cacheEntry struct {
	opts  packetcache.Options
	cache *packetcache.Cache
}

// buildState turns the configuration's ACL, backends, pools and packet caches into the
// engine's State. Caches whose settings did not change are carried over from prev, so a
// reload does not empty them; so is the health of backends that are still configured.
func buildState(cfg *config.Config, prev *backends) (*backends, error) {
	acl, err := engine.NewACL(cfg.ACL)
	if err != nil {
		return nil, err
	}
	lbcfgs := make([]lb.BackendConfig, len(cfg.Backends))
	for i, b := range cfg.Backends {
		h := b.HealthChecks
		lbcfgs[i] = lb.BackendConfig{
			Name: b.Name, Address: b.Address, Weight: b.Weight, Order: b.Order, Pools: b.Pools,
			TCPOnly: b.TCPOnly, MaxOutstanding: b.MaxOutstandingQueries,
			HealthCheck: lb.HealthCheckConfig{
				Mode:        h.Mode,
				QName:       dns.Fqdn(h.QName),
				QType:       dns.StringToType[strings.ToUpper(h.QType)],
				QClass:      dns.StringToClass[strings.ToUpper(h.QClass)],
				MustResolve: h.MustResolve,
				Interval:    time.Duration(h.Interval) * time.Second,
				Timeout:     time.Duration(h.Timeout) * time.Millisecond,
				MaxFailures: h.MaxFailures,
				Rise:        h.Rise,
				UseTCP:      h.UseTCP,
			},
		}
	}
	proxyHealthChecks(cfg, lbcfgs)
	policies := map[string]string{}
	for _, b := range cfg.Backends {
		for _, p := range b.Pools {
			policies[p] = cfg.LoadBalancingPolicies.DefaultPolicy
		}
	}
	cacheOf := map[string]string{}
	for _, p := range cfg.Pools {
		if p.Policy != "" {
			policies[p.Name] = p.Policy
		} else {
			policies[p.Name] = cfg.LoadBalancingPolicies.DefaultPolicy
		}
		cacheOf[p.Name] = p.PacketCache
	}
	set, err := lb.NewSet(lbcfgs, policies)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	out := &backends{set: set, caches: map[string]*cacheEntry{}}
	for _, pc := range cfg.PacketCaches {
		o := packetcache.Options{
			Size: pc.Size, MaxTTL: uint32(*pc.MaxTTL), MinTTL: uint32(pc.MinTTL),
			TemporaryFailureTTL: uint32(*pc.TemporaryFailureTTL), MaxNegativeTTL: uint32(*pc.MaxNegativeTTL),
			DontAge: pc.DontAge, Shards: pc.Shards, MaximumEntrySize: pc.MaximumEntrySize,
		}
		if prev != nil {
			if e, ok := prev.caches[pc.Name]; ok && e.opts == o {
				out.caches[pc.Name] = e
				continue
			}
		}
		out.caches[pc.Name] = &cacheEntry{opts: o, cache: packetcache.New(o)}
	}
	if prev != nil {
		set.Inherit(prev.set)
	}
	ebs := make([]*engine.Backend, len(set.Backends))
	for i, b := range set.Backends {
		c := cfg.Backends[i]
		ebs[i] = &engine.Backend{
			Key:            b.Name + "|" + b.Addr.String(),
			Name:           b.Name,
			Addr:           b.Addr,
			Timeout:        time.Duration(c.UDPTimeout) * time.Second,
			TCPOnly:        c.TCPOnly,
			MaxOutstanding: c.MaxOutstandingQueries,
			ECS:            backendECS(c),
			Health:         b,
		}
	}
	pools := map[string]*engine.Pool{}
	for name, p := range set.Pools {
		ep := &engine.Pool{Name: name}
		for _, b := range p.Backends {
			ep.Backends = append(ep.Backends, ebs[b.ID])
		}
		lp := p
		ep.NewPicker = func() engine.Picker { return lbPicker{lp.NewLoopPicker()} }
		if cn := cacheOf[name]; cn != "" {
			ep.Cache = out.caches[cn].cache
		}
		pools[name] = ep
	}
	out.state = engine.NewState(acl, ebs, pools)
	out.state.ECS = ecsOptions(cfg)
	if out.state.DDR, err = buildDDR(cfg); err != nil {
		return nil, err
	}
	if out.state.Proxy, err = proxyState(cfg, ebs); err != nil {
		return nil, err
	}
	out.state.NewLoopObserver = func() engine.LoopObserver { return set.NewLoop() }
	return out, nil
}

// lbPicker adapts an lb.Picker (one loop's handle on a pool) to the engine; lb backend IDs
// are indexes in State.Backends, since both follow the configuration's order.
type lbPicker struct{ pk *lb.Picker }

type outView func(int) int

func (v outView) Outstanding(id int) int { return v(id) }

func (p lbPicker) Pick(outstanding func(int) int, h uint64) int {
	b := p.pk.Pick(outView(outstanding), h)
	if b == nil {
		return -1
	}
	return b.ID
}
