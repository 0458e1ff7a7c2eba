package fleet

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// TLSConfig builds the client side of TLS to etcd: ca verifies etcd's
// certificates (empty: the system roots), certificate and key are this
// member's client certificate (both or neither), which etcd maps to a user
// when it runs with --client-cert-auth (docs/fleet.md).
func TLSConfig(ca, certificate, key string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("fleet: etcd ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("fleet: etcd ca: %s holds no PEM certificate", ca)
		}
		cfg.RootCAs = pool
	}
	if (certificate == "") != (key == "") {
		return nil, fmt.Errorf("fleet: etcd client certificate and key go together (certificate %q, key %q)", certificate, key)
	}
	if certificate != "" {
		pair, err := tls.LoadX509KeyPair(certificate, key)
		if err != nil {
			return nil, fmt.Errorf("fleet: etcd client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
