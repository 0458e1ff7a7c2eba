package server

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/dnsfront/dnsfront/config"
)

// dotBind is a DoT bind with tickets rotated every hour, enough for the TLS side
// prepareListeners builds (its certificates are read later, by prepare).
func dotBind(addr string, handshakeTimeout time.Duration) config.Bind {
	on := true
	return config.Bind{ListenAddress: addr, Protocol: "DoT", TLS: &config.BindTLS{SessionTickets: &on,
		NumberOfTicketsKeys: 3, TicketsKeysRotationDelay: 3600, HandshakeTimeout: config.Duration(handshakeTimeout)}}
}

// A TLS bind that a reload adds or replaces takes the fleet's ring when the reload
// commits, like the binds already in force; before the fleet's first keys it keeps its
// own, and a bind the reload keeps is left as it is.
func TestFleetTicketsOnReload(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	s := &Server{log: log, loops: 1, fm: newTestFleetMode(t), tls: map[string]*tlsBind{}, retiring: map[*tlsBind]struct{}{}}
	s.cfg = &config.Config{Binds: []config.Bind{dotBind("127.0.0.1:853", 5*time.Second), dotBind("127.0.0.1:854", 5*time.Second)}}
	for _, b := range s.cfg.Binds {
		tb, err := newTLSBind(b, s.loops, log)
		if err != nil {
			t.Fatal(err)
		}
		s.tls[tlsKey(b)] = tb
	}
	t.Cleanup(func() {
		for _, tb := range s.tls {
			tb.close()
		}
		for tb := range s.retiring {
			tb.close()
		}
	})
	reload := func(binds ...config.Bind) {
		t.Helper()
		cfg := &config.Config{Binds: binds}
		lp, err := s.prepareListeners(cfg)
		if err != nil {
			t.Fatal(err)
		}
		s.setTLSBinds(lp.tls, lp.retired)
		s.cfg = cfg
	}
	ring := func(addr string) [][32]byte { return s.tlsBinds()[addr].tickets.Keys() }

	// Before the fleet's first keys, an added bind keeps the ring it was built with.
	own := ring("127.0.0.1:853")
	reload(append(s.cfg.Binds, dotBind("127.0.0.1:855", 5*time.Second))...)
	if got := ring("127.0.0.1:855"); len(got) != 1 || slices.Equal(got, own) {
		t.Fatalf("a bind added before the fleet's keys has ring %x, want its own single key", got)
	}

	fleetKeys := [][32]byte{{1}, {2}, {3}}
	s.fm.installTickets(fleetKeys, s.tlsBinds)
	kept := s.tlsBinds()["127.0.0.1:853"]
	// Add one bind, replace another (its handshake timeout is fixed for its connections).
	reload(dotBind("127.0.0.1:853", 5*time.Second), dotBind("127.0.0.1:854", 9*time.Second),
		dotBind("127.0.0.1:855", 5*time.Second), dotBind("127.0.0.1:856", 5*time.Second))
	if s.tlsBinds()["127.0.0.1:853"] != kept {
		t.Fatal("an unchanged bind got a new TLS side")
	}
	for _, addr := range []string{"127.0.0.1:853", "127.0.0.1:854", "127.0.0.1:855", "127.0.0.1:856"} {
		if got := ring(addr); !slices.Equal(got, fleetKeys) {
			t.Errorf("%s: ring %x after the reload, want the fleet's %x", addr, got, fleetKeys)
		}
	}
	// The next fleet rotation reaches the binds the reload added.
	next := [][32]byte{{4}, {1}, {2}, {3}}
	s.fm.installTickets(next, s.tlsBinds)
	if got := ring("127.0.0.1:856"); !slices.Equal(got, next) {
		t.Errorf("added bind after the fleet's rotation: ring %x, want %x", got, next)
	}

	// Without a fleet a reload leaves the new binds' rings alone.
	s.fm = nil
	reload(append(s.cfg.Binds, dotBind("127.0.0.1:857", 5*time.Second))...)
	if got := ring("127.0.0.1:857"); slices.Equal(got, next) {
		t.Errorf("a bind added without a fleet has the last fleet ring %x", got)
	}
}
