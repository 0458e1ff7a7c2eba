// Package devpki makes certificates for development and tests.
//
// Ensure creates (or reuses) the PKI that `make run` serves: a CA, an ECDSA
// and an RSA leaf for dns.test, localhost, 127.0.0.1 and ::1, and an OCSP
// response for each. NewTestPKI builds a throw-away PKI in a test's temporary
// directory, with options for AIA URLs, Must-Staple, an intermediate CA and a
// delegated OCSP responder, and mints good and bad responses:
//
//	p := devpki.NewTestPKI(t, t.TempDir(), devpki.WithOCSPURL(srv.URL), devpki.WithMustStaple())
//	staple := p.Good()                     // DER, signed by p.Issuer
//	path := p.WriteFile("leaf.ocsp", staple)
//	// p.Leaf.ChainFile, p.Leaf.KeyFile, p.Leaf.Cert, p.Issuer.Cert ...
//
// Nothing here is safe for production keys: keys are written unencrypted.
// Concurrency rule: Ensure touches only its directory; a TestPKI belongs to
// one test goroutine.
package devpki
