package ocsp_test

import (
	"log/slog"
	"time"

	"github.com/dnsfront/dnsfront/ocsp"
)

// The server's side of the Manager: build CertSources from the config, call
// Set at start and on every reload, and put each published staple into the
// TLS certificate snapshot (tls.Certificate.OCSPStaple = staple.DER).
func ExampleManager() {
	chain, err := ocsp.ReadChainFile("server.chain.pem")
	if err != nil {
		slog.Error("certificate", "error", err)
		return
	}
	m := ocsp.NewManager(ocsp.Options{CacheDir: "/var/lib/dnsfront/ocsp", MaxRefreshDelay: 12 * time.Hour},
		func(id string, staple *ocsp.Staple) {
			// Runs on a Manager goroutine: rebuild and publish the snapshot
			// (atomic pointer), never block here. staple == nil: no staple.
		})
	defer m.Close()
	if err := m.Set([]ocsp.CertSource{{
		ID:    ocsp.CertID(chain[0]),
		Name:  "server.chain.pem",
		Chain: chain,
		Files: []string{"server.ocsp"},
		Fetch: true,
	}}); err != nil {
		slog.Error("ocsp", "error", err)
	}
	// registry.MustRegister(m.Collector()); admin API: json.Marshal(m.Status())
}
