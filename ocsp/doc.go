// Package ocsp manages the life of OCSP staples (RFC 6960 responses stapled
// under RFC 6066 status_request): loading them from files, validating them
// against the certificate and its issuer, generating them for a local PKI,
// fetching and refreshing them from the CA's responder, caching them on disk
// and reporting their status.
//
// Validate is the one gate every response passes (file, cache, fetch or
// generate): parses, successful, exactly one SingleResponse for this
// certificate's serial and issuer, signed by the issuer or a delegated
// responder it certified with the OCSPSigning EKU, status good, and
// thisUpdate <= now+Skew < nextUpdate. When the issuer cannot be found (a
// leaf-only certificate file, as dnsdist configurations have), a response
// file passes ValidateUnverified instead: every check but the signature, the
// issuer key hash compared with the leaf's Authority Key Identifier, and the
// staple is reported as unverified. Generate mints a response from a CA
// key (dnsdist's generateOCSPResponse). The Manager (manager.go) runs the
// life cycle; its timing rules, each with its reason, are in schedule.go.
//
// Concurrency rule: the Manager runs one goroutine per certificate and never
// reaches into the engine; it publishes staples through a callback, one call
// at a time. Staples are immutable once published. Validate, Generate and the
// file helpers are safe for concurrent use.
package ocsp
