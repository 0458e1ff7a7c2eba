package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"time"
)

// The fleet section (docs/fleet.md): Config.Fleet, nil when the instance acts alone.

// DefaultFleetDialTimeout bounds a connection attempt and each request to
// etcd: etcd answers on a LAN within milliseconds, and a fleet member that
// waits longer only delays noticing that etcd is gone (it keeps serving
// meanwhile either way).
const DefaultFleetDialTimeout = 5 * time.Second

// Fleet makes instances behind one anycast address share session-ticket
// keys, staples and dynamic blocks through etcd.
type Fleet struct {
	// Name is the fleet's key prefix in etcd: /dnsfront/<name>/.
	Name string    `yaml:"name"`
	Etcd FleetEtcd `yaml:"etcd"`
	// SecretFile holds a secret shared by every member (at least 16 bytes) that seals the
	// ticket keys stored in etcd; without it only etcd's access control protects them.
	SecretFile string `yaml:"secret_file"`
}

// FleetEtcd is how to reach etcd.
type FleetEtcd struct {
	Endpoints []string  `yaml:"endpoints"`
	TLS       *FleetTLS `yaml:"tls"`
	Username  string    `yaml:"username"`
	Password  string    `yaml:"password"`
	// DialTimeout bounds each connection attempt and request.
	DialTimeout Duration `yaml:"dial_timeout"`
}

// FleetTLS is the client side of TLS to etcd: the CA that signed etcd's certificates and
// this member's client certificate and key (etcd's --client-cert-auth).
type FleetTLS struct {
	CA          string `yaml:"ca"`
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
}

func (f *Fleet) applyDefaults(dir string) {
	if f == nil {
		return
	}
	orDefault(&f.Etcd.DialTimeout, Duration(DefaultFleetDialTimeout))
	abs := func(p *string) {
		if dir != "" && *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&f.SecretFile)
	if t := f.Etcd.TLS; t != nil {
		abs(&t.CA)
		abs(&t.Certificate)
		abs(&t.Key)
	}
}

var fleetName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func (c *Config) validateFleet(v *validator, f *Fleet) {
	if f == nil {
		return
	}
	if !fleetName.MatchString(f.Name) {
		v.errorf("fleet.name", "%q must be 1 to 63 letters, digits, '.', '_' or '-' (it is the etcd prefix /dnsfront/<name>/)", f.Name)
	}
	e := &f.Etcd
	if len(e.Endpoints) == 0 {
		v.errorf("fleet.etcd.endpoints", "at least one etcd endpoint is required (e.g. \"https://10.0.0.1:2379\")")
	}
	for i, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" {
			v.errorf(fmt.Sprintf("fleet.etcd.endpoints[%d]", i), "%q is not an etcd client URL (want http(s)://host:port)", ep)
			continue
		}
		if u.Scheme == "http" && e.TLS != nil {
			v.errorf(fmt.Sprintf("fleet.etcd.endpoints[%d]", i), "%q is plain http, but fleet.etcd.tls is set: use https", ep)
		}
	}
	if t := e.TLS; t != nil && (t.Certificate == "") != (t.Key == "") {
		v.errorf("fleet.etcd.tls", "certificate and key go together")
	}
	if e.Password != "" && e.Username == "" {
		v.errorf("fleet.etcd.username", "a password needs a username")
	}
	if e.DialTimeout.D() <= 0 {
		v.errorf("fleet.etcd.dial_timeout", "must be positive")
	}
	// The fleet hands one key ring to every TLS bind: they must agree on
	// what it is, and none may read its keys from a file instead.
	first := -1
	for i := range c.Binds {
		t := c.Binds[i].TLS
		if t == nil || (t.SessionTickets != nil && !*t.SessionTickets) {
			continue
		}
		p := fmt.Sprintf("binds[%d].tls", i)
		if t.TicketKeyFile != "" {
			v.errorf(p+".ticket_key_file", "cannot be used with fleet: the fleet distributes the ticket keys")
		}
		if first < 0 {
			first = i
			continue
		}
		f0 := c.Binds[first].TLS
		if t.TicketsKeysRotationDelay != f0.TicketsKeysRotationDelay {
			v.errorf(p+".tickets_keys_rotation_delay", "is %d, binds[%d] has %d: with fleet, every TLS bind shares one key ring", t.TicketsKeysRotationDelay, first, f0.TicketsKeysRotationDelay)
		}
		if t.NumberOfTicketsKeys != f0.NumberOfTicketsKeys {
			v.errorf(p+".number_of_tickets_keys", "is %d, binds[%d] has %d: with fleet, every TLS bind shares one key ring", t.NumberOfTicketsKeys, first, f0.NumberOfTicketsKeys)
		}
	}
}

// FleetTicketSettings returns the rotation delay and number of keys of the
// ring a fleet shares: those of the TLS binds with session tickets
// (validation makes them agree), else dnsdist's defaults.
func (c *Config) FleetTicketSettings() (delay time.Duration, keys int) {
	for i := range c.Binds {
		t := c.Binds[i].TLS
		if t != nil && (t.SessionTickets == nil || *t.SessionTickets) {
			return time.Duration(t.TicketsKeysRotationDelay) * time.Second, t.NumberOfTicketsKeys
		}
	}
	return DefaultTicketRotation * time.Second, DefaultTicketKeys
}
