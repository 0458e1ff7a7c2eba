package server

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/doh"
	"github.com/dnsfront/dnsfront/engine"
	"github.com/dnsfront/dnsfront/internal/quic"
)

// The QUIC binds (DoQ, DoH3) are not the engine's: gnet does not speak QUIC, so they run
// on quic-go's goroutines (internal/quic) and hand their queries to the engine's loops.
// Their TLS side is a tlsBind like any other, under its own key (the same address may
// serve DoT over TCP and DoQ over UDP), so the reload transaction and the staples treat
// them as they treat DoT.

// tlsKey is the key of a bind's tlsBind in Server.tls.
func tlsKey(b config.Bind) string {
	if b.IsQUIC() {
		return "udp/" + b.ListenAddress
	}
	return b.ListenAddress
}

// engineBinds returns the binds the engine listens on (all but the QUIC ones), with an
// Alt-Svc header on DoH binds that a DoH3 bind backs (altSvc).
func engineBinds(cfg *config.Config, all []engine.BindOptions) []engine.BindOptions {
	out := make([]engine.BindOptions, 0, len(all))
	for _, bo := range all {
		if bo.Protocol == "DoQ" || bo.Protocol == "DoH3" {
			continue
		}
		if bo.Protocol == "DoH" && bo.DoH != nil {
			if v := altSvc(cfg, bo.Addr); v != "" {
				o := *bo.DoH
				o.CustomResponseHeaders = append(slices.Clone(o.CustomResponseHeaders), doh.Header{Key: "alt-svc", Value: v})
				bo.DoH = &o
			}
		}
		out = append(out, bo)
	}
	return out
}

// altSvc is the Alt-Svc value announcing HTTP/3 for the DoH bind on addr (RFC 7838,
// RFC 9114 section 3.1.1): when a DoH3 bind listens on the same IP with the same
// certificates, clients may switch to it; the advertisement lasts a day.
func altSvc(cfg *config.Config, addr netip.AddrPort) string {
	var dohBind *config.Bind
	for i := range cfg.Binds {
		b := &cfg.Binds[i]
		if ap, err := netip.ParseAddrPort(b.ListenAddress); err == nil && ap == addr && b.Protocol == "DoH" {
			dohBind = b
		}
	}
	if dohBind == nil || dohBind.TLS == nil {
		return ""
	}
	for _, b := range cfg.Binds {
		ap, err := netip.ParseAddrPort(b.ListenAddress)
		if err != nil || b.Protocol != "DoH3" || ap.Addr() != addr.Addr() || b.TLS == nil {
			continue
		}
		if reflect.DeepEqual(certFiles(b.TLS), certFiles(dohBind.TLS)) {
			return `h3=":` + strconv.Itoa(int(ap.Port())) + `"; ma=86400`
		}
	}
	return ""
}

func certFiles(t *config.BindTLS) [][2]string {
	var out [][2]string
	for _, c := range t.Certificates {
		out = append(out, [2]string{c.Certificate, c.Key})
	}
	return out
}

// startQUIC opens the QUIC listeners once the engine runs. all is buildBinds' list, which
// carries each bind's TLS store and DoH options.
func (s *Server) startQUIC(cfg *config.Config, all []engine.BindOptions) error {
	for i, b := range cfg.Binds {
		if !b.IsQUIC() {
			continue
		}
		ap, err := netip.ParseAddrPort(b.ListenAddress)
		if err != nil {
			return fmt.Errorf("%s: binds[%d]: %w", cfg.Path, i, err)
		}
		j := slices.IndexFunc(all, func(bo engine.BindOptions) bool { return bo.Addr == ap && bo.Protocol == b.Protocol })
		if j < 0 || all[j].TLSStore == nil {
			return fmt.Errorf("%s: binds[%d]: no TLS store for the %s bind", cfg.Path, i, b.Protocol)
		}
		q := b.QUIC
		o := quic.Options{
			Addr:                   ap,
			Protocol:               b.Protocol,
			Pool:                   b.Pool,
			Store:                  all[j].TLSStore,
			IdleTimeout:            time.Duration(q.IdleTimeout) * time.Second,
			HandshakeTimeout:       b.TLS.HandshakeTimeout.D(),
			MaxHandshakes:          b.TLS.MaxConcurrentHandshakes,
			MaxHandshakesPerClient: b.TLS.MaxHandshakesPerClient,
			RetryThreshold:         q.RetryThreshold,
			MaxConns:               q.MaxConcurrentConnections,
			Allow0RTT:              q.Enable0RTT,
			Logger:                 s.log,
		}
		if b.Protocol == "DoQ" {
			o.MaxStreams = int64(b.DoQ.MaxConcurrentQueriesPerConnection)
		} else {
			o.DoH = all[j].DoH
			o.MaxStreams = int64(b.DoH.MaxConcurrentStreams)
		}
		l, err := quic.Listen(s.eng, o)
		if err != nil {
			s.closeQUIC()
			return fmt.Errorf("%s: binds[%d]: %w", cfg.Path, i, err)
		}
		s.quic = append(s.quic, l)
	}
	if len(s.quic) > 0 {
		s.reg.MustRegister(quic.Collector(s.quic...))
	}
	s.applyQUICLimits()
	return nil
}

// stopQUIC closes the QUIC listeners gracefully (DOQ_NO_ERROR after the queries in
// flight, an HTTP/3 GOAWAY), before the engine drains: their queries in flight are the
// engine's to answer.
func (s *Server) stopQUIC(ctx context.Context) error {
	var errs []error
	for _, l := range s.quic {
		if err := l.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Server) closeQUIC() {
	for _, l := range s.quic {
		_ = l.Close()
	}
	s.quic = nil
}

// quicChanges lists the QUIC settings of binds[i] that apply only at start.
func quicChanges(p string, a, b config.Bind) []string {
	var out []string
	if !reflect.DeepEqual(a.QUIC, b.QUIC) {
		out = append(out, p+".quic")
	}
	if !reflect.DeepEqual(a.DoQ, b.DoQ) {
		out = append(out, p+".doq")
	}
	return out
}
