package tlsframe

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// CertSpec names one certificate of a bind: a PEM chain (leaf first, then
// intermediates) and its private key, either as files or as PEM bytes already
// read (then the file names only label errors). OCSPStaple is a DER OCSP
// response that the caller has already validated; nil staples nothing.
type CertSpec struct {
	ChainFile, KeyFile string
	ChainPEM, KeyPEM   []byte
	OCSPStaple         []byte
}

// CertInfo describes one certificate of a snapshot for the OCSP manager and
// the admin API. Its slices are shared with the snapshot: do not modify them.
type CertInfo struct {
	ID         string // hex SHA-256 of the leaf DER
	ChainFile  string
	KeyFile    string
	Chain      []*x509.Certificate // leaf first
	OCSPStaple []byte
}

// Snapshot is an immutable set of certificates and TLS settings for one bind.
// It is safe for concurrent use; WithStaple returns a modified copy.
type Snapshot struct {
	certs   []*certEntry
	byName  map[string][]*certEntry
	opts    Options
	tickets *TicketKeys
	config  *tls.Config // template; a Store clones it per loop
}

type certEntry struct {
	info CertInfo
	cert *tls.Certificate
}

// BuildSnapshot loads and checks every certificate and key. Errors name the
// file. tickets is required when opts.SessionTickets is set: it is the one
// key ring of the process, so that resumption works across loops and reloads.
func BuildSnapshot(certs []CertSpec, opts Options, tickets *TicketKeys) (*Snapshot, error) {
	if len(certs) == 0 {
		return nil, errors.New("tlsframe: no certificate configured")
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.SessionTickets && tickets == nil {
		return nil, errors.New("tlsframe: session tickets enabled without a ticket key ring")
	}
	s := &Snapshot{opts: opts, tickets: tickets}
	seen := make(map[string]string)
	for i, spec := range certs {
		e, err := loadCert(spec)
		if err != nil {
			return nil, err
		}
		if prev, dup := seen[e.info.ID]; dup {
			return nil, fmt.Errorf("tlsframe: %s: same certificate as %s", label(spec, i), prev)
		}
		seen[e.info.ID] = label(spec, i)
		s.certs = append(s.certs, e)
	}
	s.assemble()
	return s, nil
}

func label(spec CertSpec, i int) string {
	if spec.ChainFile != "" {
		return spec.ChainFile
	}
	return fmt.Sprintf("certificate #%d", i+1)
}

func loadCert(spec CertSpec) (*certEntry, error) {
	chainPEM, keyPEM := spec.ChainPEM, spec.KeyPEM
	var err error
	if chainPEM == nil {
		if spec.ChainFile == "" {
			return nil, errors.New("tlsframe: certificate without chain file or PEM")
		}
		if chainPEM, err = os.ReadFile(spec.ChainFile); err != nil {
			return nil, fmt.Errorf("tlsframe: %w", err)
		}
	}
	if keyPEM == nil {
		if spec.KeyFile == "" {
			return nil, fmt.Errorf("tlsframe: %s: no key file", spec.ChainFile)
		}
		if keyPEM, err = os.ReadFile(spec.KeyFile); err != nil {
			return nil, fmt.Errorf("tlsframe: %w", err)
		}
	}
	cert, err := tls.X509KeyPair(chainPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsframe: %s, %s: %w", spec.ChainFile, spec.KeyFile, err)
	}
	chain := make([]*x509.Certificate, len(cert.Certificate))
	for i, der := range cert.Certificate {
		if chain[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("tlsframe: %s: certificate %d of the chain: %w", spec.ChainFile, i+1, err)
		}
	}
	for i := 1; i < len(chain); i++ {
		if err := chain[i-1].CheckSignatureFrom(chain[i]); err != nil {
			return nil, fmt.Errorf("tlsframe: %s: certificate %d (%s) is not signed by the next one (%s): chain must be leaf first",
				spec.ChainFile, i, chain[i-1].Subject, chain[i].Subject)
		}
	}
	cert.Leaf = chain[0]
	cert.OCSPStaple = spec.OCSPStaple
	sum := sha256.Sum256(cert.Certificate[0])
	return &certEntry{
		info: CertInfo{
			ID:         hex.EncodeToString(sum[:]),
			ChainFile:  spec.ChainFile,
			KeyFile:    spec.KeyFile,
			Chain:      chain,
			OCSPStaple: spec.OCSPStaple,
		},
		cert: &cert,
	}, nil
}

// assemble builds the SNI index and the config template from s.certs.
func (s *Snapshot) assemble() {
	s.byName = make(map[string][]*certEntry)
	for _, e := range s.certs {
		for _, n := range certNames(e.info.Chain[0]) {
			if !slices.Contains(s.byName[n], e) {
				s.byName[n] = append(s.byName[n], e)
			}
		}
	}
	o := s.opts
	cfg := &tls.Config{
		MinVersion:       o.MinVersion,
		CipherSuites:     o.CipherSuites,
		CurvePreferences: o.CurvePreferences,
		NextProtos:       o.NextProtos,
		KeyLogWriter:     o.KeyLogWriter,
		GetCertificate:   s.getCertificate,
		// One record per write pass: the small first records of dynamic
		// sizing would split a batch of answers into several records.
		DynamicRecordSizingDisabled: true,
		SessionTicketsDisabled:      !o.SessionTickets,
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.CipherSuites == nil {
		cfg.CipherSuites = DefaultCipherSuites()
	}
	s.config = cfg
}

func certNames(leaf *x509.Certificate) []string {
	var names []string
	for _, n := range leaf.DNSNames {
		names = append(names, strings.ToLower(strings.TrimSuffix(n, ".")))
	}
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = append(names, strings.ToLower(leaf.Subject.CommonName))
	}
	return names
}

// getCertificate picks, among the certificates for the client's server name
// (exact, then wildcard), the first one the client can use: its signature
// algorithms and cipher suites decide between ECDSA and RSA. Without a match
// it falls back to any certificate the client supports, then to the first.
func (s *Snapshot) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name != "" {
		if c := pick(hello, s.byName[name]); c != nil {
			return c, nil
		}
		if i := strings.IndexByte(name, '.'); i > 0 {
			if c := pick(hello, s.byName["*"+name[i:]]); c != nil {
				return c, nil
			}
		}
	}
	if c := pick(hello, s.certs); c != nil {
		return c, nil
	}
	return s.certs[0].cert, nil
}

func pick(hello *tls.ClientHelloInfo, cands []*certEntry) *tls.Certificate {
	for _, e := range cands {
		if hello.SupportsCertificate(e.cert) == nil {
			return e.cert
		}
	}
	return nil
}

// WithStaple returns a new snapshot in which the certificate certID carries
// staple (nil removes it). The receiver is unchanged. An unknown certID
// returns the receiver itself.
func (s *Snapshot) WithStaple(certID string, staple []byte) *Snapshot {
	i := slices.IndexFunc(s.certs, func(e *certEntry) bool { return e.info.ID == certID })
	if i < 0 {
		return s
	}
	n := &Snapshot{opts: s.opts, tickets: s.tickets, certs: slices.Clone(s.certs)}
	old := s.certs[i]
	cert := *old.cert
	cert.OCSPStaple = staple
	info := old.info
	info.OCSPStaple = staple
	n.certs[i] = &certEntry{info: info, cert: &cert}
	n.assemble()
	return n
}

// CertIDs lists the certificate IDs in configuration order.
func (s *Snapshot) CertIDs() []string {
	ids := make([]string, len(s.certs))
	for i, e := range s.certs {
		ids[i] = e.info.ID
	}
	return ids
}

// Certificates describes every certificate in configuration order.
func (s *Snapshot) Certificates() []CertInfo {
	out := make([]CertInfo, len(s.certs))
	for i, e := range s.certs {
		out[i] = e.info
	}
	return out
}

// Cert describes the certificate certID.
func (s *Snapshot) Cert(certID string) (CertInfo, bool) {
	for _, e := range s.certs {
		if e.info.ID == certID {
			return e.info, true
		}
	}
	return CertInfo{}, false
}

// Leaf is the parsed leaf of certID, nil if unknown.
func (s *Snapshot) Leaf(certID string) *x509.Certificate {
	if ci, ok := s.Cert(certID); ok {
		return ci.Chain[0]
	}
	return nil
}

// Chain is the parsed chain of certID, leaf first (the issuer of the leaf,
// needed to check an OCSP response, is Chain[1] when the file carries it).
func (s *Snapshot) Chain(certID string) []*x509.Certificate {
	if ci, ok := s.Cert(certID); ok {
		return ci.Chain
	}
	return nil
}

// Options returns the TLS settings the snapshot was built with.
func (s *Snapshot) Options() Options { return s.opts }

// TicketKeys returns the key ring given to BuildSnapshot.
func (s *Snapshot) TicketKeys() *TicketKeys { return s.tickets }
