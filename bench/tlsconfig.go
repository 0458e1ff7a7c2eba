package bench

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/dnsfront/dnsfront/tlsframe"
)

// TLSOptions describe the client side of a TLS connection.
type TLSOptions struct {
	SNI     string   // server name sent and verified; empty: the target's host
	CAFile  string   // PEM roots to verify the server with; empty: no verification
	Version string   // "1.2", "1.3" or "" (both, 1.3 preferred)
	Curves  []string // key exchange groups by name; empty: Go's defaults
	ALPN    []string // protocols offered
}

// loadCAFile reads every certificate of a PEM file.
func loadCAFile(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench: CA file: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("bench: %s: no CERTIFICATE block", path)
	}
	return certs, nil
}

// clientTLS builds the tls.Config shared by every connection of a run, and
// the CA certificates it loaded (candidate staple issuers).
//
// Chain verification is done in VerifyConnection with a cache of chains
// already verified: a run sees the same chain on every handshake, and an
// x509 path verification per handshake (a signature check or two) would take
// CPU from the server sharing the machine, skewing the very figures measured.
// Only successful verifications are cached, keyed by the whole chain and the
// server name.
func clientTLS(o TLSOptions, defaultSNI string) (*tls.Config, []*x509.Certificate, error) {
	cfg := &tls.Config{
		ServerName: o.SNI,
		NextProtos: o.ALPN,
	}
	if cfg.ServerName == "" {
		cfg.ServerName = defaultSNI
	}
	switch o.Version {
	case "", "any":
		cfg.MinVersion = tls.VersionTLS12
	case "1.2", "tls1.2":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	case "1.3", "tls1.3":
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	default:
		return nil, nil, fmt.Errorf("bench: TLS version %q: want 1.2 or 1.3", o.Version)
	}
	ids, err := tlsframe.ParseCurves(strings.Join(o.Curves, ","))
	if err != nil {
		return nil, nil, err
	}
	cfg.CurvePreferences = ids

	var roots []*x509.Certificate
	if o.CAFile == "" {
		cfg.InsecureSkipVerify = true
		return cfg, nil, nil
	}
	roots, err = loadCAFile(o.CAFile)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	v := &chainCache{pool: pool, ok: make(map[[32]byte]bool)}
	cfg.InsecureSkipVerify = true // verified below, with the cache
	cfg.VerifyConnection = v.verify
	return cfg, roots, nil
}

type chainCache struct {
	pool *x509.CertPool
	mu   sync.Mutex
	ok   map[[32]byte]bool
}

func (v *chainCache) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("bench: server sent no certificate")
	}
	h := sha256.New()
	h.Write([]byte(cs.ServerName))
	for _, c := range cs.PeerCertificates {
		h.Write(c.Raw)
	}
	var key [32]byte
	h.Sum(key[:0])
	v.mu.Lock()
	done := v.ok[key]
	v.mu.Unlock()
	if done {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		DNSName:       cs.ServerName,
		Roots:         v.pool,
		Intermediates: inter,
	})
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	v.mu.Lock()
	if len(v.ok) > 64 {
		clear(v.ok)
	}
	v.ok[key] = true
	v.mu.Unlock()
	return nil
}
