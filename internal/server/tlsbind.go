package server

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/internal/devpki"
	"github.com/dnsfront/dnsfront/tlsframe"
)

// tlsBind is the TLS side of one DoT or DoH bind. Its store and ticket ring live as long
// as the listener: a reload publishes new snapshots into the same store and keeps the
// ticket keys, so sessions resume across reloads.
type tlsBind struct {
	addr    string
	store   *tlsframe.Store
	hs      *tlsframe.Handshaker
	tickets *tlsframe.TicketKeys
	keyLog  *os.File  // key_log_file, opened once for the life of the bind
	limit   *tlsLimit // tuning.tcp's per-client limits in force (tlslimit.go)
}

// ensureDevPKI creates the development PKI the configuration asks for.
func ensureDevPKI(cfg *config.Config) error {
	if cfg.DevPKI == nil {
		return nil
	}
	if _, err := devpki.Ensure(cfg.DevPKI.Directory, time.Now()); err != nil {
		return fmt.Errorf("dev_pki: %w", err)
	}
	return nil
}

func tlsOptions(t *config.BindTLS, protos []string) (tlsframe.Options, error) {
	minV, err := tlsframe.ParseVersion(t.MinimumVersion)
	if err != nil {
		return tlsframe.Options{}, err
	}
	suites, err := tlsframe.ParseCipherSuites(t.Ciphers)
	if err != nil {
		return tlsframe.Options{}, err
	}
	curves, err := tlsframe.ParseCurves(t.ECDHECurves)
	if err != nil {
		return tlsframe.Options{}, err
	}
	return tlsframe.Options{MinVersion: minV, CipherSuites: suites, CurvePreferences: curves, NextProtos: protos, SessionTickets: *t.SessionTickets}, nil
}

// loadSnapshot loads a bind's certificates and keys into a snapshot. With no ticket ring
// (check-config) session tickets are off; keyLog may be nil.
func loadSnapshot(b config.Bind, tickets *tlsframe.TicketKeys, keyLog *os.File) (*tlsframe.Snapshot, error) {
	opts, err := tlsOptions(b.TLS, alpnFor(b.Protocol))
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", b.ListenAddress, err)
	}
	if keyLog != nil { // a nil *os.File would make a non-nil io.Writer
		opts.KeyLogWriter = keyLog
	}
	if tickets == nil {
		opts.SessionTickets = false
	}
	specs := make([]tlsframe.CertSpec, len(b.TLS.Certificates))
	for i, c := range b.TLS.Certificates {
		specs[i] = tlsframe.CertSpec{ChainFile: c.Certificate, KeyFile: c.Key}
	}
	snap, err := tlsframe.BuildSnapshot(specs, opts, tickets)
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", b.ListenAddress, err)
	}
	return snap, nil
}

func alpnFor(protocol string) []string {
	if protocol == "DoH" {
		return []string{"h2", "http/1.1"}
	}
	return []string{"dot"}
}

func newTLSBind(b config.Bind, loops int, log *slog.Logger) (*tlsBind, error) {
	t := b.TLS
	tickets, err := tlsframe.NewTicketKeys(t.NumberOfTicketsKeys, time.Duration(t.TicketsKeysRotationDelay)*time.Second, t.TicketKeyFile)
	if err != nil {
		return nil, fmt.Errorf("bind %s: %w", b.ListenAddress, err)
	}
	if t.TicketKeyFile == "" {
		tickets.Start() // keys from a file rotate when the file does (reload)
	}
	tb := &tlsBind{
		addr:    b.ListenAddress,
		store:   tlsframe.NewStore(loops),
		tickets: tickets,
		hs: tlsframe.NewHandshaker(tlsframe.HandshakerOptions{
			MaxConcurrent: t.MaxConcurrentHandshakes,
			MaxQueue:      t.HandshakeQueue,
			PerClient:     t.MaxHandshakesPerClient,
			Timeout:       t.HandshakeTimeout.D(),
			Logger:        log.With("listener", b.ListenAddress),
		}),
	}
	if t.KeyLogFile != "" {
		f, err := os.OpenFile(t.KeyLogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			tickets.Stop()
			return nil, fmt.Errorf("bind %s: key_log_file: %w", b.ListenAddress, err)
		}
		tb.keyLog = f
	}
	return tb, nil
}
