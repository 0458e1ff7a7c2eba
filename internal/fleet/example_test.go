package fleet_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dnsfront/dnsfront/internal/fleet"
)

// The wiring a server does: keys into its ticket ring, staples through its
// own validation, blocks into its dynamic-block set, the status on its admin
// API and the collector on its registry.
func Example() {
	var (
		setTicketKeys  = func(keys [][32]byte) {}                             // tlsframe.TicketKeys.SetKeys
		validateStaple = func(cert [32]byte, der []byte) error { return nil } // the ocsp package, against the issuer
		publishStaple  = func(cert [32]byte, der []byte) {}                   // into the snapshots
		addBlock       = func(b fleet.Block) {}                               // engine/rules DynBlocks.Add
		removeBlock    = func(p netip.Prefix) {}                              // engine/rules DynBlocks.Remove
	)
	tlsCfg, err := fleet.TLSConfig("/etc/dnsfront/etcd-ca.pem", "/etc/dnsfront/etcd-dns1.pem", "/etc/dnsfront/etcd-dns1.key")
	if err != nil {
		return
	}
	f, err := fleet.Start(context.Background(), fleet.Options{
		Name:          "fleet-a",
		Endpoints:     []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"},
		TLS:           tlsCfg,
		DialTimeout:   5 * time.Second,
		Member:        "dns1",
		RotationDelay: 12 * time.Hour, // tickets_keys_rotation_delay
		NumberOfKeys:  5,              // number_of_tickets_keys
		SecretFile:    "/etc/dnsfront/fleet.secret",
		Log:           slog.Default(),
		OnTicketKeys:  setTicketKeys,
		OnStaple: func(cert [32]byte, der []byte) {
			if validateStaple(cert, der) == nil {
				publishStaple(cert, der)
			}
		},
		OnBlock:   addBlock,
		OnUnblock: removeBlock,
	})
	if err != nil {
		return
	}
	defer f.Close()
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/fleet", f.Handler())
	prometheus.NewRegistry().MustRegister(f.Collector())
	// The leader, after fetching and validating a staple:
	if f.IsLeader() {
		_ = f.PublishStaple(context.Background(), fleet.CertSHA256([]byte("certificate DER")), []byte("staple DER"))
	}
}
