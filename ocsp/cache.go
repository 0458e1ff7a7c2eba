package ocsp

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// CertID is the default CertSource.ID: the hex SHA-256 of the leaf's DER.
// It names the certificate's cache file, so a renewed certificate (new DER)
// never picks up its predecessor's staple.
func CertID(leaf *x509.Certificate) string {
	sum := sha256.Sum256(leaf.Raw)
	return hex.EncodeToString(sum[:])
}

// validID keeps IDs usable as file names in the cache directory.
func validID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// diskCache keeps the last valid fetched or minted response of each
// certificate in dir/<id>.der, so that a restart staples from the first
// handshake. Only the certificate's worker (or Set, while no worker runs)
// touches a given file.
type diskCache struct {
	dir string // "" disables the cache
}

func (c diskCache) path(id string) string { return filepath.Join(c.dir, id+".der") }

// load returns the cached staple of id, nil when there is none. A file that
// no longer validates (corrupt, expired, other certificate, revoked) is
// removed and reported in err.
func (c diskCache) load(id string, leaf, issuer *x509.Certificate, now time.Time) (*Staple, error) {
	if c.dir == "" || issuer == nil {
		return nil, nil
	}
	path := c.path(id)
	der, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ocsp: cache: %w", err)
	}
	s, err := Validate(der, leaf, issuer, now)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("ocsp: cache %s (removed): %w", path, err)
	}
	return s, nil
}

// store writes der atomically. Callers log the error and go on: the cache
// is an optimisation, never a condition for stapling.
func (c diskCache) store(id string, der []byte) error {
	if c.dir == "" {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("ocsp: cache: %w", err)
	}
	if err := WriteFileAtomic(c.path(id), der, 0o644); err != nil {
		return fmt.Errorf("ocsp: cache: %w", err)
	}
	return nil
}

func (c diskCache) remove(id string) {
	if c.dir != "" {
		os.Remove(c.path(id))
	}
}
