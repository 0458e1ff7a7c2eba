package config

import (
	"strings"
	"testing"
)

func TestProxyProtocolKeys(t *testing.T) {
	cfg, err := Parse("pp.yaml", []byte(`
proxy_protocol:
  acl: ["10.0.0.0/8"]
  apply_acl_to_proxied_clients: true
binds:
  - listen_address: "127.0.0.1:53"
  - listen_address: "127.0.0.1:54"
    enable_proxy_protocol: false
  - listen_address: "127.0.0.1:853"
    protocol: DoT
    tls:
      certificates: [{certificate: a.pem, key: a.key}]
      proxy_protocol_outside_tls: true
backends:
  - address: "127.0.0.1:5300"
    use_proxy_protocol: true
    proxy_protocol_advertise_tls: true
`))
	if err != nil {
		t.Fatal(err)
	}
	pp := cfg.ProxyProtocol
	if pp.MaximumPayloadSize != DefaultProxyProtocolMaxSize || !pp.ApplyACLToProxiedClients || len(pp.ACL) != 1 {
		t.Errorf("proxy_protocol = %+v", pp)
	}
	if !cfg.Binds[0].ProxyProtocolEnabled() || cfg.Binds[1].ProxyProtocolEnabled() || !cfg.Binds[2].TLS.ProxyProtocolOutsideTLS {
		t.Errorf("binds: %+v %+v", cfg.Binds[0].BindProxy, cfg.Binds[1].BindProxy)
	}
	if b := cfg.Backends[0]; !b.UseProxyProtocol || !b.ProxyProtocolAdvertiseTLS {
		t.Errorf("backend: %+v", b.BackendProxy)
	}
}

func TestProxyProtocolErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"acl", "proxy_protocol:\n  acl: [\"10.0.0.0/33\"]\nbinds: [{listen_address: \"127.0.0.1:53\"}]\n", "pp.yaml:2:9: proxy_protocol.acl[0]"},
		{"size", "proxy_protocol:\n  maximum_payload_size: 8\nbinds: [{listen_address: \"127.0.0.1:53\"}]\n", "pp.yaml:2:25: proxy_protocol.maximum_payload_size"},
		{"advertise alone", "binds: [{listen_address: \"127.0.0.1:53\"}]\nbackends:\n  - address: \"127.0.0.1:5300\"\n    proxy_protocol_advertise_tls: true\n", "backends[0].proxy_protocol_advertise_tls: requires use_proxy_protocol"},
	} {
		_, err := Parse("pp.yaml", []byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
