package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// stapleRecord is one certificate's staple as the leader published it.
type stapleRecord struct {
	DER     []byte    `json:"der"`
	Written time.Time `json:"written"`
	Origin  string    `json:"origin"`
}

// PublishStaple writes the staple of the certificate whose DER has the
// SHA-256 certSHA256, for every member to validate and staple. The leader
// calls it after fetching and validating a response; staples carry no
// lease: each one ends at its own nextUpdate, whoever leads by then.
func (f *Fleet) PublishStaple(ctx context.Context, certSHA256 [32]byte, der []byte) error {
	if len(der) == 0 {
		return errors.New("fleet: empty staple")
	}
	val, err := jsonString(stapleRecord{DER: der, Written: time.Now().UTC(), Origin: f.opt.Member})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opt.DialTimeout)
	defer cancel()
	if _, err := f.cli.Put(ctx, f.prefix+staplesDir+hex.EncodeToString(certSHA256[:]), val); err != nil {
		return fmt.Errorf("fleet: publish staple for %x: %w", certSHA256[:8], err)
	}
	return nil
}

// CertSHA256 is the key under which a certificate's staple is shared: the
// SHA-256 of the certificate's DER.
func CertSHA256(certDER []byte) [32]byte { return sha256.Sum256(certDER) }

func (f *Fleet) applyStaple(name string, val []byte) func() {
	var fp [32]byte
	b, err := hex.DecodeString(name)
	var rec stapleRecord
	if err == nil && len(b) == len(fp) {
		copy(fp[:], b)
		err = json.Unmarshal(val, &rec)
	} else if err == nil {
		err = fmt.Errorf("%d-byte fingerprint", len(b))
	}
	if err != nil || len(rec.DER) == 0 {
		f.log.Error("fleet: ignoring a malformed staple record", "key", f.prefix+staplesDir+name, "err", err)
		return nil
	}
	f.mu.Lock()
	old, had := f.staples[fp]
	f.staples[fp] = rec
	f.noteLag(rec.Written)
	f.mu.Unlock()
	if had && string(old.DER) == string(rec.DER) {
		return nil
	}
	return func() {
		if f.opt.OnStaple != nil {
			f.opt.OnStaple(fp, rec.DER)
		}
	}
}
