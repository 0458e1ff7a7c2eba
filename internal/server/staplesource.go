package server

import (
	"cmp"
	"crypto/x509"
	"fmt"
	"log/slog"
	"slices"

	"github.com/dnsfront/dnsfront/config"
	"github.com/dnsfront/dnsfront/ocsp"
	"github.com/dnsfront/dnsfront/tlsframe"
)

// The OCSP side of the TLS binds: which source staples which certificate of which bind,
// and the manager's options. staples.go delivers what the manager publishes.

// stapleSources lists the OCSP sources of binds[bi]'s certificates for the manager, and
// the routes from each source to the snapshot entry it staples in store (nil for
// check-config). Errors name the file and the key.
func stapleSources(cfg *config.Config, bi int, snap *tlsframe.Snapshot, store *tlsframe.Store, routes map[string][]stapleRoute, srcs map[string]ocsp.CertSource, keys map[string]string) error {
	b := cfg.Binds[bi]
	certs := snap.Certificates()
	for i, c := range b.TLS.Certificates {
		if i >= len(certs) {
			break
		}
		ci := certs[i]
		src := ocsp.CertSource{ID: ci.ID, Name: c.Certificate, Chain: ci.Chain}
		if len(ci.Chain) < 2 && c.Issuer == "" {
			src.IssuerFiles = caFiles(cfg, c.Certificate)
		}
		if c.Issuer != "" {
			key := fmt.Sprintf("binds[%d].tls.certificates[%d].issuer", bi, i)
			issuer, err := ocsp.ReadCertFile(c.Issuer)
			if err != nil {
				return cfg.At(key, err)
			}
			if err := ci.Chain[0].CheckSignatureFrom(issuer); err != nil {
				return cfg.At(key, fmt.Errorf("%s did not issue %s: %w", c.Issuer, c.Certificate, err))
			}
			// The manager takes the issuer from the chain: give it a chain that ends with it.
			src.Chain = append([]*x509.Certificate{ci.Chain[0]}, issuer)
		}
		if i < len(b.TLS.OCSPResponseFiles) {
			src.Files = []string{b.TLS.OCSPResponseFiles[i]}
		}
		if o := c.OCSP; o != nil {
			src.Fetch, src.Responder = o.Fetch, o.Responder
			if g := o.Generate; g != nil {
				src.Generate = &ocsp.GenerateSpec{CACertFile: g.CACertificate, CAKeyFile: g.CAKey, Validity: g.Validity.D()}
			}
		}
		if len(src.Files) == 0 && !src.Fetch && src.Generate == nil {
			continue // no staple source: this bind serves the certificate bare
		}
		routes[src.ID] = append(routes[src.ID], stapleRoute{store: store, certID: ci.ID})
		if _, ok := keys[src.ID]; !ok {
			keys[src.ID] = fmt.Sprintf("binds[%d].tls.certificates[%d]", bi, i)
		}
		srcs[src.ID] = mergeSources(srcs[src.ID], src)
	}
	return nil
}

// caFiles lists the files of the configuration that may hold the issuer of a leaf whose
// chain lacks it (dnsdist configurations point at the leaf alone): every certificate's
// issuer, every generate CA, and the other certificate files (whose intermediates may be
// the one). The ocsp manager takes the first certificate among them that signed the leaf.
func caFiles(cfg *config.Config, self string) []string {
	var files []string
	add := func(f string) {
		if f != "" && f != self && !slices.Contains(files, f) {
			files = append(files, f)
		}
	}
	for _, b := range cfg.Binds {
		if b.TLS == nil {
			continue
		}
		for _, c := range b.TLS.Certificates {
			add(c.Issuer)
			if c.OCSP != nil && c.OCSP.Generate != nil {
				add(c.OCSP.Generate.CACertificate)
			}
		}
	}
	for _, b := range cfg.Binds {
		if b.TLS == nil {
			continue
		}
		for _, c := range b.TLS.Certificates {
			add(c.Certificate)
		}
	}
	return files
}

// mergeSources combines the staple sources of binds that serve the same certificate: a
// valid response is a fact about the certificate, whichever bind's setting obtained it.
func mergeSources(a, b ocsp.CertSource) ocsp.CertSource {
	if a.ID == "" {
		return b
	}
	for _, f := range b.Files {
		if !slices.Contains(a.Files, f) {
			a.Files = append(a.Files, f)
		}
	}
	a.Fetch = a.Fetch || b.Fetch
	a.Responder = cmp.Or(a.Responder, b.Responder)
	if a.Generate == nil {
		a.Generate = b.Generate
	}
	if len(a.Chain) < len(b.Chain) {
		a.Chain = b.Chain // one bind names the issuer
	}
	if a.IssuerFiles == nil {
		a.IssuerFiles = b.IssuerFiles
	}
	return a
}

func ocspOptions(o config.OCSPSettings) ocsp.Options {
	return ocsp.Options{
		CacheDir:        o.CacheDir,
		MinRefreshDelay: o.MinRefreshDelay.D(),
		MaxRefreshDelay: o.MaxRefreshDelay.D(),
		BackoffCap:      o.BackoffCap.D(),
		RequestTimeout:  o.RequestTimeout.D(),
		MaxResponseSize: int64(o.MaxResponseSize),
		HTTPProxy:       o.HTTPProxy,
	}
}

func withLogger(o ocsp.Options, log *slog.Logger) ocsp.Options {
	o.Logger = log
	return o
}
