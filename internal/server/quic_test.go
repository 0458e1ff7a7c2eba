package server

import (
	"net/netip"
	"testing"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/doh"
	"github.com/dnsfront/dnsfront/engine"
)

// The engine gets every bind but the QUIC ones; a DoH bind backed by a DoH3 bind on the
// same IP with the same certificate announces it with Alt-Svc, others do not.
func TestEngineBindsAndAltSvc(t *testing.T) {
	cert := []config.Certificate{{Certificate: "a.pem", Key: "a.key"}}
	other := []config.Certificate{{Certificate: "b.pem", Key: "b.key"}}
	cfg := &config.Config{Binds: []config.Bind{
		{ListenAddress: "127.0.0.1:443", Protocol: "DoH", TLS: &config.BindTLS{Certificates: cert}},
		{ListenAddress: "127.0.0.1:8443", Protocol: "DoH3", TLS: &config.BindTLS{Certificates: cert}},
		{ListenAddress: "127.0.0.2:443", Protocol: "DoH", TLS: &config.BindTLS{Certificates: cert}},
		{ListenAddress: "127.0.0.3:443", Protocol: "DoH", TLS: &config.BindTLS{Certificates: other}},
		{ListenAddress: "127.0.0.3:443", Protocol: "DoH3", TLS: &config.BindTLS{Certificates: cert}},
		{ListenAddress: "127.0.0.1:853", Protocol: "DoQ", TLS: &config.BindTLS{Certificates: cert}},
	}}
	var all []engine.BindOptions
	for _, b := range cfg.Binds {
		bo := engine.BindOptions{Addr: netip.MustParseAddrPort(b.ListenAddress), Protocol: b.Protocol}
		if b.Protocol == "DoH" || b.Protocol == "DoH3" {
			bo.DoH = &doh.Options{CustomResponseHeaders: []doh.Header{{Key: "x-served-by", Value: "dnsfront"}}}
		}
		all = append(all, bo)
	}
	shared := all[0].DoH
	got := engineBinds(cfg, all)
	if len(got) != 3 {
		t.Fatalf("%d engine binds, want the 3 DoH binds", len(got))
	}
	want := map[string]string{"127.0.0.1:443": `h3=":8443"; ma=86400`, "127.0.0.2:443": "", "127.0.0.3:443": ""}
	for _, bo := range got {
		var alt string
		for _, h := range bo.DoH.CustomResponseHeaders {
			if h.Key == "alt-svc" {
				alt = h.Value
			}
		}
		if alt != want[bo.Addr.String()] {
			t.Errorf("%s: alt-svc %q, want %q", bo.Addr, alt, want[bo.Addr.String()])
		}
	}
	if len(shared.CustomResponseHeaders) != 1 {
		t.Fatal("the bind's own doh.Options were modified")
	}
	if tlsKey(cfg.Binds[5]) == tlsKey(config.Bind{ListenAddress: "127.0.0.1:853", Protocol: "DoT"}) {
		t.Fatal("DoT and DoQ on one address share a TLS bind key")
	}
}
